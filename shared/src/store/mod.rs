//! The boundary to DynamoDB. Four small traits, one per table concern, each with a real
//! adapter ([`dynamodb::DynamoStore`], which implements all four) and an in-memory fake
//! ([`memory::MemoryStore`]). Paging is by opaque cursor ([`cursor`]), never Scan for lists.

use std::{collections::BTreeSet, fmt};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    feed::{Position, Subscription},
    model::{Notification, Ticket},
    tenant::{relay_default_queue, QueueRights},
};

pub mod cursor;
pub mod dynamodb;
pub mod memory;
pub mod schema;

pub use cursor::{CursorError, PageRequest};

/// A DynamoDB failure, keeping its source for logs. Display text is safe for logs but the
/// HTTP layer never shows it to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An AWS call failed (network, throttling, service error).
    #[error("DynamoDB {op} failed: {source}")]
    Aws {
        /// The operation, e.g. `TransactWriteItems`.
        op: &'static str,
        /// What the SDK reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A conditional write lost: the item already exists or changed under us.
    #[error("conditional write lost: {0}")]
    Conflict(String),
    /// The client's cursor is not valid for this query (a client error, not a failure).
    #[error("{0}")]
    BadCursor(#[from] CursorError),
    /// An item that does not have the shape rt-relay writes.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Wraps an SDK error. The SDK's Display for `SdkError` is only "service error", so the
    /// full chain is kept as the source.
    pub fn aws(op: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Aws { op, source: Box::new(source) }
    }
}

/// What every store call returns.
pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a token-paged read (the connections): the items and the opaque token to
/// read on from (`None` at the end).
pub type TokenPage<T> = (Vec<T>, Option<String>);

/// Which page of a token-paged read to return: `limit` items at most, after the opaque
/// token the page before ended with. Not a [`PageRequest`]: these tokens are not the API's
/// cursors, and the push reads pages larger than the API's [`cursor::MAX_LIMIT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageAfter {
    /// The token the page before gave; `None` for the first page.
    pub after: Option<String>,
    /// The most items to return (a limit of 0 reads one).
    pub limit: u32,
}

impl PageAfter {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }
}

/// A span of time from `now` until `until`: how long a claim's lease holds, or how long a
/// memory lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// When the call is made.
    pub now: DateTime<Utc>,
    /// When it ends.
    pub until: DateTime<Utc>,
}

impl Term {
    /// From `now` for `length`.
    pub fn of(now: DateTime<Utc>, length: chrono::Duration) -> Self {
        Term { now, until: now + length }
    }
}

/// A stretch of the feed, read oldest first ([`TicketStore::list_notifications_after`]): the
/// notifications after `after`, none created after `until_millis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSpan {
    /// Where the read starts (exclusive).
    pub after: Position,
    /// The latest creation time (Unix millis) it includes.
    pub until_millis: i64,
}

/// One page of a list, newest first. Serialises as the API's list body
/// `{"items": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Opaque cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Filters for `GET /tickets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFilter {
    /// Only this RT status.
    pub status: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
}

/// A parsed `GET /tickets` query: which tickets, and which page of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketQuery {
    /// The filters.
    pub filter: TicketFilter,
    /// The page asked for.
    pub page: PageRequest,
}

impl TicketQuery {
    /// Every ticket, the first `limit` of them.
    pub fn first(limit: u32) -> Self {
        Self { filter: TicketFilter::default(), page: PageRequest::first(limit) }
    }
}

/// What one create records in one write: the ticket, its `ticket.created` notification and,
/// for an idempotent request, the completion of its key.
#[derive(Debug, Clone, Copy)]
pub struct Creation<'a> {
    /// The ticket record.
    pub ticket: &'a Ticket,
    /// Its notification.
    pub notification: &'a Notification,
    /// The idempotency completion, when the request had a key.
    pub completion: Option<&'a IdempotencyCompletion>,
}

impl<'a> Creation<'a> {
    /// A ticket and its notification, without an idempotency key.
    pub fn new(ticket: &'a Ticket, notification: &'a Notification) -> Self {
        Self { ticket, notification, completion: None }
    }

    /// The same write, completing `done` too.
    pub fn completing(self, done: &'a IdempotencyCompletion) -> Self {
        Self { completion: Some(done), ..self }
    }
}

