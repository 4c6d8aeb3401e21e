//! The one ingest both paths run (the sync over a page of RT's log, the webhook over one
//! transaction): classify each transaction, read each touched ticket from RT once, mirror
//! it into the tickets table, then store one notification per event. Every write is
//! idempotent (notification ids come from RT's ids; the mirror keeps the state read after
//! the latest transaction), so a batch may be applied twice, by either path or both, and
//! the result is the same as once.

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Utc};
use tracing::{debug, instrument};

use super::{classify, notification, store::EventStore, TicketEvent};
use crate::{
    model::Ticket,
    rt::{
        transactions::{RtTransaction, RtTransactions},
        RtError, RtTicket,
    },
    store::StoreError,
    usecases::ticket_from_rt,
};

/// Why a batch was not (completely) applied. Whatever was written stays valid: applying
/// the batch again finishes it without doubling anything.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// RT could not be read.
    #[error(transparent)]
    Rt(#[from] RtError),
    /// DynamoDB could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What applying a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestStats {
    /// Transactions that are events in the catalogue.
    pub events: usize,
    /// Notifications stored now.
    pub stored: usize,
    /// Notifications that were already stored (by the other path, or an earlier attempt).
    pub duplicates: usize,
    /// Events whose ticket RT no longer shows (deleted, or not visible to rt-relay's user).
    pub skipped: usize,
    /// Ticket records written.
    pub mirrored: usize,
}

impl std::ops::AddAssign for IngestStats {
    fn add_assign(&mut self, o: Self) {
        self.events += o.events;
        self.stored += o.stored;
        self.duplicates += o.duplicates;
        self.skipped += o.skipped;
        self.mirrored += o.mirrored;
    }
}

/// Turns RT transactions into ticket records and notifications.
#[derive(Debug, Clone)]
pub struct Ingest {
    rt: Arc<dyn RtTransactions>,
    store: Arc<dyn EventStore>,
}

/// A ticket as read for one batch: RT's fields and the record to mirror.
struct Read {
    rt: RtTicket,
    ticket: Ticket,
    /// The batch's last transaction on this ticket.
    as_of: u64,
}

impl Ingest {
    /// Wires the use case.
    pub fn new(rt: Arc<dyn RtTransactions>, store: Arc<dyn EventStore>) -> Self {
        Self { rt, store }
    }

    /// Applies `transactions` (in id order). The tickets are read after the whole batch,
    /// so each notification's summary shows the ticket after its change (and after any
    /// later change in the same batch); the mirror is written before the notifications, so
    /// a client that hears of an event finds the ticket in `GET /tickets` already.
    #[instrument(skip_all, fields(transactions = transactions.len()))]
    pub async fn apply(
        &self,
        transactions: &[RtTransaction],
        now: DateTime<Utc>,
    ) -> Result<IngestStats, IngestError> {
        let mut stats = IngestStats::default();
        let events: Vec<(&RtTransaction, TicketEvent)> =
            transactions.iter().filter_map(|t| classify(t).map(|e| (t, e))).collect();
        stats.events = events.len();
        let mut tickets: BTreeMap<u64, Option<Read>> = BTreeMap::new();
        for (txn, _) in &events {
            match tickets.get_mut(&txn.ticket_id) {
                Some(Some(read)) => read.as_of = read.as_of.max(txn.id),
                Some(None) => {}
                None => {
                    let read = self.read_ticket(txn.ticket_id, txn.id, now).await?;
                    tickets.insert(txn.ticket_id, read);
                }
            }
        }
        for read in tickets.values().flatten() {
            if self.store.mirror_ticket(&read.ticket, read.as_of).await? {
                stats.mirrored += 1;
            }
        }
        for (txn, event) in &events {
            let Some(Some(read)) = tickets.get(&txn.ticket_id) else {
                stats.skipped += 1;
                continue;
            };
            let message = if event.has_message() { self.rt.message_text(txn).await? } else { None };
            let note = notification(txn, event, &read.ticket, &read.rt, message.as_deref(), now);
            if self.store.add_notification(&note).await? {
                stats.stored += 1;
            } else {
                debug!(id = %note.id, "notification already stored");
                stats.duplicates += 1;
            }
        }
        Ok(stats)
    }

    /// RT's current state of a ticket, with the stored description and requestor kept
    /// (RT is asked for the first message only for a ticket never recorded). `None` when
    /// RT no longer shows the ticket.
    async fn read_ticket(
        &self,
        id: u64,
        as_of: u64,
        now: DateTime<Utc>,
    ) -> Result<Option<Read>, IngestError> {
        let rt = match self.rt.get(id).await {
            Ok(t) => t,
            Err(RtError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let stored = self.store.stored_ticket(id).await?;
        let (description, requestor) = match stored {
            Some(t) => (t.description, t.requestor),
            None => match self.rt.description(id).await {
                Ok(d) => (d, None),
                Err(RtError::NotFound) => (String::new(), None),
                Err(e) => return Err(e.into()),
            },
        };
        let ticket = ticket_from_rt(&rt, description, requestor, self.rt.ticket_url(id), now);
        Ok(Some(Read { rt, ticket, as_of }))
    }
}
