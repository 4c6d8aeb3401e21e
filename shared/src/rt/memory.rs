//! An in-memory [`RtClient`] for unit tests: behaves like a fresh RT with the queues
//! `General` and `Support`, and can be told to fail.

use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::Utc;
use url::Url;

use super::{
    display_url,
    paging::PageWindow,
    transactions::{RtTransaction, RtTransactions, TxnPage, TxnPosition},
    RtClient, RtCreate, RtError, RtPage, RtQuery, RtTicket, MAX_PER_PAGE,
};

/// Makes the error a failing call returns (errors are not `Clone`, so a constructor).
pub type ErrorFn = fn() -> RtError;

#[derive(Debug, Default)]
struct State {
    tickets: Vec<(RtTicket, String)>,
    fail_next_create: Vec<ErrorFn>,
    failure: Option<ErrorFn>,
    creates_attempted: usize,
    /// RT's transaction log: each ticket transaction with the message it carried.
    transactions: Vec<(RtTransaction, Option<String>)>,
}

impl State {
    /// Appends a ticket transaction (ids count up from 1, like RT's).
    fn record(&mut self, ticket_id: u64, kind: &str, field: &str, change: (&str, &str), by: &str) {
        self.record_message(ticket_id, kind, field, change, by, None);
    }

    fn record_message(
        &mut self,
        ticket_id: u64,
        kind: &str,
        field: &str,
        (old, new): (&str, &str),
        by: &str,
        message: Option<String>,
    ) {
        let txn = RtTransaction {
            id: self.transactions.len() as u64 + 1,
            ticket_id,
            kind: kind.into(),
            field: field.into(),
            old_value: old.into(),
            new_value: new.into(),
            creator: by.into(),
            created: Utc::now(),
        };
        self.transactions.push((txn, message));
    }

    fn ticket_mut(&mut self, id: u64) -> Result<&mut RtTicket, RtError> {
        self.tickets.iter_mut().find(|(t, _)| t.id == id).map(|(t, _)| t).ok_or(RtError::NotFound)
    }
}

/// A fake RT. Tickets get ids 1, 2, ...; new tickets are `new`, owned by `Nobody`,
/// priority 0. An unknown queue is [`RtError::Forbidden`], as RT REST 2.0 answers.
#[derive(Debug)]
pub struct MemoryRt {
    queues: Vec<String>,
    base: Url,
    state: Mutex<State>,
}

impl Default for MemoryRt {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRt {
    /// A fake RT with the queues `General` and `Support`.
    pub fn new() -> Self {
        Self::with_queues(&["General", "Support"])
    }

