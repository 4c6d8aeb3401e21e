//! The RT REST 2.0 adapter: JSON at `{base}REST/2.0/`, queue names resolved from ids and
//! cached. The adapter is split by responsibility:
//!
//! * this module: [`Rest2Client`] and its [`RtClient`] methods, one per RT operation. A new
//!   endpoint is a method here (or in the private `impl Rest2Client` helpers below the trait
//!   impl) that calls `get_json`/`post_json` with its answer's shape from `json`;
//! * `transport`: credentials, requests, and non-2xx answers turned into errors;
//! * `json`: the JSON shapes read and written, tickets, what a refusal means (no I/O);
//! * `names`: the bounded caches of queue and user names RT gives only as ids;
//! * `transactions`: RT's transaction log ([`super::transactions::RtTransactions`]).
//!
//! RT REST 2.0 rewrites CRLF as LF in a new ticket's content, so a description containing
//! CRLF is refused with [`RtError::Rejected`] instead of being stored changed. Everything
//! else (leading and trailing blank lines, indentation, lone CR, "0") round-trips exactly.

use std::{collections::HashSet, fmt};

use http::HeaderValue;
use tracing::{debug, instrument};

use self::{
    json::{
        create_body, create_transaction_id, Collection, CreatedJson, QueueItem, QueueJson,
        TicketJson, TransactionItem,
    },
    names::NameCache,
    transport::authorization,
};
use super::{
    endpoint::RtEndpoint, paging::PageWindow, ticket_sql::ticket_sql, RtClient, RtCreate, RtError,
    RtPage, RtQuery, RtTicket, MAX_PER_PAGE,
};
use crate::config::RtConfig;

mod json;
mod names;
mod transactions;
mod transport;

/// Fields asked for when listing, so one request returns whole tickets.
const LIST_FIELDS: &str = "Subject,Status,Queue,Owner,Priority,Created,Requestor";
/// Queue names kept at most.
const MAX_CACHED_QUEUES: usize = 1024;
/// User names kept at most (owners and transaction creators).
const MAX_CACHED_USERS: usize = 4096;

/// Speaks RT REST 2.0. Cheap to share: one pooled HTTP client, one queue-name cache.
pub struct Rest2Client {
    endpoint: RtEndpoint,
    authorization: HeaderValue,
    queue_names: NameCache,
    user_names: NameCache,
}

impl fmt::Debug for Rest2Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rest2Client").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl Rest2Client {
    /// Builds the adapter; fails only if the credentials cannot be put in a header.
    pub fn new(config: RtConfig) -> Result<Self, RtError> {
        Ok(Self {
            endpoint: RtEndpoint::new(&config, "REST/2.0/")?,
            authorization: authorization(&config.auth)?,
            queue_names: NameCache::new(MAX_CACHED_QUEUES),
            user_names: NameCache::new(MAX_CACHED_USERS),
        })
    }
}

#[async_trait::async_trait]
impl RtClient for Rest2Client {
    #[instrument(level = "debug", skip_all, fields(rt.api = "rest2", queue = %ticket.queue))]
    async fn create(&self, ticket: &RtCreate) -> Result<u64, RtError> {
        let created: CreatedJson = self.post_json("ticket", &create_body(ticket)?).await?;
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
        Ok(self.transaction_text(transaction).await?.unwrap_or_default())
    }

    #[instrument(level = "debug", skip(self, query), fields(rt.api = "rest2"))]
    async fn list(&self, query: &RtQuery, page: u32, per_page: u32) -> Result<RtPage, RtError> {
        let window = PageWindow::new(page, per_page);
        let sql = ticket_sql(query)?;
        let (page_s, per_page_s) = (window.page.to_string(), window.per_page.to_string());
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
            if self.queue_names.get(qid).is_none() && !missing.contains(&qid) {
                missing.push(qid);
            }
        }
        futures_util::future::try_join_all(missing.iter().map(|&qid| self.queue_name(qid))).await?;
        let mut seen = HashSet::new();
        let mut tickets = Vec::with_capacity(found.items.len());
        for item in found.items {
            let qid = item.queue_id()?;
            let queue = match self.queue_names.get(qid) {
                Some(name) => name,
                None => self.queue_name(qid).await?,
            };
            let ticket = item.into_ticket(queue)?;
            if seen.insert(ticket.id) {
                tickets.push(ticket);
            }
        }
        Ok(window.page_of(tickets, total))
    }

    fn ticket_url(&self, id: u64) -> String {
        self.endpoint.ticket_url(id)
    }

    /// `GET /queues/all` (names only): the queue-name cache filled in one authenticated call,
    /// so the first `get` after a cold start makes one request to RT instead of two.
    async fn warm_up(&self) -> Result<String, RtError> {
        let page = MAX_PER_PAGE.to_string();
        let queues: Collection<QueueItem> =
            self.get_json("queues/all", &[("fields", "Name"), ("per_page", &page)]).await?;
        let mut named = 0;
        for queue in &queues.items {
            if let Some(id) = queue.id.as_id() {
                self.queue_names.put(id, &queue.name);
                named += 1;
            }
        }
        Ok(format!("{named} queue names"))
    }
}

/// Endpoint helpers the [`RtClient`] methods share.
impl Rest2Client {
    /// The queue's name, from the cache or `GET /queue/:id`.
    async fn queue_name(&self, id: u64) -> Result<String, RtError> {
        if let Some(name) = self.queue_names.get(id) {
            return Ok(name);
        }
        let queue: QueueJson = self.get_json(&format!("queue/{id}"), &[]).await?;
        self.queue_names.put(id, &queue.name);
        Ok(queue.name)
    }

    /// The Create transaction's id (the first in the ticket's history).
    async fn create_transaction(&self, id: u64) -> Result<u64, RtError> {
        let history: Collection<TransactionItem> = self
            .get_json(&format!("ticket/{id}/history"), &[("fields", "Type"), ("per_page", "100")])
            .await?;
        match create_transaction_id(&history.items) {
            Some(tid) => Ok(tid),
            None => {
                // RT answers an empty history, not 404, for a ticket that does not exist.
                self.get_json::<TicketJson>(&format!("ticket/{id}"), &[]).await?;
                Err(RtError::Malformed(format!("ticket {id} has no Create transaction")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::{RtApi, RtAuth},
        rt::offline_config,
        secret::Secret,
    };

    #[tokio::test]
    async fn crlf_is_refused_before_any_request() {
        let rt = Rest2Client::new(offline_config(RtApi::Rest2, RtAuth::Token(Secret::new("t"))))
            .unwrap();
        let ticket = RtCreate::new("General", "s", "a\r\nb");
        assert!(matches!(rt.create(&ticket).await, Err(RtError::Rejected(_))));
    }

    #[test]
    fn debug_never_shows_credentials() {
        let auth = RtAuth::Basic { username: "u".into(), password: Secret::new("hunter2") };
        let client = Rest2Client::new(offline_config(RtApi::Rest2, auth)).unwrap();
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("hunter2")
                && !shown.contains("aHVudGVyMg")
                && !shown.contains("dTpodW50ZXIy"),
            "{shown}"
        );
    }
}
