//! Tickets as REST 1.0 prints them, without I/O: a ticket's fields from its `show`/`search`
//! form, its UTC creation time (REST 1.0 prints dates in the user's display timezone, without
//! an offset), and which attachment of a ticket is its first message.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

use super::{
    super::{answer, RtCreate, RtError, RtTicket},
    form::{Form, FormError},
    parse::{parse_answers, parse_forms, ParsedForm},
};

/// The ticket fields read by `get` and `list`.
pub(super) const TICKET_FIELDS: &str = "Subject,Status,Queue,Owner,Priority,Created,Requestors";
/// RT's default display format for dates (`RT::Date::DefaultFormat`, English).
const DISPLAY_DATE: &str = "%a %b %d %H:%M:%S %Y";
/// How transactions print their raw, UTC `Created`.
pub(super) const SQL_DATE: &str = "%Y-%m-%d %H:%M:%S";

/// The ticket's creation time in UTC. `shown` is the ticket's `Created` as REST 1.0 prints
/// it (display timezone, no offset); `create_utc` is its Create transaction's raw time (UTC,
/// the same second or a moment later). The display offset is the difference rounded to a
/// quarter hour; without a usable `shown` the transaction time is used.
pub(super) fn resolve_created(
    shown: Option<&str>,
    create_utc: Option<NaiveDateTime>,
) -> Result<DateTime<Utc>, RtError> {
    const QUARTER: i64 = 15 * 60;
    let shown_at = shown.and_then(|s| NaiveDateTime::parse_from_str(s.trim(), DISPLAY_DATE).ok());
    let at = match (shown_at, create_utc) {
        (Some(shown_at), Some(create_utc)) => {
            let delta = (shown_at - create_utc).num_seconds();
            let offset = (delta + QUARTER / 2).div_euclid(QUARTER) * QUARTER;
            if (delta - offset).abs() <= 120 {
                shown_at - chrono::Duration::seconds(offset)
            } else {
                create_utc
            }
        }
        (None, Some(create_utc)) => create_utc,
        // No Create transaction to compare with: the printed time is taken as UTC.
        (Some(shown_at), None) => shown_at,
        (None, None) => {
            return Err(RtError::Malformed(format!(
                "cannot read the ticket's creation time from {shown:?}"
            )));
        }
    };
    Ok(Utc.from_utc_datetime(&at))
}

fn form_error(err: FormError) -> RtError {
    RtError::Rejected(format!("RT REST 1.0 cannot carry this ticket unchanged: {err}"))
}

/// The `ticket/new` form for `ticket`, or [`RtError::Rejected`] for what REST 1.0 cannot
/// store unchanged.
pub(super) fn create_form(ticket: &RtCreate) -> Result<String, RtError> {
    // RT's ticket/new handler tests the text for Perl truth: "0" would be dropped.
    if ticket.content == "0" {
        return Err(RtError::Rejected(
            "RT REST 1.0 stores a description of exactly \"0\" as no description".into(),
        ));
    }
    let mut form = Form::new();
    form.line("id", "ticket/new").map_err(form_error)?;
    form.line("Queue", &ticket.queue).map_err(form_error)?;
    form.line("Subject", &ticket.subject).map_err(form_error)?;
    if let Some(requestor) = &ticket.requestor {
        // One address: RT would read a list and add every address as a watcher.
        if requestor.contains([',', ';']) {
            return Err(RtError::Rejected("requestor must be one email address".into()));
        }
        form.line("Requestor", requestor).map_err(form_error)?;
    }
    if !ticket.content.is_empty() {
        form.text("Text", &ticket.content).map_err(form_error)?;
    }
    Ok(form.finish())
}

/// The new ticket's id from RT's answer to `ticket/new` (`# Ticket 7 created.`), or what
/// RT's comments say went wrong. RT answers `200 Ok` either way.
pub(super) fn created_id(forms: Vec<ParsedForm>) -> Result<u64, RtError> {
    let comments: Vec<String> = forms.into_iter().flat_map(|f| f.comments).collect();
    let created = comments.iter().find_map(|c| {
        c.strip_prefix("Ticket ")
            .and_then(|r| r.strip_suffix(" created."))
            .and_then(|n| n.parse::<u64>().ok())
    });
    if let Some(id) = created {
        return Ok(id);
    }
    let message = answer::message(&comments.join(" "));
    let lower = message.to_ascii_lowercase();
    // "Queue not set" is how RT reports a queue it cannot load; like REST 2.0's 403 it
    // does not say whether the queue is missing or hidden from this user.
    if lower.contains("queue not set")
        || lower.contains("no permission")
        || lower.contains("permission denied")
    {
        Err(RtError::Forbidden(message))
    } else if lower.contains("could not create") {
        Err(RtError::Rejected(message))
    } else {
        Err(RtError::Malformed(format!("create answer without a ticket id: {message:?}")))
    }
}

