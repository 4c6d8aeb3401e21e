//! The RT REST 2.0 adapter: JSON at `{base}REST/2.0/`, credentials sent up front on every
//! request (RT sends no challenge), queue names resolved from ids and cached.
//!
//! RT REST 2.0 rewrites CRLF as LF in a new ticket's content, so a description containing
//! CRLF is refused with [`RtError::Rejected`] instead of being stored changed. Everything
//! else (leading and trailing blank lines, indentation, lone CR, "0") round-trips exactly.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{PoisonError, RwLock},
    time::Duration,
};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use http::{header, HeaderValue, StatusCode};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::json;
use tracing::{debug, instrument};
use url::Url;

use super::{
    answer::{self, MAX_ANSWER_BYTES},
    display_url, http_client,
    ticket_sql::ticket_sql,
    RtClient, RtCreate, RtError, RtPage, RtQuery, RtTicket, MAX_PER_PAGE,
};
use crate::config::{RtAuth, RtConfig};

mod transactions;

/// Fields asked for when listing, so one request returns whole tickets.
const LIST_FIELDS: &str = "Subject,Status,Queue,Owner,Priority,Created,Requestor";
/// Queue names kept at most; queues are few, the bound only guards against surprises.
const MAX_CACHED_QUEUES: usize = 1024;

/// Speaks RT REST 2.0. Cheap to share: one pooled HTTP client, one queue-name cache.
pub struct Rest2Client {
    http: reqwest::Client,
    base: Url,
    api: Url,
    authorization: HeaderValue,
    timeout: Duration,
    queue_names: RwLock<HashMap<u64, String>>,
    user_names: transactions::UserNames,
}

