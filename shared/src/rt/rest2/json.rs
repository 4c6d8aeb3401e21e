//! RT REST 2.0's JSON, without I/O: the body of a new ticket, the shapes rt-relay reads (a
//! new endpoint adds its shape here), ids that RT writes as numbers or strings, tickets, and
//! what a refusal means. Only RT's own `message` from a JSON error body is ever passed on.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::{answer, RtCreate, RtError, RtTicket};

/// The body of `POST /ticket` for `ticket`, or [`RtError::Rejected`] for what REST 2.0 cannot
/// store unchanged.
pub(super) fn create_body(ticket: &RtCreate) -> Result<Value, RtError> {
    // RT REST 2.0 rewrites every CRLF in the content as LF (MakeMIMEEntity); refuse
    // rather than store a description other than the one given.
    if ticket.content.contains("\r\n") {
        return Err(RtError::Rejected(
            "RT REST 2.0 stores CRLF line ends as LF; send the description with LF line ends"
                .into(),
        ));
    }
    let mut body = json!({ "Queue": ticket.queue, "Subject": ticket.subject });
    // An empty Content makes RT store an empty application/octet-stream part; with none
    // the ticket simply has no first message, as through REST 1.0.
    if !ticket.content.is_empty() {
        body["Content"] = json!(ticket.content);
        body["ContentType"] = json!("text/plain");
    }
    if let Some(requestor) = &ticket.requestor {
        body["Requestor"] = json!(requestor);
    }
    Ok(body)
}

/// An id RT writes as a number in some answers and as a string in others.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Number {
    Int(i64),
    Text(String),
}

impl Number {
    pub(super) fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(n) => Some(*n),
            Number::Text(s) => s.trim().parse().ok(),
        }
    }

    pub(super) fn as_id(&self) -> Option<u64> {
        self.as_i64().and_then(|n| u64::try_from(n).ok())
    }
}

/// A link to another record: `{ "id": ..., "type": ..., "_url": ... }`.
#[derive(Debug, Deserialize)]
pub(super) struct Link {
    id: Number,
}

impl Link {
    pub(super) fn name(&self) -> String {
        match &self.id {
            Number::Int(n) => n.to_string(),
            Number::Text(s) => s.clone(),
        }
    }
}

/// A ticket, from `GET /ticket/:id` or a list's items.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TicketJson {
    #[serde(rename = "id")]
    id: Number,
    subject: Option<String>,
    status: Option<String>,
    queue: Option<Link>,
    owner: Option<Link>,
    priority: Option<Number>,
    #[serde(default)]
    requestor: Vec<Link>,
    created: Option<String>,
}

impl TicketJson {
    pub(super) fn queue_id(&self) -> Result<u64, RtError> {
        self.queue
            .as_ref()
            .and_then(|q| q.id.as_id())
            .ok_or_else(|| RtError::Malformed("ticket without a numeric queue id".into()))
    }

    pub(super) fn into_ticket(self, queue: String) -> Result<RtTicket, RtError> {
        let id = self
            .id
            .as_id()
            .ok_or_else(|| RtError::Malformed("ticket id is not a number".into()))?;
        let created = self
            .created
            .as_deref()
            .ok_or_else(|| RtError::Malformed(format!("ticket {id} without Created")))?;
        let created = DateTime::parse_from_rfc3339(created)
            .map_err(|e| RtError::Malformed(format!("ticket {id}: Created {created:?}: {e}")))?
            .with_timezone(&Utc);
        let priority = match &self.priority {
            None => 0,
            Some(p) => p.as_i64().ok_or_else(|| {
                RtError::Malformed(format!("ticket {id}: Priority is not a number"))
            })?,
        };
        Ok(RtTicket {
            id,
            subject: self.subject.unwrap_or_default(),
            status: self
                .status
                .ok_or_else(|| RtError::Malformed(format!("ticket {id} without Status")))?,
            queue,
            owner: self.owner.map(|o| o.name()).unwrap_or_else(|| "Nobody".into()),
            priority,
            // RT REST 2.0 names requestors by user name; for users RT created from an
            // address (as for every requestor rt-relay sends) the name is the address.
            requestors: self.requestor.iter().map(Link::name).collect(),
            created,
        })
    }
}

/// A page of a collection (`/tickets`, a history, a transaction's attachments).
#[derive(Debug, Deserialize)]
pub(super) struct Collection<T> {
    #[serde(default)]
    pub(super) total: Option<u64>,
    #[serde(default = "Vec::new")]
    pub(super) items: Vec<T>,
}

/// A transaction in a ticket's history.
#[derive(Debug, Deserialize)]
pub(super) struct TransactionItem {
    id: Number,
    #[serde(rename = "Type")]
    kind: Option<String>,
}

/// An attachment in a transaction's attachment list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AttachmentItem {
    #[serde(rename = "id")]
    id: Number,
    content_type: Option<String>,
    filename: Option<String>,
}

/// One attachment, its content in base64.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AttachmentJson {
    content: Option<String>,
}

/// A queue, from `GET /queue/:id`.
#[derive(Debug, Deserialize)]
pub(super) struct QueueJson {
    #[serde(rename = "Name")]
    pub(super) name: String,
}

/// A queue of `GET /queues/all?fields=Name`.
#[derive(Debug, Deserialize)]
pub(super) struct QueueItem {
    pub(super) id: Number,
    #[serde(rename = "Name")]
    pub(super) name: String,
}

/// The answer to `POST /ticket`.
#[derive(Debug, Deserialize)]
pub(super) struct CreatedJson {
    pub(super) id: Number,
}

