//! What the event ingest, the sync and the webhook need from storage: the ticket mirror and
//! notifications ([`EventStore`]), the sync's cursor ([`SyncCursorStore`]) and the
//! webhook's memory of accepted signatures ([`ReplayGuard`]). Adapters:
//! [`super::dynamodb::DynamoEvents`] and the fake [`super::memory::MemoryEvents`].

use async_trait::async_trait;

use crate::{
    model::{Notification, Ticket},
    rt::transactions::TxnPosition,
    store::{StoreResult, Term},
};

/// The ticket mirror and the notifications, written idempotently.
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug {
    /// The stored ticket, if any.
    async fn stored_ticket(&self, id: u64) -> StoreResult<Option<Ticket>>;
    /// Writes `ticket` as read from RT after transaction `as_of`, unless the stored record
    /// was written after a later transaction (two paths may race; the later read wins).
    /// Returns whether it was written.
    async fn mirror_ticket(&self, ticket: &Ticket, as_of: u64) -> StoreResult<bool>;
    /// Stores `notification` unless one with its id exists; returns whether it was stored.
    async fn add_notification(&self, notification: &Notification) -> StoreResult<bool>;
}

/// The outcome of claiming the sync cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorClaim {
    /// This run holds the cursor until its lease ends; `position` is the last committed
    /// one (`None` before the first run).
    Acquired {
        /// The lease id every commit is conditional on.
        lease: String,
        /// Where the last run stopped.
        position: Option<TxnPosition>,
    },
    /// Another run holds it (until its lease ends).
    Busy,
}

/// The sync's cursor: one item, claimed by one run at a time, committed conditionally.
#[async_trait]
pub trait SyncCursorStore: Send + Sync + std::fmt::Debug {
    /// Claims the cursor, its lease for `term`, unless another run's lease is live.
    async fn claim(&self, term: Term) -> StoreResult<CursorClaim>;
    /// Moves the cursor to `position`, only while `lease` still holds it (else `Conflict`)
    /// and only forward.
    async fn commit(&self, lease: &str, position: TxnPosition) -> StoreResult<()>;
    /// Ends the lease (absent or taken over is fine).
    async fn release(&self, lease: &str) -> StoreResult<()>;
    /// The committed position, for monitoring.
    async fn position(&self) -> StoreResult<Option<TxnPosition>>;
}

/// The webhook's replay protection.
#[async_trait]
pub trait ReplayGuard: Send + Sync + std::fmt::Debug {
    /// Remembers `signature` for `term` (until `term.until`). `false` when it is already
    /// remembered: the call is a replay.
    async fn first_use(&self, signature: &str, term: Term) -> StoreResult<bool>;
}
