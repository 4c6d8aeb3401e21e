//! Domain types and input validation. Pure: no I/O. JSON field names follow the seed
//! (`title`, `description`, `status`, `created_at`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest title accepted, in UTF-8 bytes. RT cuts longer subjects silently, so the API
/// refuses them instead of losing data.
pub const MAX_TITLE_BYTES: usize = 200;
/// Longest description accepted, in UTF-8 bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// Longest queue name accepted, in UTF-8 bytes (RT's column is 200 characters).
pub const MAX_QUEUE_BYTES: usize = 200;
/// Longest requestor address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest status name a filter may give, in UTF-8 bytes (and in characters as sent).
pub const MAX_STATUS_BYTES: usize = 64;
/// A ticket was created (through `POST /tickets`, RT's web UI, REST or e-mail).
pub const TICKET_CREATED: &str = "ticket.created";
/// A ticket's status changed in RT.
pub const TICKET_STATUS_CHANGED: &str = "ticket.status_changed";
/// A ticket's queue, owner, subject or priority changed in RT.
pub const TICKET_UPDATED: &str = "ticket.updated";
/// Someone replied on a ticket (RT's correspondence).
pub const TICKET_REPLIED: &str = "ticket.replied";
/// Someone commented on a ticket (RT's internal comment).
pub const TICKET_COMMENTED: &str = "ticket.commented";
/// Every notification type, as `GET /notifications?type=` accepts them.
pub const NOTIFICATION_TYPES: [&str; 5] =
    [TICKET_CREATED, TICKET_STATUS_CHANGED, TICKET_UPDATED, TICKET_REPLIED, TICKET_COMMENTED];

/// A problem with one field of the input (or the input as a whole when `field` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ValidationError {
    /// The JSON field at fault.
    pub field: Option<String>,
    /// What is wrong, in words a client can act on.
    pub message: String,
}

impl ValidationError {
    /// An error about `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self { field: Some(field.to_owned()), message: message.into() }
    }

    /// An error about the whole input.
    pub fn body(message: impl Into<String>) -> Self {
        Self { field: None, message: message.into() }
    }
}

/// A validated request to create a ticket (`POST /tickets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTicket {
    /// Becomes RT's Subject. Trimmed, 1..=200 bytes, no control characters.
    pub title: String,
    /// Becomes the ticket's first message, byte for byte. At most 64 KiB.
    pub description: String,
    /// RT queue; the configured default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Requestor email address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requestor: Option<String>,
}

const NEW_TICKET_FIELDS: [&str; 4] = ["title", "description", "queue", "requestor"];

impl NewTicket {
    /// Parses and validates a JSON body, reporting the first field at fault.
    pub fn from_json(body: &[u8]) -> Result<Self, ValidationError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ValidationError::body(format!("body is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ValidationError::body("body must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !NEW_TICKET_FIELDS.contains(&k.as_str())) {
            return Err(ValidationError::field(
                unknown,
                format!("unknown field; allowed fields are {}", NEW_TICKET_FIELDS.join(", ")),
            ));
        }
        let string = |name: &str| -> Result<Option<String>, ValidationError> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ValidationError::field(name, "must be a string")),
            }
        };
        let title =
            string("title")?.ok_or_else(|| ValidationError::field("title", "is required"))?;
        let ticket = NewTicket {
            title,
            description: string("description")?.unwrap_or_default(),
            queue: string("queue")?,
            requestor: string("requestor")?,
        };
        ticket.validated()
    }

    /// Normalises (trims title, queue and requestor; CRLF line ends in the description
    /// become LF, as RT itself stores them) and checks every field.
    pub fn validated(self) -> Result<Self, ValidationError> {
        let title = validate_title(&self.title)?;
        let description = if self.description.contains("\r\n") {
            self.description.replace("\r\n", "\n")
        } else {
            self.description
        };
        validate_description(&description)?;
        let queue = self.queue.as_deref().map(validate_queue_name).transpose()?;
        let requestor = self.requestor.as_deref().map(validate_requestor).transpose()?;
        Ok(Self { title, description, queue, requestor })
    }
}

