//! The boundary to Request Tracker. [`RtClient`] is what the handlers use; [`rest2`] and
//! [`rest1`] are the two real adapters (chosen by [`RtConfig::api`]); [`memory`] is an
//! in-memory fake for unit tests. What every adapter shares lives beside them: reading
//! answers and passing on only RT's own message (`answer`), paging arithmetic (`paging`),
//! TicketSQL ([`ticket_sql`]).
//!
//! Text from RT (answers, messages, forms) can hold any character, so nothing here slices a
//! string by byte index: the lint below makes such a slice a compile error.
#![deny(clippy::string_slice)]

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};

use crate::config::{RtApi, RtConfig};

mod answer;
mod endpoint;
pub mod memory;
mod paging;
pub mod rest1;
pub mod rest2;
pub mod ticket_sql;
pub mod transactions;

/// What a caller needs to know when RT did not do what was asked. No variant carries a
/// credential; `Rejected` carries RT's own message, which is safe to show a client.
#[derive(Debug, thiserror::Error)]
pub enum RtError {
    /// RT refused the credentials (HTTP 401, or REST 1.0's `401 Credentials required`).
    #[error("RT rejected rt-relay's credentials")]
    Unauthenticated,
    /// RT refused the operation for this user, e.g. an unknown queue or one the user may not use.
    #[error("RT refused the operation: {0}")]
    Forbidden(String),
    /// No such ticket.
    #[error("RT has no such ticket")]
    NotFound,
    /// RT refused the request as invalid, with its message.
    #[error("RT rejected the request: {0}")]
    Rejected(String),
    /// No answer within the configured bound.
    #[error("RT did not answer within {0:?}")]
    Timeout(Duration),
    /// Could not connect (refused, DNS, TLS).
    #[error("RT is unreachable")]
    Unreachable(#[source] reqwest::Error),
    /// RT failed (5xx).
    #[error("RT failed with HTTP status {0}")]
    Server(u16),
    /// An answer that does not parse as RT's documented shape.
    #[error("RT sent an answer rt-relay cannot read: {0}")]
    Malformed(String),
}

impl RtError {
    /// Classifies a transport error from reqwest. Never includes the URL's credentials
    /// (none are in URLs) nor headers.
    pub fn from_transport(err: reqwest::Error, timeout: Duration) -> Self {
        if err.is_timeout() {
            RtError::Timeout(timeout)
        } else if err.is_connect() || err.is_request() {
            RtError::Unreachable(err.without_url())
        } else if err.is_decode() || err.is_body() {
            RtError::Malformed(err.without_url().to_string())
        } else {
            RtError::Unreachable(err.without_url())
        }
    }
}

/// A ticket to create in RT. Text fields are already validated ([`crate::model::NewTicket`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtCreate {
    /// Queue name.
    pub queue: String,
    /// Subject (one line, at most 200 bytes).
    pub subject: String,
    /// First message body, text/plain, kept byte for byte.
    pub content: String,
    /// Requestor email address.
    pub requestor: Option<String>,
}

impl RtCreate {
    /// A ticket in `queue` with `subject` and first message `content`, without a requestor.
    pub fn new(
        queue: impl Into<String>,
        subject: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        Self {
            queue: queue.into(),
            subject: subject.into(),
            content: content.into(),
            requestor: None,
        }
    }
}

/// A ticket as RT reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtTicket {
    /// Ticket id.
    pub id: u64,
    /// Subject.
    pub subject: String,
    /// Status name.
    pub status: String,
    /// Queue name (not its numeric id).
    pub queue: String,
    /// Owner user name (`Nobody` when unowned).
    pub owner: String,
    /// Priority.
    pub priority: i64,
    /// Requestor addresses.
    pub requestors: Vec<String>,
    /// Creation time.
    pub created: DateTime<Utc>,
}

/// Which tickets [`RtClient::list`] returns. Every field narrows the search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtQuery {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only ids at least this (to keep test runs apart).
    pub min_id: Option<u64>,
    /// Only this exact subject (to find a ticket an interrupted create may have made).
    pub subject: Option<String>,
}

/// One page of [`RtClient::list`], newest (highest id) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtPage {
    /// The tickets on this page.
    pub tickets: Vec<RtTicket>,
    /// 1-based page number.
    pub page: u32,
    /// Tickets matching in all.
    pub total: u64,
    /// Whether a further page exists (computed from `total`, not RT's `next_page`).
    pub has_more: bool,
}

/// Most tickets one RT page may hold (RT REST 2.0's own maximum).
pub const MAX_PER_PAGE: u32 = 100;