/// RT's error body, `{"message": ...}`.
#[derive(Debug, Deserialize)]
struct ErrorJson {
    message: String,
}

/// Maps a non-2xx answer to the error it means. A refusal carries RT's own
/// `{"message": ...}` when the body is that JSON, otherwise the status's standard text: a
/// body that is not RT's JSON (a proxy's HTML page, a stack trace) is never passed on.
pub(super) fn status_error(status: StatusCode, body: &[u8]) -> RtError {
    let msg = || {
        let rt_message = serde_json::from_slice::<ErrorJson>(body).ok();
        let fixed = status.canonical_reason().unwrap_or("no message from RT");
        answer::message_or(rt_message.as_ref().map(|e| e.message.as_str()), fixed)
    };
    match status.as_u16() {
        401 => RtError::Unauthenticated,
        403 => RtError::Forbidden(msg()),
        404 => RtError::NotFound,
        code @ 500..=599 => RtError::Server(code),
        300..=399 => {
            RtError::Malformed(format!("unexpected redirect (HTTP {status}); check RT's base URL"))
        }
        _ => RtError::Rejected(msg()),
    }
}

/// The Create transaction's id in a ticket's history (RT lists it first).
pub(super) fn create_transaction_id(history: &[TransactionItem]) -> Option<u64> {
    history.iter().find(|t| t.kind.as_deref() == Some("Create")).and_then(|t| t.id.as_id())
}

/// The attachment holding a message body: the first text/plain part that is not a named file.
pub(super) fn message_part(attachments: &[AttachmentItem]) -> Option<u64> {
    attachments
        .iter()
        .find(|a| {
            a.content_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("text/plain"))
                && a.filename.as_deref().unwrap_or("").is_empty()
        })
        .and_then(|a| a.id.as_id())
}

impl AttachmentJson {
    /// The attachment's content, decoded from base64 (RT wraps the text in lines).
    pub(super) fn text(self, aid: u64) -> Result<String, RtError> {
        let encoded: String =
            self.content.unwrap_or_default().chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| {
            RtError::Malformed(format!("attachment {aid}: Content is not base64: {e}"))
        })?;
        String::from_utf8(bytes)
            .map_err(|_| RtError::Malformed(format!("attachment {aid} is not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_statuses_map_to_what_they_mean() {
        let forbidden = br#"{"message":"No permission to create tickets in the queue 'Nope'"}"#;
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, br#"{"message":"Unauthorized"}"#),
            RtError::Unauthenticated
        ));
        assert!(
            matches!(status_error(StatusCode::FORBIDDEN, forbidden), RtError::Forbidden(m) if m.contains("'Nope'"))
        );
        assert!(matches!(
            status_error(StatusCode::NOT_FOUND, br#"{"message":"Not Found"}"#),
            RtError::NotFound
        ));
        assert!(
            matches!(status_error(StatusCode::BAD_REQUEST, br#"{"message":"Bad"}"#), RtError::Rejected(m) if m == "Bad")
        );
        // A body that is not RT's JSON message is replaced by the status's standard text.
        assert!(
            matches!(status_error(StatusCode::UNPROCESSABLE_ENTITY, b"plain"), RtError::Rejected(m) if m == "Unprocessable Entity")
        );
        assert!(
            matches!(status_error(StatusCode::BAD_REQUEST, b""), RtError::Rejected(m) if m == "Bad Request")
        );
        assert!(matches!(status_error(StatusCode::BAD_GATEWAY, b"<html>"), RtError::Server(502)));
    }

    #[test]
    fn non_json_error_bodies_never_reach_the_message() {
        let bodies: [&[u8]; 6] = [
            b"<html><body>Internal path /opt/rt5/lib, session 1f2e3d</body></html>",
            b"Software error: DBI connect failed at /usr/share/perl5/RT.pm line 9.",
            br#"{"error":"not RT's shape","detail":"secret"}"#,
            br#"{"message":"#,
            b"\xff\xfe\xe6\x97",
            "日本語のエラー".as_bytes(),
        ];
        for body in bodies {
            for status in [StatusCode::BAD_REQUEST, StatusCode::FORBIDDEN, StatusCode::CONFLICT] {
                let (RtError::Rejected(m) | RtError::Forbidden(m)) = status_error(status, body)
                else {
                    panic!("{status} gave another kind of error");
                };
                assert_eq!(m, status.canonical_reason().unwrap(), "{status} {body:?}");
            }
        }
        // RT's own message in its JSON shape, multi-byte and long, passes on, capped.
        let long = format!(r#"{{"message":"{}"}}"#, "é".repeat(400));
        let RtError::Rejected(m) = status_error(StatusCode::BAD_REQUEST, long.as_bytes()) else {
            panic!("400 is a rejection");
        };
        assert_eq!(m.chars().count(), answer::MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn tickets_parse_with_string_and_number_ids() {
        let json = r#"{"id":"24","Subject":"s","Status":"new","Queue":{"id":"1","type":"queue"},
            "Owner":{"id":"Nobody"},"Priority":"0","Requestor":[{"id":"a@example.com"}],
            "Created":"2026-11-29T00:02:59Z"}"#;
        let t: TicketJson = serde_json::from_str(json).unwrap();
        assert_eq!(t.queue_id().unwrap(), 1);
        let t = t.into_ticket("General".into()).unwrap();
        assert_eq!((t.id, t.owner.as_str(), t.priority), (24, "Nobody", 0));
        assert_eq!(t.requestors, vec!["a@example.com".to_owned()]);
        assert_eq!(t.created.to_rfc3339(), "2026-11-29T00:02:59+00:00");
    }
}
