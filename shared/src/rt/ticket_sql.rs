//! TicketSQL for [`RtQuery`], shared by both adapters. Values are quoted the way RT's parser
//! (`RT::SQL`, `Regexp::Common` delimited strings) unquotes them, so a value can never end
//! its string early and add a clause.

use super::{strip_prefix_ignore_ascii_case, RtError, RtQuery};

/// Quotes `value` as a TicketSQL string: `'…'` with `\` and `'` escaped by a backslash.
/// Refuses control characters (RT's unescaping does not cross lines) and values starting
/// with `CF.`, which RT reads as a custom-field reference even when quoted.
pub fn quote(field: &str, value: &str) -> Result<String, RtError> {
    if value.chars().any(char::is_control) {
        return Err(RtError::Rejected(format!("{field} must not contain control characters")));
    }
    if strip_prefix_ignore_ascii_case(value, "CF.").is_some() {
        return Err(RtError::Rejected(format!(
            "{field} must not start with \"CF.\" (RT reads it as a custom field)"
        )));
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if matches!(c, '\\' | '\'') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    Ok(quoted)
}

/// The TicketSQL selecting what `query` asks for (`id > 0` when it asks for everything).
pub fn ticket_sql(query: &RtQuery) -> Result<String, RtError> {
    let mut clauses = vec!["id > 0".to_owned()];
    if let Some(queue) = &query.queue {
        clauses.push(format!("Queue = {}", quote("queue", queue)?));
    }
    if let Some(status) = &query.status {
        clauses.push(format!("Status = {}", quote("status", status)?));
    }
    if let Some(min_id) = query.min_id {
        clauses.push(format!("id >= {min_id}"));
    }
    if let Some(subject) = &query.subject {
        clauses.push(format!("Subject = {}", quote("subject", subject)?));
    }
    Ok(clauses.join(" AND "))
}

/// TicketSQL selecting exactly these ticket ids.
pub fn ids_sql(ids: &[u64]) -> String {
    ids.iter().map(|id| format!("id = {id}")).collect::<Vec<_>>().join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_no_filter_then_every_ticket() {
        assert_eq!(ticket_sql(&RtQuery::default()).unwrap(), "id > 0");
    }

    #[test]
    fn given_all_filters_then_they_are_anded() {
        let q = RtQuery {
            queue: Some("Support".into()),
            status: Some("new".into()),
            min_id: Some(7),
            subject: Some("it's".into()),
        };
        assert_eq!(
            ticket_sql(&q).unwrap(),
            "id > 0 AND Queue = 'Support' AND Status = 'new' AND id >= 7 AND Subject = 'it\\'s'"
        );
    }

    #[test]
    fn quotes_and_backslashes_cannot_end_the_string() {
        assert_eq!(quote("queue", r"O'Brien").unwrap(), r"'O\'Brien'");
        assert_eq!(quote("queue", r"a\").unwrap(), r"'a\\'");
        assert_eq!(
            quote("queue", r"x' OR id > 0 OR Queue = '").unwrap(),
            r"'x\' OR id > 0 OR Queue = \''"
        );
        assert_eq!(quote("queue", "Suporte técnico").unwrap(), "'Suporte técnico'");
    }

    #[test]
    fn values_rt_would_misread_are_refused() {
        assert!(matches!(quote("queue", "a\nb"), Err(RtError::Rejected(_))));
        assert!(matches!(quote("status", "cf.{x}"), Err(RtError::Rejected(_))));
        assert_eq!(quote("queue", "Cé.{x}").unwrap(), "'Cé.{x}'");
    }

    #[test]
    fn id_lists() {
        assert_eq!(ids_sql(&[5, 4]), "id = 5 OR id = 4");
    }
}