/// The ticket id of a `ticket/<id>` form.
pub(super) fn form_ticket_id(form: &ParsedForm) -> Option<u64> {
    form.get("id").and_then(|v| v.strip_prefix("ticket/")).and_then(|v| v.parse().ok())
}

/// Builds a ticket from a `ticket/<id>` form of `show` or `search`.
pub(super) fn ticket_from_form(
    form: &ParsedForm,
    create_utc: Option<NaiveDateTime>,
) -> Result<RtTicket, RtError> {
    let id = form_ticket_id(form).ok_or_else(|| {
        RtError::Malformed(format!("ticket form without a ticket id: {:?}", form.get("id")))
    })?;
    let required = |key: &str| {
        form.get(key)
            .map(str::to_owned)
            .ok_or_else(|| RtError::Malformed(format!("ticket {id} without {key}")))
    };
    let priority = match form.get("Priority").map(str::trim) {
        None | Some("") => 0,
        Some(p) => p.parse().map_err(|_| {
            RtError::Malformed(format!("ticket {id}: Priority {p:?} is not a number"))
        })?,
    };
    Ok(RtTicket {
        id,
        subject: form.get("Subject").unwrap_or_default().to_owned(),
        status: required("Status")?,
        queue: required("Queue")?,
        owner: required("Owner")?,
        priority,
        requestors: form
            .get("Requestors")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        created: resolve_created(form.get("Created"), create_utc)?,
    })
}

/// Whether the ticket's attachment list (`ticket/<id>/attachments`) names `aid` as an
/// unnamed text/plain part, i.e. a message body rather than a file.
pub(super) fn is_body_part(list: &str, aid: u64) -> bool {
    let entry = format!("{aid}: (Unnamed) (text/plain / ");
    // An entry starts the list or follows a separator; the byte before a match is checked
    // as a byte, so no character is ever split.
    list.match_indices(&entry).any(|(at, _)| {
        at == 0
            || matches!(
                at.checked_sub(1).and_then(|i| list.as_bytes().get(i)),
                Some(b' ' | b'\n' | b',')
            )
    })
}

/// Attachment ids listed by a transaction's `Attachments` field (`22: untitled (0b)` lines).
pub(super) fn listed_attachment_ids(value: &str) -> Vec<u64> {
    value
        .lines()
        .filter_map(|l| l.trim().split_once(':').and_then(|(id, _)| id.parse().ok()))
        .collect()
}

