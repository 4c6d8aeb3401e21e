//! In-memory fakes of the store traits for unit tests: same ordering, paging and
//! idempotency rules as the DynamoDB adapter, plus failure injection.

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Bound,
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex, MutexGuard,
    },
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    channels_of,
    cursor::{self, CursorError, NotificationCursor, TicketCursor},
    Claim, Connection, ConnectionOwner, ConnectionStore, Creation, FeedMark, FeedSpan,
    IdempotencyCompletion, IdempotencyStore, Lease, Page, PageAfter, PageRequest, Recipient,
    ResumeRecord, Resuming, StoreError, StoreResult, Term, TicketQuery, TicketStore, TokenPage,
};
use crate::{
    feed::Position,
    model::{Notification, Ticket},
};

#[derive(Debug, Clone)]
struct IdemRecord {
    body_hash: String,
    lease_id: String,
    lease_until: DateTime<Utc>,
    rt_ticket_id: Option<u64>,
    done: Option<(u16, String)>,
    created: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct State {
    tickets: BTreeMap<u64, Ticket>,
    /// Keyed by (created millis, id), like the DynamoDB feed index.
    notifications: BTreeMap<(i64, String), Notification>,
    connections: BTreeMap<String, Connection>,
    connection_owners: BTreeMap<String, ConnectionOwner>,
    /// Subscriptions (JSON) of connections that narrowed their feed.
    connection_filters: BTreeMap<String, String>,
    /// Resuming connections: the record and the held positions.
    resumes: BTreeMap<String, (ResumeRecord, BTreeSet<String>)>,
    /// The `by-channel` index: each channel's connection ids.
    channels: BTreeMap<String, BTreeSet<String>>,
    idempotency: BTreeMap<String, IdemRecord>,
    next_lease: u64,
}

/// All four stores in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    fail_record_created: AtomicU32,
    /// Each [`ConnectionStore::audience`] read: the channel and how many it returned.
    audience_reads: Mutex<Vec<(String, usize)>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` calls to `record_created` fail as if DynamoDB were down.
    pub fn fail_next_record_created(&self, n: u32) {
        self.fail_record_created.store(n, Ordering::SeqCst);
    }

    /// Number of stored notifications.
    pub fn notification_count(&self) -> usize {
        self.lock().notifications.len()
    }

    /// Number of stored connections.
    pub fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    /// Takes the record of the [`ConnectionStore::audience`] reads since the last call: the
    /// channel of each and how many connections it returned.
    pub fn take_audience_reads(&self) -> Vec<(String, usize)> {
        std::mem::take(&mut *self.audience_reads.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not hide this test's own result.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn down() -> StoreError {
    StoreError::aws("TransactWriteItems", std::io::Error::other("injected failure"))
}

#[async_trait]
impl TicketStore for MemoryStore {
    async fn record_created(&self, creation: &Creation<'_>) -> StoreResult<()> {
        let Creation { ticket, notification, completion } = *creation;
        if self
            .fail_record_created
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(down());
        }
        let mut st = self.lock();
        let note_key = (notification.created_at.timestamp_millis(), notification.id.clone());
        if st.tickets.contains_key(&ticket.id)
            || st.notifications.values().any(|n| n.id == notification.id)
        {
            return Err(StoreError::Conflict("ticket or notification exists".into()));
        }
        if let Some(done) = completion {
            store_completion(&mut st, done, ticket.id)?;
        }
        st.tickets.insert(ticket.id, ticket.clone());
        st.notifications.insert(note_key, notification.clone());
        Ok(())
    }

    async fn complete_recorded(
        &self,
        ticket: &Ticket,
        completion: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        let mut st = self.lock();
        if let Some(done) = completion {
            store_completion(&mut st, done, ticket.id)?;
        }
        st.tickets.entry(ticket.id).or_insert_with(|| ticket.clone());
        Ok(())
    }

    async fn get_ticket(&self, id: u64) -> StoreResult<Option<Ticket>> {
        Ok(self.lock().tickets.get(&id).cloned())
    }

    async fn put_ticket(&self, ticket: &Ticket) -> StoreResult<()> {
        self.lock().tickets.insert(ticket.id, ticket.clone());
        Ok(())
    }

    async fn list_tickets(&self, query: &TicketQuery) -> StoreResult<Page<Ticket>> {
        let TicketQuery { filter, page } = query;
        let scope = format!("memory-tickets|{:?}|{:?}", filter.queue, filter.status);
        let before = page
            .cursor
            .as_deref()
            .map(|c| cursor::decode::<TicketCursor>(&scope, c))
            .transpose()?;
        let st = self.lock();
        let mut matching = st
            .tickets
            .values()
            .rev()
            .filter(|t| before.as_ref().is_none_or(|b| t.id < b.id))
            .filter(|t| filter.status.as_ref().is_none_or(|s| &t.status == s))
            .filter(|t| filter.queue.as_ref().is_none_or(|q| &t.queue == q))
            .take(page.limit as usize + 1)
            .cloned()
            .collect::<Vec<_>>();
        let more = matching.len() > page.limit as usize;
        matching.truncate(page.limit as usize);
        let next_cursor = matching
            .last()
            .filter(|_| more)
            .map(|t| cursor::encode(&scope, &TicketCursor { id: t.id }));
        Ok(Page { items: matching, next_cursor })
    }

    async fn list_notifications(&self, page: &PageRequest) -> StoreResult<Page<Notification>> {
        self.notifications_page(None, page)
    }

    async fn list_notifications_of_type(
        &self,
        kind: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>> {
        self.notifications_page(Some(kind), page)
    }

    async fn notification_position(&self, id: &str) -> StoreResult<Option<Position>> {
        let st = self.lock();
        Ok(st
            .notifications
            .keys()
            .find(|(_, key_id)| key_id == id)
            .map(|(millis, id)| Position { millis: *millis, id: id.clone() }))
    }

    async fn newest_position_until(&self, until_millis: i64) -> StoreResult<Option<Position>> {
        let st = self.lock();
        Ok(st
            .notifications
            .keys()
            .rev()
            .find(|(millis, _)| *millis <= until_millis)
            .map(|(millis, id)| Position { millis: *millis, id: id.clone() }))
    }

    async fn list_notifications_after(
        &self,
        span: &FeedSpan,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>> {
        let scope = "memory-notifications-since";
        let from = match page.cursor.as_deref() {
            None => span.after.clone(),
            Some(c) => {
                let key: NotificationCursor = cursor::decode(scope, c)?;
                Position::parse_seq(&key.seq).ok_or(CursorError::BadCursor)?
            }
        };
        let st = self.lock();
        let mut items: Vec<Notification> = st
            .notifications
            .range((Bound::Excluded((from.millis, from.id)), Bound::Unbounded))
            .take_while(|((millis, _), _)| *millis <= span.until_millis)
            .take(page.limit as usize + 1)
            .map(|(_, n)| n.clone())
            .collect();
        let more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next_cursor = items.last().filter(|_| more).map(|n| {
            let p = Position::of(n);
            cursor::encode(scope, &NotificationCursor { seq: p.seq(), id: p.id })
        });
        Ok(Page { items, next_cursor })
    }
}

impl MemoryStore {
    fn notifications_page(
        &self,
        kind: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>> {
        let scope = match kind {
            None => "memory-notifications".to_owned(),
            Some(kind) => format!("memory-notifications|{kind}"),
        };
        let scope = scope.as_str();
        // The same cursor key as the DynamoDB feed, so the same keys are refused.
        let before = match page.cursor.as_deref() {
            None => None,
            Some(c) => {
                let key: NotificationCursor = cursor::decode(scope, c)?;
                let millis = key.seq.split_once('#').and_then(|(m, _)| m.parse::<i64>().ok());
                Some((millis.ok_or(CursorError::BadCursor)?, key.id))
            }
        };
        let st = self.lock();
        let mut items: Vec<((i64, String), Notification)> = st
            .notifications
            .iter()
            .rev()
            .filter(|(k, _)| before.as_ref().is_none_or(|b| *k < b))
            .filter(|(_, n)| kind.is_none_or(|kind| n.kind == kind))
            .take(page.limit as usize + 1)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next_cursor = items.last().filter(|_| more).map(|((millis, id), _)| {
            cursor::encode(
                scope,
                &NotificationCursor { seq: format!("{millis:013}#{id}"), id: id.clone() },
            )
        });
        Ok(Page { items: items.into_iter().map(|(_, n)| n).collect(), next_cursor })
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, key: &str, body_hash: &str, term: Term) -> StoreResult<Claim> {
        let Term { now, until: lease_until } = term;
        let mut st = self.lock();
        st.next_lease += 1;
        let lease = Lease { key: key.to_owned(), id: format!("lease-{}", st.next_lease) };
        let fresh = IdemRecord {
            body_hash: body_hash.to_owned(),
            lease_id: lease.id.clone(),
            lease_until,
            rt_ticket_id: None,
            done: None,
            created: now,
        };
        let Some(rec) = st.idempotency.get_mut(key) else {
            st.idempotency.insert(key.to_owned(), fresh);
            return Ok(Claim::Acquired { lease, rt_ticket_id: None, previous_attempt: None });
        };
        if rec.body_hash != body_hash {
            return Ok(Claim::Mismatch);
        }
        if let Some((status, body)) = &rec.done {
            return Ok(Claim::Completed { status: *status, body: body.clone() });
        }
        if rec.lease_until > now {
            return Ok(Claim::InProgress);
        }
        rec.lease_id = lease.id.clone();
        rec.lease_until = lease_until;
        Ok(Claim::Acquired {
            lease,
            rt_ticket_id: rec.rt_ticket_id,
            previous_attempt: Some(rec.created),
        })
    }

    async fn note_rt_ticket(&self, lease: &Lease, rt_ticket_id: u64) -> StoreResult<()> {
        let mut st = self.lock();
        match st.idempotency.get_mut(&lease.key).filter(|r| r.lease_id == lease.id) {
            Some(rec) => {
                rec.rt_ticket_id = Some(rt_ticket_id);
                Ok(())
            }
            None => Err(StoreError::Conflict("idempotency lease lost".into())),
        }
    }

    async fn release(&self, lease: &Lease) -> StoreResult<()> {
        let mut st = self.lock();
        if st
            .idempotency
            .get(&lease.key)
            .is_some_and(|r| r.lease_id == lease.id && r.done.is_none())
        {
            st.idempotency.remove(&lease.key);
        }
        Ok(())
    }

    async fn abandon(&self, lease: &Lease, retry_from: DateTime<Utc>) -> StoreResult<()> {
        let mut st = self.lock();
        if let Some(rec) = st
            .idempotency
            .get_mut(&lease.key)
            .filter(|r| r.lease_id == lease.id && r.done.is_none())
        {
            rec.lease_until = retry_from;
        }
        Ok(())
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn add(&self, connection: &Connection) -> StoreResult<()> {
        let mut st = self.lock();
        st.connections.insert(connection.id.clone(), connection.clone());
        st.reindex(&connection.id);
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> StoreResult<()> {
        let mut st = self.lock();
        st.connections.remove(connection_id);
        st.connection_owners.remove(connection_id);
        st.connection_filters.remove(connection_id);
        st.resumes.remove(connection_id);
        st.reindex(connection_id);
        Ok(())
    }

    async fn subscribe(&self, connection_id: &str, filter: Option<&str>) -> StoreResult<bool> {
        let mut st = self.lock();
        if !st.connections.contains_key(connection_id) {
            return Ok(false);
        }
        match filter {
            Some(f) => st.connection_filters.insert(connection_id.to_owned(), f.to_owned()),
            None => st.connection_filters.remove(connection_id),
        };
        st.reindex(connection_id);
        Ok(true)
    }

    async fn add_resuming(&self, connection: &Connection, resume: Resuming<'_>) -> StoreResult<()> {
        let Resuming { owner, since, replay_from } = resume;
        let mut st = self.lock();
        st.connections.insert(connection.id.clone(), connection.clone());
        if let Some(owner) = owner {
            st.connection_owners.insert(connection.id.clone(), owner.clone());
        }
        let record = ResumeRecord {
            connected_at: connection.connected_at,
            queues: owner.map(|o| o.queues.clone()),
            since: since.to_owned(),
            replay_from: replay_from.map(str::to_owned),
            mark: FeedMark::Replaying,
            filter: None,
        };
        st.resumes.insert(connection.id.clone(), (record, BTreeSet::new()));
        st.reindex(&connection.id);
        Ok(())
    }

    async fn resume_record(&self, connection_id: &str) -> StoreResult<Option<ResumeRecord>> {
        let st = self.lock();
        Ok(st.resumes.get(connection_id).map(|(r, _)| ResumeRecord {
            filter: st.connection_filters.get(connection_id).cloned(),
            ..r.clone()
        }))
    }

    async fn hold(&self, connection_id: &str, seqs: &[String]) -> StoreResult<bool> {
        let mut st = self.lock();
        match st.resumes.get_mut(connection_id) {
            Some((r, held)) if r.mark == FeedMark::Replaying => {
                held.extend(seqs.iter().cloned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn take_held(&self, connection_id: &str) -> StoreResult<Vec<String>> {
        let mut st = self.lock();
        Ok(match st.resumes.get_mut(connection_id) {
            Some((r, held)) if r.mark == FeedMark::Replaying => {
                std::mem::take(held).into_iter().collect()
            }
            _ => Vec::new(),
        })
    }

    async fn go_live(&self, connection_id: &str, live_after: Option<&str>) -> StoreResult<bool> {
        let mut st = self.lock();
        match st.resumes.get_mut(connection_id) {
            Some((r, held)) if r.mark == FeedMark::Replaying && held.is_empty() => {
                r.mark = live_after.map_or(FeedMark::Live, |a| FeedMark::LiveAfter(a.to_owned()));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn add_owned(&self, connection: &Connection, owner: &ConnectionOwner) -> StoreResult<()> {
        let mut st = self.lock();
        st.connections.insert(connection.id.clone(), connection.clone());
        st.connection_owners.insert(connection.id.clone(), owner.clone());
        st.reindex(&connection.id);
        Ok(())
    }

    async fn ids_for_key(&self, key_id: &str) -> StoreResult<Vec<String>> {
        let st = self.lock();
        Ok(st
            .connection_owners
            .iter()
            .filter(|(_, o)| o.key_id == key_id)
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn audience(&self, channel: &str, page: &PageAfter) -> StoreResult<TokenPage<Recipient>> {
        let st = self.lock();
        let limit = page.limit.max(1) as usize;
        let from = page.after.clone().map_or(Bound::Unbounded, Bound::Excluded);
        let ids: Vec<String> = st
            .channels
            .get(channel)
            .map(|members| members.range((from, Bound::Unbounded)).take(limit).cloned().collect())
            .unwrap_or_default();
        let next = if ids.len() == limit { ids.last().cloned() } else { None };
        let mut reads = self.audience_reads.lock().unwrap_or_else(|p| p.into_inner());
        reads.push((channel.to_owned(), ids.len()));
        Ok((ids.into_iter().map(|id| st.recipient(id)).collect(), next))
    }

    async fn recipients(&self, page: &PageAfter) -> StoreResult<TokenPage<Recipient>> {
        let (ids, next) = self.page(page).await?;
        let st = self.lock();
        Ok((ids.into_iter().map(|id| st.recipient(id)).collect(), next))
    }

    async fn page(&self, page: &PageAfter) -> StoreResult<TokenPage<String>> {
        let st = self.lock();
        let limit = page.limit.max(1) as usize;
        let ids: Vec<String> = st
            .connections
            .keys()
            .filter(|k| page.after.as_ref().is_none_or(|a| *k > a))
            .take(limit)
            .cloned()
            .collect();
        let next = if ids.len() == limit { ids.last().cloned() } else { None };
        Ok((ids, next))
    }
}

impl State {
    /// Puts connection `id` on the channels its rights and filter give it (none when it is
    /// not recorded), off every other.
    fn reindex(&mut self, id: &str) {
        for members in self.channels.values_mut() {
            members.remove(id);
        }
        self.channels.retain(|_, members| !members.is_empty());
        if !self.connections.contains_key(id) {
            return;
        }
        let queues = self.connection_owners.get(id).map(|o| o.queues.as_str());
        let filter = self.connection_filters.get(id).map(String::as_str);
        for channel in channels_of(queues, filter) {
            self.channels.entry(channel).or_default().insert(id.to_owned());
        }
    }

    /// What the push reads of connection `id`.
    fn recipient(&self, id: String) -> Recipient {
        Recipient {
            queues: self.connection_owners.get(&id).map(|o| o.queues.clone()),
            mark: self.resumes.get(&id).map(|(r, _)| r.mark.clone()).unwrap_or_default(),
            filter: self.connection_filters.get(&id).cloned(),
            id,
        }
    }
}

/// Stores a create's answer on its idempotency record, as the DynamoDB transaction's
/// conditional update does: `Conflict` when the lease is no longer this request's.
fn store_completion(
    st: &mut State,
    done: &IdempotencyCompletion,
    ticket_id: u64,
) -> StoreResult<()> {
    let rec = st.idempotency.get_mut(&done.lease.key).filter(|r| r.lease_id == done.lease.id);
    let Some(rec) = rec else {
        return Err(StoreError::Conflict("idempotency lease lost".into()));
    };
    rec.done = Some((done.status, done.body.clone()));
    rec.rt_ticket_id = Some(ticket_id);
    Ok(())
}
