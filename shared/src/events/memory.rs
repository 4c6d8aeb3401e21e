//! In-memory fake of the event stores for unit tests, with the same conditional rules as
//! the DynamoDB adapter and a failure hook.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::store::{CursorClaim, EventStore, ReplayGuard, SyncCursorStore};
use crate::{
    model::{Notification, Ticket},
    rt::transactions::TxnPosition,
    store::{StoreError, StoreResult, Term},
};

#[derive(Debug, Default)]
struct State {
    tickets: BTreeMap<u64, (Ticket, Option<u64>)>,
    notifications: Vec<Notification>,
    position: Option<TxnPosition>,
    lease: Option<(String, DateTime<Utc>)>,
    next_lease: u64,
    signatures: BTreeMap<String, DateTime<Utc>>,
    /// Notifications that may still be stored before the store "fails".
    notification_budget: Option<usize>,
}

/// The event stores in memory.
#[derive(Debug, Default)]
pub struct MemoryEvents {
    state: Mutex<State>,
}

impl MemoryEvents {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stored notification ids, sorted.
    pub fn notification_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().notifications.iter().map(|n| n.id.clone()).collect();
        ids.sort();
        ids
    }

    /// Stored notification types, in the order they were stored.
    pub fn notification_kinds(&self) -> Vec<String> {
        self.lock().notifications.iter().map(|n| n.kind.clone()).collect()
    }

    /// Stored notifications, in the order they were stored.
    pub fn notifications(&self) -> Vec<Notification> {
        self.lock().notifications.clone()
    }

    /// A stored ticket.
    pub fn ticket(&self, id: u64) -> Option<Ticket> {
        self.lock().tickets.get(&id).map(|(t, _)| t.clone())
    }

    /// The committed cursor.
    pub fn committed(&self) -> Option<TxnPosition> {
        self.lock().position
    }

    /// Records a ticket and its `ticket.created` as `POST /tickets` does; false if either
    /// exists.
    pub fn add_posted(&self, ticket: &Ticket, created: &Notification) -> bool {
        let mut st = self.lock();
        if st.tickets.contains_key(&ticket.id)
            || st.notifications.iter().any(|n| n.id == created.id)
        {
            return false;
        }
        st.tickets.insert(ticket.id, (ticket.clone(), None));
        st.notifications.push(created.clone());
        true
    }

    /// Lets `n` more notifications be stored, then fails every write as if DynamoDB died.
    pub fn fail_notifications_after(&self, n: usize) {
        self.lock().notification_budget = Some(n);
    }

    /// Stops failing (DynamoDB is back).
    pub fn recover(&self) {
        self.lock().notification_budget = None;
    }

    /// Ends every lease now, as time passing would.
    pub fn expire_leases(&self) {
        self.lock().lease = None;
    }
}

fn down() -> StoreError {
    StoreError::aws("PutItem", std::io::Error::other("injected failure"))
}

#[async_trait]
impl EventStore for MemoryEvents {
    async fn stored_ticket(&self, id: u64) -> StoreResult<Option<Ticket>> {
        Ok(self.ticket(id))
    }

    async fn mirror_ticket(&self, ticket: &Ticket, as_of: u64) -> StoreResult<bool> {
        let mut st = self.lock();
        if matches!(st.tickets.get(&ticket.id), Some((_, Some(seen))) if *seen > as_of) {
            return Ok(false);
        }
        st.tickets.insert(ticket.id, (ticket.clone(), Some(as_of)));
        Ok(true)
    }

    async fn add_notification(&self, notification: &Notification) -> StoreResult<bool> {
        let mut st = self.lock();
        if st.notifications.iter().any(|n| n.id == notification.id) {
            return Ok(false);
        }
        match &mut st.notification_budget {
            Some(0) => return Err(down()),
            Some(n) => *n -= 1,
            None => {}
        }
        st.notifications.push(notification.clone());
        Ok(true)
    }
}

#[async_trait]
impl SyncCursorStore for MemoryEvents {
    async fn claim(&self, term: Term) -> StoreResult<CursorClaim> {
        let Term { now, until } = term;
        let mut st = self.lock();
        if matches!(&st.lease, Some((_, until)) if *until > now) {
            return Ok(CursorClaim::Busy);
        }
        st.next_lease += 1;
        let lease = format!("lease-{}", st.next_lease);
        st.lease = Some((lease.clone(), until));
        Ok(CursorClaim::Acquired { lease, position: st.position })
    }

    async fn commit(&self, lease: &str, position: TxnPosition) -> StoreResult<()> {
        let mut st = self.lock();
        if !matches!(&st.lease, Some((id, _)) if id == lease) {
            return Err(StoreError::Conflict("sync lease lost".into()));
        }
        if st.position.is_none_or(|p| p.id <= position.id) {
            st.position = Some(position);
        }
        Ok(())
    }

    async fn release(&self, lease: &str) -> StoreResult<()> {
        let mut st = self.lock();
        if matches!(&st.lease, Some((id, _)) if id == lease) {
            st.lease = None;
        }
        Ok(())
    }

    async fn position(&self) -> StoreResult<Option<TxnPosition>> {
        Ok(self.lock().position)
    }
}

#[async_trait]
impl ReplayGuard for MemoryEvents {
    async fn first_use(&self, signature: &str, term: Term) -> StoreResult<bool> {
        let Term { now, until } = term;
        let mut st = self.lock();
        if matches!(st.signatures.get(signature), Some(kept) if *kept >= now) {
            return Ok(false);
        }
        st.signatures.insert(signature.to_owned(), until);
        Ok(true)
    }
}