/// Whether `raw`, as sent (surrounding white space included), has more than `max`
/// characters: the OpenAPI document's `maxLength` counts that way, so a value it calls too
/// long is refused even when it would fit once trimmed. The byte limits (RT counts bytes)
/// are checked on the trimmed value as well.
pub(crate) fn too_long_as_sent(raw: &str, max: usize) -> bool {
    raw.chars().nth(max).is_some()
}

fn validate_title(raw: &str) -> Result<String, ValidationError> {
    let title = raw.trim();
    if too_long_as_sent(raw, MAX_TITLE_BYTES) {
        return Err(ValidationError::field(
            "title",
            format!("at most {MAX_TITLE_BYTES} characters (and {MAX_TITLE_BYTES} UTF-8 bytes) are allowed"),
        ));
    }
    if title.is_empty() {
        return Err(ValidationError::field("title", "must not be empty"));
    }
    if title.chars().any(char::is_control) {
        return Err(ValidationError::field(
            "title",
            "must not contain control characters (newlines, tabs, ...)",
        ));
    }
    at_most_bytes("title", title, MAX_TITLE_BYTES)?;
    Ok(title.to_owned())
}

/// RT counts bytes: `value` may hold at most `max` of them (UTF-8).
fn at_most_bytes(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() > max {
        return Err(ValidationError::field(
            field,
            format!("is {} bytes; at most {max} bytes (UTF-8) are allowed", value.len()),
        ));
    }
    Ok(())
}

fn validate_description(description: &str) -> Result<(), ValidationError> {
    at_most_bytes("description", description, MAX_DESCRIPTION_BYTES)?;
    if description.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(ValidationError::field(
            "description",
            "must not contain control characters other than newline, carriage return and tab",
        ));
    }
    Ok(())
}

/// Checks a ticket status name as a filter (`GET /tickets?status=`, WebSocket `status=`):
/// RT's statuses are free-form words, so any trimmed text of 1..=64 characters without
/// control characters. Returns it trimmed.
pub fn validate_status_name(raw: &str) -> Result<String, ValidationError> {
    let status = raw.trim();
    // The document's maxLength (64) counts the value as sent, surrounding white space too.
    if status.is_empty()
        || status.len() > MAX_STATUS_BYTES
        || too_long_as_sent(raw, MAX_STATUS_BYTES)
        || status.chars().any(char::is_control)
    {
        return Err(ValidationError::field(
            "status",
            "must be an RT status name such as new, open or resolved",
        ));
    }
    Ok(status.to_owned())
}

/// Checks a queue name: trimmed, 1..=200 bytes, no control characters. Returns it trimmed.
pub fn validate_queue_name(raw: &str) -> Result<String, ValidationError> {
    let queue = raw.trim();
    if queue.is_empty() {
        return Err(ValidationError::field("queue", "must not be empty"));
    }
    if queue.len() > MAX_QUEUE_BYTES || too_long_as_sent(raw, MAX_QUEUE_BYTES) {
        return Err(ValidationError::field(
            "queue",
            format!("at most {MAX_QUEUE_BYTES} characters (and {MAX_QUEUE_BYTES} UTF-8 bytes) are allowed"),
        ));
    }
    if queue.chars().any(char::is_control) {
        return Err(ValidationError::field("queue", "must not contain control characters"));
    }
    Ok(queue.to_owned())
}

/// Checks that a requestor looks like one email address (`local@domain.tld`, no spaces,
/// no list separators). Returns it trimmed.
pub fn validate_requestor(raw: &str) -> Result<String, ValidationError> {
    let email = raw.trim();
    let bad = || {
        ValidationError::field("requestor", "must be one email address such as user@example.com")
    };
    if email.is_empty() || email.len() > MAX_EMAIL_BYTES || too_long_as_sent(raw, MAX_EMAIL_BYTES) {
        return Err(bad());
    }
    if email.chars().any(|c| {
        c.is_control() || c.is_whitespace() || matches!(c, ',' | ';' | '<' | '>' | '"' | '(' | ')')
    }) {
        return Err(bad());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    let labels_ok =
        domain.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || !domain.contains('.')
        || !labels_ok
    {
        return Err(bad());
    }
    Ok(email.to_owned())
}

/// A ticket as rt-relay stores and returns it. `id` and `status` are RT's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// RT's ticket id.
    pub id: u64,
    /// RT's Subject.
    pub title: String,
    /// The ticket's first message.
    pub description: String,
    /// RT's status (`new`, `open`, `resolved`, ...).
    pub status: String,
    /// RT queue name.
    pub queue: String,
    /// Requestor address, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requestor: Option<String>,
    /// When RT created the ticket.
    pub created_at: DateTime<Utc>,
    /// When rt-relay last read the ticket from RT.
    pub updated_at: DateTime<Utc>,
    /// The ticket's page in RT's web interface.
    pub rt_url: String,
}