/// The Create transactions' UTC times by ticket, from one `show` of several tickets'
/// `history/type/Create` (one answer per transaction; missing tickets answer with a comment).
pub(super) fn parse_create_times(text: &str) -> HashMap<u64, NaiveDateTime> {
    let mut times = HashMap::new();
    for answer in parse_answers(text).into_iter().filter(|a| a.code == 200) {
        for form in parse_forms(answer.body) {
            let ticket = form.get("Ticket").and_then(|t| t.trim().parse::<u64>().ok());
            let created = form
                .get("Created")
                .and_then(|c| NaiveDateTime::parse_from_str(c.trim(), SQL_DATE).ok());
            if let (Some(ticket), Some(created)) = (ticket, created) {
                times.entry(ticket).or_insert(created);
            }
        }
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, SQL_DATE).unwrap()
    }

    #[test]
    fn created_in_utc_display_is_exact() {
        let t =
            resolve_created(Some("Sat Nov 28 23:58:04 2026"), Some(naive("2026-11-28 23:58:05")))
                .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-28T23:58:04+00:00");
    }

    #[test]
    fn created_in_another_timezone_is_shifted_by_the_rounded_offset() {
        // US/Eastern in winter (UTC-5), India (UTC+5:30), Nepal (UTC+5:45).
        let cases = [
            ("Sat Nov 28 18:58:04 2026", "2026-11-28 23:58:04"),
            ("Sun Nov 29 05:28:04 2026", "2026-11-28 23:58:05"),
            ("Sun Nov 29 05:43:04 2026", "2026-11-28 23:58:04"),
        ];
        for (shown, tx) in cases {
            let t = resolve_created(Some(shown), Some(naive(tx))).unwrap();
            assert_eq!(t.to_rfc3339(), "2026-11-28T23:58:04+00:00", "{shown}");
        }
    }

    #[test]
    fn created_falls_back_to_the_transaction_time() {
        let tx = naive("2026-11-28 23:58:05");
        for shown in [None, Some("28/11/2026 23:58"), Some("Not set")] {
            let t = resolve_created(shown, Some(tx)).unwrap();
            assert_eq!(t.naive_utc(), tx, "{shown:?}");
        }
        // Too far from a quarter-hour offset to be the same moment.
        assert_eq!(
            resolve_created(Some("Sat Nov 28 23:48:04 2026"), Some(tx)).unwrap().naive_utc(),
            tx
        );
        assert!(resolve_created(None, None).is_err());
    }

    #[test]
    fn tickets_read_from_forms() {
        let body = "id: ticket/7\nQueue: Support\nOwner: Nobody\nSubject: Owner: root\nStatus: new\nPriority: 0\n\
                    Requestors: a@example.com, b@example.com\nCreated: Sat Nov 28 23:58:04 2026\n";
        let form = &parse_forms(body)[0];
        let t = ticket_from_form(form, Some(naive("2026-11-28 23:58:04"))).unwrap();
        assert_eq!(
            (t.id, t.subject.as_str(), t.queue.as_str(), t.owner.as_str(), t.priority),
            (7, "Owner: root", "Support", "Nobody", 0)
        );
        assert_eq!(t.requestors, vec!["a@example.com".to_owned(), "b@example.com".to_owned()]);
    }

    #[test]
    fn body_parts_are_found_in_the_attachment_list() {
        let list = "1: (Unnamed) (text/plain / 1b),\n22: (Unnamed) (multipart/mixed / 0b), 23: (Unnamed) (text/plain / 1.2k),\n122: x.txt (text/plain / 3b)";
        assert!(is_body_part(list, 1));
        assert!(is_body_part(list, 23));
        assert!(!is_body_part(list, 22));
        assert!(!is_body_part(list, 2));
        assert!(!is_body_part(list, 122));
        assert_eq!(listed_attachment_ids("22: untitled (0b)\n23: untitled (5b)"), vec![22, 23]);
        let named = "5: é1: (Unnamed) (text/plain / 1b),\n日1: (Unnamed) (text/plain / 2b)";
        assert!(!is_body_part(named, 1), "a match inside a name is not an entry");
    }

    #[test]
    fn create_answers_give_the_id_or_rt_s_reason() {
        let answer = |text: &str| created_id(parse_forms(text));
        assert_eq!(answer("# Ticket 41 created.\n").unwrap(), 41);
        assert!(matches!(
            answer("# Could not create ticket.\n# Queue not set\n"),
            Err(RtError::Forbidden(m)) if m == "Could not create ticket. Queue not set"
        ));
        assert!(matches!(
            answer("# Could not create ticket.\n# Bad owner\n"),
            Err(RtError::Rejected(_))
        ));
        assert!(matches!(answer(""), Err(RtError::Malformed(_))));
    }

    #[test]
    fn create_times_come_from_every_answer_that_has_one() {
        let mut text = String::new();
        for (ticket, created) in [(5, "2026-11-29 00:10:00"), (4, "2026-11-29 00:09:59")] {
            text += &format!(
                "RT/5.0.3 200 Ok\n\nid: {ticket}0\nTicket: {ticket}\nCreated: {created}\n\n"
            );
        }
        text += "RT/5.0.3 200 Ok\n\n# Ticket 77 does not exist.\n\nRT/5.0.3 401 Credentials required\n\n";
        let times = parse_create_times(&text);
        assert_eq!(times.len(), 2);
        assert_eq!(
            (times[&5], times[&4]),
            (naive("2026-11-29 00:10:00"), naive("2026-11-29 00:09:59"))
        );
    }
}
