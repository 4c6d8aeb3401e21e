//! RT's durable event log, its Transactions table, as rt-relay reads it: every change to a
//! ticket (create, status, owner, queue, subject, priority, reply, comment, ...) is one
//! transaction with an increasing integer id. The event ingest (`crate::events`) turns them
//! into notifications; this module only says what a transaction is and how to read them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{RtClient, RtError};

/// One ticket transaction, as RT recorded it. For `Field` `Owner` and `Queue` the adapter
/// resolves RT's numeric `OldValue`/`NewValue` to the user and queue names; every other
/// value is RT's own text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtTransaction {
    /// RT's transaction id (increasing).
    pub id: u64,
    /// The ticket it belongs to.
    pub ticket_id: u64,
    /// RT's `Type`: `Create`, `Status`, `Set`, `Give`, `Take`, `Correspond`, `Comment`, ...
    pub kind: String,
    /// RT's `Field` (`Status`, `Owner`, `Queue`, `Subject`, `Priority`, ...), empty if none.
    pub field: String,
    /// RT's `OldValue` (names for owner and queue), empty if none.
    pub old_value: String,
    /// RT's `NewValue` (names for owner and queue), empty if none.
    pub new_value: String,
    /// The RT user who made the change (user name).
    pub creator: String,
    /// When RT recorded it (whole seconds).
    pub created: DateTime<Utc>,
}

/// Where a reader of the log stands: after this transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnPosition {
    /// The last transaction id already read.
    pub id: u64,
    /// When RT recorded it. REST 1.0 has no transaction search, so its adapter finds the
    /// tickets updated since this time and reads their histories.
    pub created: DateTime<Utc>,
}

/// One page of [`RtTransactions::transactions_after`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnPage {
    /// Ticket transactions after the position, in id order.
    pub transactions: Vec<RtTransaction>,
    /// Ticket transactions after the last one on this page that exist now (0 when the
    /// reader has caught up): the sync's lag.
    pub remaining: u64,
}

/// Reading RT's transaction log, on top of the ticket operations.
#[async_trait]
pub trait RtTransactions: RtClient {
    /// Ticket transactions with an id above `after.id`, in id order, at most `limit`.
    async fn transactions_after(&self, after: TxnPosition, limit: u32) -> Result<TxnPage, RtError>;
    /// One transaction of `ticket_id`; `None` when RT has no such transaction on that
    /// ticket (or it is not a ticket transaction).
    async fn transaction(&self, ticket_id: u64, id: u64) -> Result<Option<RtTransaction>, RtError>;
    /// The newest ticket transaction, where a sync with no cursor starts (history before
    /// it is not replayed as notifications). `None` for an RT without tickets.
    async fn latest_transaction(&self) -> Result<Option<TxnPosition>, RtError>;
    /// The text a reply or comment carried (its first text/plain part), or `None`.
    async fn message_text(&self, txn: &RtTransaction) -> Result<Option<String>, RtError>;
}