    /// A fake RT with these queues.
    pub fn with_queues(queues: &[&str]) -> Self {
        Self {
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            base: Url::parse("https://rt.example.com/")
                .unwrap_or_else(|_| unreachable!("a valid literal URL")),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the next `create` fail with `err()` (queued: call twice to fail twice).
    pub fn fail_next_create(&self, err: ErrorFn) {
        self.state().fail_next_create.push(err);
    }

    /// Makes every call fail with `err()` until set back to `None`.
    pub fn set_failure(&self, err: Option<ErrorFn>) {
        self.state().failure = err;
    }

    /// Tickets created so far (failed creates do not count).
    pub fn created_count(&self) -> usize {
        self.state().tickets.len()
    }

    /// `create` calls so far, failed ones included.
    pub fn create_attempts(&self) -> usize {
        self.state().creates_attempted
    }

    /// Changes a ticket's status, as an RT user would (recording RT's `Status` transaction).
    pub fn set_status(&self, id: u64, status: &str) -> Result<(), RtError> {
        let mut state = self.state();
        let ticket = state.ticket_mut(id)?;
        let old = std::mem::replace(&mut ticket.status, status.to_owned());
        state.record(id, "Status", "Status", (&old, status), "root");
        Ok(())
    }

    /// Gives a ticket to `owner` (RT's `Set` of `Owner`, plus its `SetWatcher` twin).
    pub fn set_owner(&self, id: u64, owner: &str) -> Result<(), RtError> {
        let mut state = self.state();
        let ticket = state.ticket_mut(id)?;
        let old = std::mem::replace(&mut ticket.owner, owner.to_owned());
        state.record(id, "Set", "Owner", (&old, owner), "root");
        state.record(id, "SetWatcher", "Owner", ("6", "14"), "root");
        Ok(())
    }

    /// A reply (RT's `Correspond`, plus its `EmailRecord`).
    pub fn reply(&self, id: u64, by: &str, text: &str) -> Result<(), RtError> {
        let mut state = self.message(id, "Correspond", by, text)?;
        state.record(id, "EmailRecord", "", ("", ""), "RT_System");
        Ok(())
    }

    /// An internal comment (RT's `Comment`).
    pub fn comment(&self, id: u64, by: &str, text: &str) -> Result<(), RtError> {
        self.message(id, "Comment", by, text).map(drop)
    }

    /// Records a message transaction (`kind`) by `by` on ticket `id`, keeping the state
    /// locked for what RT records with it.
    fn message(
        &self,
        id: u64,
        kind: &str,
        by: &str,
        text: &str,
    ) -> Result<MutexGuard<'_, State>, RtError> {
        let mut state = self.state();
        state.ticket_mut(id)?;
        state.record_message(id, kind, "", ("", ""), by, Some(text.to_owned()));
        Ok(state)
    }

    /// Reads from ticket `id` and its description, failing as [`MemoryRt::set_failure`] says.
    fn read<T>(&self, id: u64, pick: impl FnOnce(&(RtTicket, String)) -> T) -> Result<T, RtError> {
        self.check_failure()?;
        self.state().tickets.iter().find(|(t, _)| t.id == id).map(pick).ok_or(RtError::NotFound)
    }

    fn check_failure(&self) -> Result<(), RtError> {
        match self.state().failure {
            Some(err) => Err(err()),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl RtClient for MemoryRt {
    async fn create(&self, ticket: &RtCreate) -> Result<u64, RtError> {
        let mut state = self.state();
        state.creates_attempted += 1;
        if let Some(err) = state.failure {
            return Err(err());
        }
        if !state.fail_next_create.is_empty() {
            let err = state.fail_next_create.remove(0);
            return Err(err());
        }
        if !self.queues.iter().any(|q| q == &ticket.queue) {
            return Err(RtError::Forbidden(format!(
                "No permission to create tickets in the queue '{}'",
                ticket.queue
            )));
        }
        let id = state.tickets.len() as u64 + 1;
        let stored = RtTicket {
            id,
            subject: ticket.subject.clone(),
            status: "new".into(),
            queue: ticket.queue.clone(),
            owner: "Nobody".into(),
            priority: 0,
            requestors: ticket.requestor.iter().cloned().collect(),
            created: Utc::now(),
        };
        state.tickets.push((stored, ticket.content.clone()));
        state.record_message(id, "Create", "", ("", ""), "root", Some(ticket.content.clone()));
        state.record(id, "EmailRecord", "", ("", ""), "RT_System");
        Ok(id)
    }

    async fn get(&self, id: u64) -> Result<RtTicket, RtError> {
        self.read(id, |(t, _)| t.clone())
    }

    async fn description(&self, id: u64) -> Result<String, RtError> {
        self.read(id, |(_, d)| d.clone())
    }

    async fn list(&self, query: &RtQuery, page: u32, per_page: u32) -> Result<RtPage, RtError> {
        self.check_failure()?;
        let window = PageWindow::new(page, per_page);
        let state = self.state();
        let mut matching: Vec<&RtTicket> = state
            .tickets
            .iter()
            .map(|(t, _)| t)
            .filter(|t| query.queue.as_ref().is_none_or(|q| q.eq_ignore_ascii_case(&t.queue)))
            .filter(|t| query.status.as_ref().is_none_or(|s| s.eq_ignore_ascii_case(&t.status)))
            .filter(|t| query.min_id.is_none_or(|min| t.id >= min))
            .filter(|t| query.subject.as_ref().is_none_or(|s| *s == t.subject))
            .collect();
        matching.sort_by_key(|t| std::cmp::Reverse(t.id));
        let total = matching.len() as u64;
        let skip = usize::try_from(window.skip()).unwrap_or(usize::MAX);
        let tickets =
            matching.into_iter().skip(skip).take(window.per_page as usize).cloned().collect();
        Ok(window.page_of(tickets, total))
    }

    fn ticket_url(&self, id: u64) -> String {
        display_url(&self.base, id)
    }
}

#[async_trait]
impl RtTransactions for MemoryRt {
    async fn transactions_after(&self, after: TxnPosition, limit: u32) -> Result<TxnPage, RtError> {
        self.check_failure()?;
        let state = self.state();
        let after: Vec<&RtTransaction> =
            state.transactions.iter().map(|(t, _)| t).filter(|t| t.id > after.id).collect();
        let take = (limit.clamp(1, MAX_PER_PAGE) as usize).min(after.len());
        Ok(TxnPage {
            transactions: after[..take].iter().map(|t| (*t).clone()).collect(),
            remaining: (after.len() - take) as u64,
        })
    }

    async fn transaction(&self, ticket_id: u64, id: u64) -> Result<Option<RtTransaction>, RtError> {
        self.check_failure()?;
        Ok(self
            .state()
            .transactions
            .iter()
            .map(|(t, _)| t)
            .find(|t| t.id == id && t.ticket_id == ticket_id)
            .cloned())
    }

    async fn latest_transaction(&self) -> Result<Option<TxnPosition>, RtError> {
        self.check_failure()?;
        Ok(self
            .state()
            .transactions
            .last()
            .map(|(t, _)| TxnPosition { id: t.id, created: t.created }))
    }

    async fn message_text(&self, txn: &RtTransaction) -> Result<Option<String>, RtError> {
        self.check_failure()?;
        Ok(self
            .state()
            .transactions
            .iter()
            .find(|(t, _)| t.id == txn.id)
            .and_then(|(_, m)| m.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_ticket(queue: &str, subject: &str) -> RtCreate {
        RtCreate::new(queue, subject, "body\n")
    }

    #[tokio::test]
    async fn given_a_created_ticket_when_read_then_it_is_new_unowned_and_exact() {
        let rt = MemoryRt::new();
        let id = rt.create(&new_ticket("Support", "Olá")).await.unwrap();
        let t = rt.get(id).await.unwrap();
        assert_eq!(
            (t.subject.as_str(), t.status.as_str(), t.queue.as_str(), t.owner.as_str()),
            ("Olá", "new", "Support", "Nobody")
        );
        assert_eq!(rt.description(id).await.unwrap(), "body\n");
        assert_eq!(rt.created_count(), 1);
        assert!(rt.ticket_url(id).ends_with("Ticket/Display.html?id=1"));
    }

    #[tokio::test]
    async fn unknown_queue_is_forbidden_and_unknown_ticket_is_not_found() {
        let rt = MemoryRt::new();
        assert!(matches!(rt.create(&new_ticket("Nope", "x")).await, Err(RtError::Forbidden(_))));
        assert!(matches!(rt.get(7).await, Err(RtError::NotFound)));
        assert_eq!(rt.created_count(), 0);
    }

    #[tokio::test]
    async fn failures_can_be_injected() {
        let rt = MemoryRt::new();
        rt.fail_next_create(|| RtError::Server(503));
        assert!(matches!(rt.create(&new_ticket("General", "x")).await, Err(RtError::Server(503))));
        assert_eq!(rt.create(&new_ticket("General", "x")).await.unwrap(), 1);
        rt.set_failure(Some(|| RtError::Timeout(std::time::Duration::from_secs(1))));
        assert!(matches!(rt.get(1).await, Err(RtError::Timeout(_))));
        assert!(matches!(rt.create(&new_ticket("General", "x")).await, Err(RtError::Timeout(_))));
        rt.set_failure(None);
        assert_eq!(rt.get(1).await.unwrap().id, 1);
        assert_eq!((rt.created_count(), rt.create_attempts()), (1, 3));
    }

    #[tokio::test]
    async fn lists_page_newest_first_with_filters() {
        let rt = MemoryRt::new();
        for i in 0..5 {
            rt.create(&new_ticket(if i % 2 == 0 { "General" } else { "Support" }, "x"))
                .await
                .unwrap();
        }
        rt.set_status(5, "resolved").unwrap();
        let everything = RtQuery::default();
        let all = |page| rt.list(&everything, page, 2);
        let p1 = all(1).await.unwrap();
        assert_eq!(p1.tickets.iter().map(|t| t.id).collect::<Vec<_>>(), vec![5, 4]);
        assert!(p1.has_more && p1.total == 5);
        let p3 = all(3).await.unwrap();
        assert_eq!(p3.tickets.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1]);
        assert!(!p3.has_more);
        let q = RtQuery {
            queue: Some("General".into()),
            status: Some("new".into()),
            min_id: Some(2),
            subject: None,
        };
        let p = rt.list(&q, 1, 100).await.unwrap();
        assert_eq!(p.tickets.iter().map(|t| t.id).collect::<Vec<_>>(), vec![3]);
    }
}