/// What a notification says about its ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSummary {
    /// RT's ticket id.
    pub id: u64,
    /// The title.
    pub title: String,
    /// RT's status at creation.
    pub status: String,
    /// RT queue name.
    pub queue: String,
    /// The ticket's page in RT.
    pub rt_url: String,
    /// RT's owner (user name, `Nobody` when unowned); absent on a `ticket.created` recorded
    /// by `POST /tickets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// RT's priority; absent on a `ticket.created` recorded by `POST /tickets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

impl TicketSummary {
    /// The summary of a ticket record (RT's owner and priority are not in the record).
    pub fn of(ticket: &Ticket) -> Self {
        Self {
            id: ticket.id,
            title: ticket.title.clone(),
            status: ticket.status.clone(),
            queue: ticket.queue.clone(),
            rt_url: ticket.rt_url.clone(),
            owner: None,
            priority: None,
        }
    }
}

/// What changed, for `ticket.status_changed` (`field` is `status`) and `ticket.updated`
/// (`queue`, `owner`, `subject` or `priority`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The ticket field.
    pub field: String,
    /// Its value before (RT's text; a user or queue name for owner and queue).
    pub old: String,
    /// Its value after.
    pub new: String,
}

/// A stored notification, also the JSON pushed to WebSocket clients. Pushes are
/// at-least-once, so clients dedupe by `id`. The event catalogue is in README.md and
/// docs/ARCHITECTURE.md ("RT events").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique and deterministic: `ticket-{id}-created` for `ticket.created` (whichever path
    /// saw it first), `rt-txn-{transaction id}` for every other event.
    pub id: String,
    /// One of [`NOTIFICATION_TYPES`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The ticket it is about, as rt-relay read it after the change.
    pub ticket: TicketSummary,
    /// When rt-relay recorded it.
    pub created_at: DateTime<Utc>,
    /// The RT transaction it comes from; absent on a `ticket.created` recorded by
    /// `POST /tickets` (the API created the ticket and did not read RT's log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt_transaction_id: Option<u64>,
    /// The RT user who made the change (same presence as `rt_transaction_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// When RT recorded the change (same presence as `rt_transaction_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// The field that changed (`ticket.status_changed`, `ticket.updated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<FieldChange>,
    /// The start of the reply or comment (`ticket.replied`, `ticket.commented`), at most
    /// [`crate::events::EXCERPT_CHARS`] characters; absent when the message had no text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

impl Notification {
    /// The `ticket.created` notification for a ticket just recorded.
    pub fn ticket_created(ticket: &Ticket, now: DateTime<Utc>) -> Self {
        Self {
            id: Self::created_id(ticket.id),
            kind: TICKET_CREATED.to_owned(),
            ticket: TicketSummary::of(ticket),
            created_at: now,
            rt_transaction_id: None,
            actor: None,
            occurred_at: None,
            change: None,
            excerpt: None,
        }
    }

    /// The id of a ticket's one `ticket.created` notification, on every path.
    pub fn created_id(ticket_id: u64) -> String {
        format!("ticket-{ticket_id}-created")
    }