impl fmt::Debug for Rest2Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rest2Client")
            .field("api", &self.api.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The `Authorization` header for `auth`, marked sensitive so it is never printed.
fn authorization(auth: &RtAuth) -> Result<HeaderValue, RtError> {
    let raw = match auth {
        RtAuth::Token(token) => format!("token {}", token.expose()),
        RtAuth::Basic { username, password } => {
            let pair = format!("{username}:{}", password.expose());
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        }
    };
    let mut value = HeaderValue::from_str(&raw).map_err(|_| {
        RtError::Malformed("RT credentials contain characters an HTTP header cannot carry".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// An id RT writes as a number in some answers and as a string in others.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Text(String),
}

impl Number {
    fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(n) => Some(*n),
            Number::Text(s) => s.trim().parse().ok(),
        }
    }

    fn as_id(&self) -> Option<u64> {
        self.as_i64().and_then(|n| u64::try_from(n).ok())
    }
}

/// A link to another record: `{ "id": ..., "type": ..., "_url": ... }`.
#[derive(Debug, Deserialize)]
struct Link {
    id: Number,
}

impl Link {
    fn name(&self) -> String {
        match &self.id {
            Number::Int(n) => n.to_string(),
            Number::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct TicketJson {
    id: Number,
    #[serde(rename = "Subject", default)]
    subject: Option<String>,
    #[serde(rename = "Status", default)]
    status: Option<String>,
    #[serde(rename = "Queue", default)]
    queue: Option<Link>,
    #[serde(rename = "Owner", default)]
    owner: Option<Link>,
    #[serde(rename = "Priority", default)]
    priority: Option<Number>,
    #[serde(rename = "Requestor", default)]
    requestor: Vec<Link>,
    #[serde(rename = "Created", default)]
    created: Option<String>,
}

impl TicketJson {
    fn queue_id(&self) -> Result<u64, RtError> {
        self.queue
            .as_ref()
            .and_then(|q| q.id.as_id())
            .ok_or_else(|| RtError::Malformed("ticket without a numeric queue id".into()))
    }

    fn into_ticket(self, queue: String) -> Result<RtTicket, RtError> {
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

#[derive(Debug, Deserialize)]
struct Collection<T> {
    #[serde(default)]
    total: Option<u64>,
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct TransactionItem {
    id: Number,
    #[serde(rename = "Type", default)]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AttachmentItem {
    id: Number,
    #[serde(rename = "ContentType", default)]
    content_type: Option<String>,
    #[serde(rename = "Filename", default)]
    filename: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AttachmentJson {
    #[serde(rename = "Content", default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct QueueJson {
    #[serde(rename = "Name")]
    name: String,
}

#[derive(Debug, Deserialize)]
struct CreatedJson {
    id: Number,
}

#[derive(Debug, Deserialize)]
struct ErrorJson {
    message: String,
}

/// Maps a non-2xx answer to the error it means, with RT's `{"message": ...}` when present.
fn status_error(status: StatusCode, body: &[u8]) -> RtError {
    let text = serde_json::from_slice::<ErrorJson>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
    let msg = || {
        let m = answer::message(&text);
        if m.is_empty() {
            status.canonical_reason().unwrap_or("no message").to_owned()
        } else {
            m
        }
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

impl Rest2Client {
    /// Builds the adapter; fails only if the credentials cannot be put in a header.
    pub fn new(config: RtConfig) -> Result<Self, RtError> {
        let api = config
            .base_url
            .join("REST/2.0/")
            .map_err(|e| RtError::Malformed(format!("RT base URL: {e}")))?;
        Ok(Self {
            http: http_client(&config)?,
            authorization: authorization(&config.auth)?,
            base: config.base_url,
            api,
            timeout: config.timeout,
            queue_names: RwLock::new(HashMap::new()),
            user_names: RwLock::new(HashMap::new()),
        })
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, RtError> {
        let mut url =
            self.api.join(path).map_err(|e| RtError::Malformed(format!("URL for {path}: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends one request with credentials and reads the body; non-2xx answers become errors.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), RtError> {
        let mut resp = request
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| RtError::from_transport(e, self.timeout))?;
        let status = resp.status();
        let body = answer::read_body(&mut resp, MAX_ANSWER_BYTES, self.timeout).await?;
        if status.is_success() {
            Ok((status, body))
        } else {
            let err = status_error(status, &body);
            debug!(status = status.as_u16(), error = %err, "RT REST 2.0 refused");
            Err(err)
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, RtError> {
        let (_, body) = self.send(self.http.get(self.url(path, query)?)).await?;
        serde_json::from_slice(&body).map_err(|e| RtError::Malformed(format!("{path}: {e}")))
    }

    fn cached_queue(&self, id: u64) -> Option<String> {
        self.queue_names.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    /// The queue's name, from the cache or `GET /queue/:id`. Names are cached for the life of
    /// the client; a renamed queue shows its old name until the next cold start.
    async fn queue_name(&self, id: u64) -> Result<String, RtError> {
        if let Some(name) = self.cached_queue(id) {
            return Ok(name);
        }
        let queue: QueueJson = self.get_json(&format!("queue/{id}"), &[]).await?;
        let mut names = self.queue_names.write().unwrap_or_else(PoisonError::into_inner);
        if names.len() >= MAX_CACHED_QUEUES {
            names.clear();
        }
        names.insert(id, queue.name.clone());
        Ok(queue.name)
    }

    /// The Create transaction's id (the first in the ticket's history).
    async fn create_transaction(&self, id: u64) -> Result<u64, RtError> {
        let history: Collection<TransactionItem> = self
            .get_json(&format!("ticket/{id}/history"), &[("fields", "Type"), ("per_page", "100")])
            .await?;
        let create = history
            .items
            .iter()
            .find(|t| t.kind.as_deref() == Some("Create"))
            .and_then(|t| t.id.as_id());
        match create {
            Some(tid) => Ok(tid),
            None => {
                // RT answers an empty history, not 404, for a ticket that does not exist.
                self.get_json::<TicketJson>(&format!("ticket/{id}"), &[]).await?;
                Err(RtError::Malformed(format!("ticket {id} has no Create transaction")))
            }
        }
    }
}

#[async_trait::async_trait]
impl RtClient for Rest2Client {
    #[instrument(level = "debug", skip_all, fields(rt.api = "rest2", queue = %ticket.queue))]
    async fn create(&self, ticket: &RtCreate) -> Result<u64, RtError> {
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
        let (_, answer) = self.send(self.http.post(self.url("ticket", &[])?).json(&body)).await?;
        let created: CreatedJson = serde_json::from_slice(&answer)
            .map_err(|e| RtError::Malformed(format!("create answer: {e}")))?;
        let id = created
            .id
            .as_id()
            .ok_or_else(|| RtError::Malformed("create answer without a ticket id".into()))?;
        debug!(ticket.id = id, "created");
        Ok(id)
    }

    #[instrument(level = "debug", skip(self), fields(rt.api = "rest2"))]
    async fn get(&self, id: u64) -> Result<RtTicket, RtError> {
        let ticket: TicketJson = self.get_json(&format!("ticket/{id}"), &[]).await?;
        let queue = self.queue_name(ticket.queue_id()?).await?;
        ticket.into_ticket(queue)
    }

    #[instrument(level = "debug", skip(self), fields(rt.api = "rest2"))]
    async fn description(&self, id: u64) -> Result<String, RtError> {
        let transaction = self.create_transaction(id).await?;
        let attachments: Collection<AttachmentItem> = self
            .get_json(
                &format!("transaction/{transaction}/attachments"),
                &[("fields", "ContentType,Filename"), ("per_page", "100")],
            )
            .await?;
        // The message body is the first text/plain part that is not a named file.
        let body = attachments.items.iter().find(|a| {
            a.content_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("text/plain"))
                && a.filename.as_deref().unwrap_or("").is_empty()
        });
        let Some(aid) = body.and_then(|a| a.id.as_id()) else {
            return Ok(String::new());
        };
        let attachment: AttachmentJson = self.get_json(&format!("attachment/{aid}"), &[]).await?;
        let encoded: String = attachment
            .content
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| {
            RtError::Malformed(format!("attachment {aid}: Content is not base64: {e}"))
        })?;
        String::from_utf8(bytes)
            .map_err(|_| RtError::Malformed(format!("attachment {aid} is not UTF-8")))
    }

    #[instrument(level = "debug", skip(self, query), fields(rt.api = "rest2"))]
    async fn list(&self, query: &RtQuery, page: u32, per_page: u32) -> Result<RtPage, RtError> {
        let page = page.max(1);
        let per_page = per_page.clamp(1, MAX_PER_PAGE);
        let sql = ticket_sql(query)?;
        let (page_s, per_page_s) = (page.to_string(), per_page.to_string());
        let found: Collection<TicketJson> = self
            .get_json(
                "tickets",
                &[
                    ("query", sql.as_str()),
                    ("orderby", "id"),
                    ("order", "DESC"),
                    ("page", page_s.as_str()),
                    ("per_page", per_page_s.as_str()),
                    ("fields", LIST_FIELDS),
                ],
            )
            .await?;
        let total =
            found.total.ok_or_else(|| RtError::Malformed("ticket list without total".into()))?;
        let mut missing: Vec<u64> = Vec::new();
        for item in &found.items {
            let qid = item.queue_id()?;
            if self.cached_queue(qid).is_none() && !missing.contains(&qid) {
                missing.push(qid);
            }
        }
        futures_util::future::try_join_all(missing.iter().map(|&qid| self.queue_name(qid))).await?;
        let mut seen = HashSet::new();
        let mut tickets = Vec::with_capacity(found.items.len());
        for item in found.items {
            let qid = item.queue_id()?;
            let queue = match self.cached_queue(qid) {
                Some(name) => name,
                None => self.queue_name(qid).await?,
            };
            let ticket = item.into_ticket(queue)?;
            if seen.insert(ticket.id) {
                tickets.push(ticket);
            }
        }
        let has_more = u64::from(page) * u64::from(per_page) < total;
        Ok(RtPage { tickets, page, total, has_more })
    }

    fn ticket_url(&self, id: u64) -> String {
        display_url(&self.base, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

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
        assert!(
            matches!(status_error(StatusCode::UNPROCESSABLE_ENTITY, b"plain"), RtError::Rejected(m) if m == "plain")
        );
        assert!(
            matches!(status_error(StatusCode::BAD_REQUEST, b""), RtError::Rejected(m) if m == "Bad Request")
        );
        assert!(matches!(status_error(StatusCode::BAD_GATEWAY, b"<html>"), RtError::Server(502)));
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

    #[tokio::test]
    async fn crlf_is_refused_before_any_request() {
        let config = RtConfig {
            api: crate::config::RtApi::Rest2,
            base_url: Url::parse("http://127.0.0.1:9/").unwrap(),
            auth: RtAuth::Token(Secret::new("t")),
            default_queue: "General".into(),
            timeout: Duration::from_secs(1),
        };
        let rt = Rest2Client::new(config).unwrap();
        let ticket = RtCreate {
            queue: "General".into(),
            subject: "s".into(),
            content: "a\r\nb".into(),
            requestor: None,
        };
        assert!(matches!(rt.create(&ticket).await, Err(RtError::Rejected(_))));
    }

    #[test]
    fn debug_never_shows_credentials() {
        let config = RtConfig {
            api: crate::config::RtApi::Rest2,
            base_url: Url::parse("http://127.0.0.1:9/").unwrap(),
            auth: RtAuth::Basic { username: "u".into(), password: Secret::new("hunter2") },
            default_queue: "General".into(),
            timeout: Duration::from_secs(1),
        };
        let client = Rest2Client::new(config).unwrap();
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("hunter2")
                && !shown.contains("aHVudGVyMg")
                && !shown.contains("dTpodW50ZXIy"),
            "{shown}"
        );
    }
}