/// Request Tracker, as rt-relay uses it.
#[async_trait::async_trait]
pub trait RtClient: Send + Sync + std::fmt::Debug {
    /// Creates a ticket and returns its id.
    async fn create(&self, ticket: &RtCreate) -> Result<u64, RtError>;
    /// Reads a ticket's current fields.
    async fn get(&self, id: u64) -> Result<RtTicket, RtError>;
    /// Reads a ticket's first message (its description), byte for byte.
    async fn description(&self, id: u64) -> Result<String, RtError>;
    /// Lists tickets matching `query`, newest first; `page` is 1-based and `per_page` is
    /// clamped to 1..=[`MAX_PER_PAGE`].
    async fn list(&self, query: &RtQuery, page: u32, per_page: u32) -> Result<RtPage, RtError>;
    /// The ticket's page in RT's web interface.
    fn ticket_url(&self, id: u64) -> String;
    /// One cheap authenticated call made during init ([`crate::warmup`]): RT's first
    /// authenticated request on a connection is slower than the next ones, and the adapter
    /// fills what it caches (REST 2.0: the queue names every ticket read needs). Reads no
    /// ticket. Answers a short outcome for the log; by default nothing is called.
    async fn warm_up(&self) -> Result<String, RtError> {
        Ok("nothing to warm".into())
    }
}

/// Builds the adapter `config.api` names, with one pooled HTTP client.
pub fn client_from_config(config: &RtConfig) -> Result<Arc<dyn RtClient>, RtError> {
    Ok(match config.api {
        RtApi::Rest2 => Arc::new(rest2::Rest2Client::new(config.clone())?),
        RtApi::Rest1 => Arc::new(rest1::Rest1Client::new(config.clone())?),
    })
}

/// Builds the adapter `config.api` names, as a reader of RT's transaction log too (the
/// event sync and webhook).
pub fn transactions_client_from_config(
    config: &RtConfig,
) -> Result<Arc<dyn transactions::RtTransactions>, RtError> {
    Ok(match config.api {
        RtApi::Rest2 => Arc::new(rest2::Rest2Client::new(config.clone())?),
        RtApi::Rest1 => Arc::new(rest1::Rest1Client::new(config.clone())?),
    })
}

/// The reqwest client both adapters use: the shared TLS stack ([`crate::net`]), keep-alive
/// pool, connect and total timeouts from the configuration, no redirects (RT answers directly).
/// One client (one connection pool) per thread and timeout, so the connection the init
/// warm-up opens ([`crate::warmup::rt`]) is the one the adapter's first request uses (a
/// Lambda's `main` builds, warms and serves on its one thread). Per thread, not per
/// process: a pooled connection is bound to the tokio runtime that opened it, and a
/// process may run several runtimes one after another (each `#[tokio::test]` does); a
/// connection reused from a runtime that has ended fails the request.
pub fn http_client(config: &RtConfig) -> Result<reqwest::Client, RtError> {
    thread_local! {
        static CLIENTS: std::cell::RefCell<Vec<(Duration, reqwest::Client)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let cached = CLIENTS.with_borrow(|clients| {
        clients.iter().find(|(t, _)| *t == config.timeout).map(|(_, c)| c.clone())
    });
    if let Some(client) = cached {
        return Ok(client);
    }
    let client = crate::net::client_builder()
        .map_err(|e| RtError::Malformed(format!("cannot build HTTP client: {e}")))?
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(50))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("rt-relay/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| RtError::Malformed(format!("cannot build HTTP client: {e}")))?;
    CLIENTS.with_borrow_mut(|clients| clients.push((config.timeout, client.clone())));
    Ok(client)
}

/// `text` without `prefix`, compared ignoring ASCII case. Never splits a character: a `text`
/// whose first bytes are not a whole `prefix` is simply not a match.
pub(crate) fn strip_prefix_ignore_ascii_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

/// RT's web page for a ticket under `base` (which ends in `/`).
pub fn display_url(base: &url::Url, id: u64) -> String {
    format!("{base}Ticket/Display.html?id={id}")
}

/// A configuration for `api` whose every request would fail as Unreachable (port 9 on
/// loopback), for unit tests of what an adapter refuses before any request.
#[cfg(test)]
pub(crate) fn offline_config(api: RtApi, auth: crate::config::RtAuth) -> RtConfig {
    RtConfig {
        api,
        base_url: url::Url::parse("http://127.0.0.1:9/")
            .unwrap_or_else(|_| unreachable!("a valid literal URL")),
        auth,
        default_queue: "General".into(),
        timeout: Duration::from_secs(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_case_prefixes_are_matched_on_whole_characters() {
        assert_eq!(strip_prefix_ignore_ascii_case("cf.{x}", "CF."), Some("{x}"));
        assert_eq!(strip_prefix_ignore_ascii_case("CF", "CF."), None);
        assert_eq!(strip_prefix_ignore_ascii_case("a日b", "CF."), None);
        assert_eq!(strip_prefix_ignore_ascii_case("Cé.", "CF."), None);
    }
}