    /// The id of the notification for RT transaction `txn_id` (every type but
    /// `ticket.created`).
    pub fn transaction_id(txn_id: u64) -> String {
        format!("rt-txn-{txn_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NewTicket, ValidationError> {
        NewTicket::from_json(json.as_bytes())
    }

    fn field_of(json: &str) -> Option<String> {
        parse(json).unwrap_err().field
    }

    #[test]
    fn seed_body_is_accepted_and_trimmed() {
        let t = parse(r#"{"title":"  Problema no Login ","description":"Usuário não consegue"}"#)
            .unwrap();
        assert_eq!(t.title, "Problema no Login");
        assert_eq!(t.description, "Usuário não consegue");
        assert_eq!(t.queue, None);
    }

    #[test]
    fn description_is_kept_byte_for_byte_but_crlf_becomes_lf() {
        let t = parse(r#"{"title":"t","description":"  a\n\tb\r\n\n lone\r"}"#).unwrap();
        assert_eq!(t.description, "  a\n\tb\n\n lone\r");
    }

    #[test]
    fn title_problems_name_the_title() {
        for body in [
            r#"{"description":"x"}"#,
            r#"{"title":"   "}"#,
            r#"{"title":5}"#,
            r#"{"title":"a\nOwner: root"}"#,
            r#"{"title":"tab\there"}"#,
        ] {
            assert_eq!(field_of(body).as_deref(), Some("title"), "{body}");
        }
    }

    #[test]
    fn length_limits_count_the_value_as_sent() {
        // 200 characters once trimmed, 205 as sent: the document's maxLength refuses it.
        let padded = format!("  {}   ", "a".repeat(200));
        assert_eq!(field_of(&format!(r#"{{"title":"{padded}"}}"#)).as_deref(), Some("title"));
        assert!(parse(&format!(r#"{{"title":" {} "}}"#, "a".repeat(198))).is_ok());
        assert!(validate_queue_name(&format!(" {}", "q".repeat(200))).is_err());
        assert_eq!(
            validate_queue_name(&format!(" {} ", "q".repeat(198))).unwrap(),
            "q".repeat(198)
        );
        assert!(validate_requestor(&format!(" {}@example.com", "a".repeat(60))).is_ok());
        assert!(validate_requestor(&format!("{}@{}.com", "a".repeat(60), "d".repeat(190))).is_err());
    }

    #[test]
    fn title_limit_is_200_bytes_not_characters() {
        let ok = "é".repeat(100); // 200 bytes
        assert!(parse(&format!(r#"{{"title":"{ok}"}}"#)).is_ok());
        let long = format!("{ok}a");
        let e = parse(&format!(r#"{{"title":"{long}"}}"#)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("title"));
        assert!(e.message.contains("201 bytes"), "{}", e.message);
    }

    #[test]
    fn description_limits() {
        let big = "a".repeat(MAX_DESCRIPTION_BYTES + 1);
        assert_eq!(
            field_of(&format!(r#"{{"title":"t","description":"{big}"}}"#)).as_deref(),
            Some("description")
        );
        assert_eq!(
            field_of(r#"{"title":"t","description":"nul\u0000"}"#).as_deref(),
            Some("description")
        );
    }

    #[test]
    fn requestor_must_be_one_plausible_address() {
        for good in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(validate_requestor(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.co",
            "a b@c.co",
            "a@b.co, c@d.co",
            "a@b.co\nCc: x@y.z",
            "a@-b.co",
        ] {
            assert!(validate_requestor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shape_errors() {
        assert_eq!(field_of("[1]"), None);
        assert_eq!(field_of("{"), None);
        assert_eq!(field_of(r#"{"title":"t","owner":"root"}"#).as_deref(), Some("owner"));
        assert_eq!(field_of(r#"{"title":"t","queue":""}"#).as_deref(), Some("queue"));
        assert_eq!(field_of(r#"{"title":"t","queue":["General"]}"#).as_deref(), Some("queue"));
    }

    #[test]
    fn notification_id_is_deterministic() {
        let now = Utc::now();
        let t = Ticket {
            id: 42,
            title: "t".into(),
            description: "d".into(),
            status: "new".into(),
            queue: "General".into(),
            requestor: None,
            created_at: now,
            updated_at: now,
            rt_url: "http://rt/Ticket/Display.html?id=42".into(),
        };
        let n = Notification::ticket_created(&t, now);
        assert_eq!(n.id, "ticket-42-created");
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["type"], "ticket.created");
        assert_eq!(json["ticket"]["id"], 42);
    }
}