/// The completion of an idempotent request, written in the same transaction as the ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyCompletion {
    /// The lease under which the request ran.
    pub lease: Lease,
    /// HTTP status of the answer.
    pub status: u16,
    /// JSON body of the answer, replayed to later requests with the same key.
    pub body: String,
}

/// Proof that this request holds an idempotency key for now.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    /// The (hashed) idempotency key.
    pub key: String,
    /// Random id of this holder; every write under the lease is conditional on it.
    pub id: String,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("key", &self.key).finish_non_exhaustive()
    }
}

/// The outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request holds the key. `rt_ticket_id` is set when an earlier attempt already
    /// created the RT ticket but did not finish recording it.
    Acquired {
        /// The lease to write under.
        lease: Lease,
        /// The RT ticket an earlier attempt created, if any.
        rt_ticket_id: Option<u64>,
        /// Set when this claim took over from an earlier holder that did not finish: when
        /// that first attempt claimed the key. It may have created the RT ticket without
        /// noting it (RT timed out), so the caller looks in RT before creating again.
        previous_attempt: Option<DateTime<Utc>>,
    },
    /// An earlier request with this key finished; replay its answer.
    Completed {
        /// HTTP status.
        status: u16,
        /// JSON body.
        body: String,
    },
    /// Another request with this key is running now.
    InProgress,
    /// The key was used with a different body.
    Mismatch,
}

/// Tickets and notifications.
#[async_trait]
pub trait TicketStore: Send + Sync + fmt::Debug {
    /// Writes the ticket record, its notification and (when given) the idempotency
    /// completion in ONE transaction: all or nothing. Fails with `Conflict` when the ticket
    /// or notification already exists or the lease was lost.
    async fn record_created(&self, creation: &Creation<'_>) -> StoreResult<()>;
    /// Finishes a create whose [`TicketStore::record_created`] found the ticket or its
    /// `ticket.created` already recorded by RT's event log (the webhook or the sync saw RT's
    /// `Create` first): stores the idempotency completion (when given; `Conflict` if the
    /// lease was lost) and writes the ticket unless the record there was read from RT after
    /// a transaction (the event mirror's `rt_txn`, never older than this request's read).
    /// No second notification is written.
    async fn complete_recorded(
        &self,
        ticket: &Ticket,
        completion: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()>;
    /// Reads one ticket record.
    async fn get_ticket(&self, id: u64) -> StoreResult<Option<Ticket>>;
    /// Creates or replaces a ticket record (used to refresh it from RT).
    async fn put_ticket(&self, ticket: &Ticket) -> StoreResult<()>;
    /// Lists tickets, newest first.
    async fn list_tickets(&self, query: &TicketQuery) -> StoreResult<Page<Ticket>>;
    /// Lists notifications, newest first.
    async fn list_notifications(&self, page: &PageRequest) -> StoreResult<Page<Notification>>;
    /// Lists the notifications of one type (`ticket.replied`, ...), newest first.
    async fn list_notifications_of_type(
        &self,
        kind: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>>;
    /// Where notification `id` sits in the feed (strongly consistent read); `None` when no
    /// such notification is stored (never was, or deleted by retention).
    async fn notification_position(&self, id: &str) -> StoreResult<Option<Position>>;
    /// The newest notification created at or before `until_millis`, if any.
    async fn newest_position_until(&self, until_millis: i64) -> StoreResult<Option<Position>>;
    /// Lists the notifications in `span`, oldest first. The page's cursor continues the same
    /// ascending read.
    async fn list_notifications_after(
        &self,
        span: &FeedSpan,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>>;
}

/// Idempotency records for `POST /tickets`.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + fmt::Debug {
    /// Claims `key` for a request whose body hashes to `body_hash`, its lease for `term`. A
    /// pending claim whose lease has run out is taken over (keeping the RT ticket id it may
    /// have noted).
    async fn claim(&self, key: &str, body_hash: &str, term: Term) -> StoreResult<Claim>;
    /// Records that RT created `rt_ticket_id` under this lease, so a retry after a failed
    /// store write completes the record instead of creating a second RT ticket.
    async fn note_rt_ticket(&self, lease: &Lease, rt_ticket_id: u64) -> StoreResult<()>;
    /// Gives the key up (RT refused the request), so a retry starts afresh.
    async fn release(&self, lease: &Lease) -> StoreResult<()>;
    /// Keeps the record but ends the lease at `retry_from`: the outcome is unknown (RT
    /// timed out, or recording failed), so a retry takes over from there and finishes it.
    async fn abandon(&self, lease: &Lease, retry_from: DateTime<Utc>) -> StoreResult<()>;
}

/// A live WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// API Gateway's connection id.
    pub id: String,
    /// When `$connect` ran.
    pub connected_at: DateTime<Utc>,
    /// When DynamoDB's TTL may drop the record (API Gateway closes connections after 2 h).
    pub expires_at: DateTime<Utc>,
}

/// The API key a connection was admitted with: for the per-key connection limit, closing
/// a revoked key's sockets, and pushing only what the key may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionOwner {
    /// The key's public id.
    pub key_id: String,
    /// The key's queue rights as the authorizer's context carries them (a JSON array).
    pub queues: String,
}

/// One connection the push may post to, with its owner's queue rights (`None`: a
/// connection recorded without an owner, which only in-process tests make).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The connection id.
    pub id: String,
    /// The owner's queue rights (a JSON array), if recorded.
    pub queues: Option<String>,
    /// Where it is in the resume protocol.
    pub mark: FeedMark,
    /// Its subscription (a JSON [`crate::feed::Subscription`]); `None`: everything.
    pub filter: Option<String>,
}

impl Recipient {
    /// Recipients for `ids`, each with the queue rights `queues_of` knows for it, live.
    pub fn list(ids: Vec<String>, queues_of: impl Fn(&str) -> Option<String>) -> Vec<Self> {
        ids.into_iter()
            .map(|id| Recipient { queues: queues_of(&id), id, mark: FeedMark::Live, filter: None })
            .collect()
    }
}

/// The channel of the connections that may receive every queue (keys with `*` and no
/// queue filter, and connections recorded without an owner): the push reads it for every
/// batch, besides one channel per queue in the batch.
pub const EVERY_QUEUE: &str = "*";
/// The most channels a connection is indexed under; one with more (a key limited to many
/// queues, without a queue filter) is on [`EVERY_QUEUE`] instead, and the push filters it
/// by its rights. Keeps a subscription change (base item, old channels out, new ones in)
/// inside one TransactWriteItems (100 items).
pub const MAX_CHANNELS: usize = 40;

/// The channels (docs/ARCHITECTURE.md, "Connections") a connection with these queue rights
/// (a JSON array; `None`: no owner, every queue) and this stored filter is indexed under:
/// the queues it may receive (its rights, narrowed by its filter's queues), or
/// [`EVERY_QUEUE`] when that is every queue (or more than [`MAX_CHANNELS`]). Empty when
/// it may receive nothing (it asked only for queues its key may not read).
pub fn channels_of(queues: Option<&str>, filter: Option<&str>) -> BTreeSet<String> {
    let rights = match queues {
        None => QueueRights::All,
        Some(q) => {
            let list: Vec<String> = serde_json::from_str(q).unwrap_or_default();
            QueueRights::from_list(&list, relay_default_queue())
        }
    };
    let wanted = Subscription::from_stored(filter).queues;
    let channels: BTreeSet<String> = match (&rights, wanted.is_empty()) {
        (QueueRights::All, true) => return BTreeSet::from([EVERY_QUEUE.to_owned()]),
        (QueueRights::Only(allowed), true) => allowed.clone(),
        (rights, false) => wanted.into_iter().filter(|q| rights.allows(q)).collect(),
    };
    if channels.len() > MAX_CHANNELS {
        return BTreeSet::from([EVERY_QUEUE.to_owned()]);
    }
    channels
}

/// A connection that resumes ([`ConnectionStore::add_resuming`]).
#[derive(Debug, Clone, Copy)]
pub struct Resuming<'a> {
    /// The key it was admitted with, if any.
    pub owner: Option<&'a ConnectionOwner>,
    /// The notification id the client gave.
    pub since: &'a str,
    /// Its position (`seq`); `None` when it was expired: the client gets `resync`.
    pub replay_from: Option<&'a str>,
}

/// Where a connection is in the resume protocol (docs/ARCHITECTURE.md, "Resume").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FeedMark {
    /// Live from the start (no `since`): the push posts it everything.
    #[default]
    Live,
    /// Being replayed to: the push holds its notifications (their `seq`) for the resume.
    Replaying,
    /// Live after a resume: the push posts only positions (`seq`) after this one.
    LiveAfter(String),
}

/// What the resume reads of a connection that asked for `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeRecord {
    /// When `$connect` recorded it.
    pub connected_at: DateTime<Utc>,
    /// The owner's queue rights (a JSON array), if recorded.
    pub queues: Option<String>,
    /// The notification id the client gave.
    pub since: String,
    /// Its position (`seq`); `None` when it was expired: the client gets `resync`.
    pub replay_from: Option<String>,
    /// Where it is now.
    pub mark: FeedMark,
    /// Its subscription (a JSON [`crate::feed::Subscription`]); `None`: everything.
    pub filter: Option<String>,
}

/// Live WebSocket connections.
#[async_trait]
pub trait ConnectionStore: Send + Sync + fmt::Debug {
    /// Records a connection.
    async fn add(&self, connection: &Connection) -> StoreResult<()>;
    /// Records a connection with the key it was admitted with. The defaults below are for
    /// stores that record no owners (test wrappers): they forget the owner, count nothing
    /// and give every connection no queue rights to filter by; the DynamoDB store and the
    /// in-memory fake implement all of them.
    async fn add_owned(
        &self,
        connection: &Connection,
        _owner: &ConnectionOwner,
    ) -> StoreResult<()> {
        self.add(connection).await
    }
    /// How many connections `key_id` has open (as recorded).
    async fn count_for_key(&self, key_id: &str) -> StoreResult<usize> {
        Ok(self.ids_for_key(key_id).await?.len())
    }
    /// The ids of `key_id`'s open connections.
    async fn ids_for_key(&self, _key_id: &str) -> StoreResult<Vec<String>> {
        Ok(Vec::new())
    }
    /// One page of the connections on `channel` (a queue, or [`EVERY_QUEUE`]; see
    /// [`channels_of`]): the push's audience. The default (stores without the index: test
    /// wrappers, whose connections have no owner) has every connection on [`EVERY_QUEUE`]
    /// and none on a queue.
    async fn audience(&self, channel: &str, page: &PageAfter) -> StoreResult<TokenPage<Recipient>> {
        if channel == EVERY_QUEUE {
            self.recipients(page).await
        } else {
            Ok((Vec::new(), None))
        }
    }
    /// [`ConnectionStore::page`] with each connection's queue rights (every connection,
    /// whatever its channels: for tests and tools; the push reads
    /// [`ConnectionStore::audience`]).
    async fn recipients(&self, page: &PageAfter) -> StoreResult<TokenPage<Recipient>> {
        let (ids, next) = self.page(page).await?;
        Ok((Recipient::list(ids, |_| None), next))
    }
    /// Records a connection that resumes from `resume.since` (resolved to
    /// `resume.replay_from`, `None` when expired) in the replaying state, so the push holds
    /// what it would post to it. The default (test wrappers) cannot.
    async fn add_resuming(&self, connection: &Connection, _: Resuming<'_>) -> StoreResult<()> {
        Err(StoreError::Corrupt(format!("this store cannot resume connection {}", connection.id)))
    }
    /// A resuming connection's record (`None`: gone, or not resuming).
    async fn resume_record(&self, _connection_id: &str) -> StoreResult<Option<ResumeRecord>> {
        Ok(None)
    }
    /// Holds `seqs` for a replaying connection; `false` when it is not replaying (any more).
    async fn hold(&self, _connection_id: &str, _seqs: &[String]) -> StoreResult<bool> {
        Ok(false)
    }
    /// Takes (removes and returns) a replaying connection's held positions.
    async fn take_held(&self, _connection_id: &str) -> StoreResult<Vec<String>> {
        Ok(Vec::new())
    }
    /// Makes a replaying connection live after `live_after` (`None`: everything), only if
    /// it holds nothing; `false` when the push held more meanwhile (or it is gone).
    async fn go_live(&self, _connection_id: &str, _live_after: Option<&str>) -> StoreResult<bool> {
        Ok(false)
    }
    /// Stores connection `connection_id`'s subscription (a JSON
    /// [`crate::feed::Subscription`]; `None`: everything), replacing the one it had;
    /// `false` when the connection is not recorded. The default (test wrappers) cannot.
    async fn subscribe(&self, connection_id: &str, _filter: Option<&str>) -> StoreResult<bool> {
        Err(StoreError::Corrupt(format!("this store cannot filter connection {connection_id}")))
    }
    /// Forgets a connection (absent is fine).
    async fn remove(&self, connection_id: &str) -> StoreResult<()>;
    /// One page of connection ids, and the token for the next page (`None` at the end).
    async fn page(&self, page: &PageAfter) -> StoreResult<TokenPage<String>>;
}
