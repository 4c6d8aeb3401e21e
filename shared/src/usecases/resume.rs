//! Resume (issue 11 item 1; docs/ARCHITECTURE.md, "Resume"): a connection that came with
//! `?since=<id>` is recorded *replaying*; while it is, the push holds (in the connection's
//! record) the positions it would have posted. This use case, run once the handshake is
//! under way, posts every notification after the position the connection may see, in feed
//! order, up to a settled bound `B` that is at least the connection's start; then drains
//! what the push held (positions after `B`) and flips the record to live after `B`, only
//! when nothing more is held. Every notification after the position reaches the
//! connection once: up to `B` by the replay, after `B` by the drain or by the live push.
//! An expired position gets `resync` first, then the drain.
//!
//! `$connect` starts it through the fan-out queue ([`EnqueueResume`]) and a push worker runs
//! it ([`Resume::run_until`]): the replay stops at the worker's deadline and the worker
//! enqueues the rest as a continuation (replay after the last position posted).

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    clock::{Clock, SystemClock},
    connections::ResumeStarter,
    push::shard::ResumeTask,
    Error,
};
use crate::{
    fanout::{ConnectionPoster, PostError, TaskQueue},
    feed::{FeedSettings, Position, ServerMessage, Subscription},
    model::Notification,
    store::{ConnectionStore, FeedMark, FeedSpan, PageRequest, Recipient, StoreError, TicketStore},
    tenant::{relay_default_queue, QueueRights},
};

/// Notifications read per page of the replay.
const REPLAY_PAGE: u32 = 100;
/// How long the first post may answer 410 while the client's handshake completes (API
/// Gateway refuses posts to a connection until its `$connect` has returned).
pub const HANDSHAKE_GRACE: Duration = Duration::from_secs(5);
/// Drain rounds at most (each one empties what the push held meanwhile).
const MAX_DRAINS: usize = 100;
/// How long after `connected_at` the push is assumed to find the connection: its
/// `$connect` writes (after taking `connected_at`) plus the `by-channel` index's
/// propagation (eventually consistent; docs/ARCHITECTURE.md, "Connections"). The replay
/// reaches at least this far, so a notification the push planned before the index showed
/// the connection is replayed rather than missed.
const INDEX_LAG_MILLIS: i64 = 1_000;

/// How a resume ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeOutcome {
    /// The deadline came during the replay: posted up to `after` (a `seq`; the position it
    /// started from when nothing was posted), to be continued from there.
    CutShort {
        /// The position of the last notification replayed (or passed over).
        after: String,
        /// Notifications posted by this run.
        replayed: usize,
    },
    /// Replayed, drained, live.
    Live {
        /// Notifications posted by the replay (after the position, up to `B`).
        replayed: usize,
        /// Notifications posted from what the push held.
        drained: usize,
    },
    /// The connection went away (410 or its record is gone).
    Gone,
    /// Nothing to do: the connection is not resuming (or no longer).
    NotResuming,
}

/// The resume use case.
#[derive(Debug, Clone)]
pub struct Resume {
    connections: Arc<dyn ConnectionStore>,
    notifications: Arc<dyn TicketStore>,
    poster: Arc<dyn ConnectionPoster>,
    settings: FeedSettings,
    clock: Arc<dyn Clock>,
}

impl Resume {
    /// Over its ports, on the system clock.
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        notifications: Arc<dyn TicketStore>,
        poster: Arc<dyn ConnectionPoster>,
        settings: FeedSettings,
    ) -> Self {
        Self { connections, notifications, poster, settings, clock: Arc::new(SystemClock) }
    }

    /// Resumes connection `id` (see the module docs), with no deadline.
    pub async fn run(&self, id: &str) -> Result<ResumeOutcome, Error> {
        self.run_until(id, None, None).await
    }

    /// Resumes connection `id`, replaying after position `after` (a continuation's `seq`)
    /// instead of the connection's `replay_from` when given; the replay starts no post at
    /// or after `deadline` and then ends [`ResumeOutcome::CutShort`]. The drain is not cut.
    pub async fn run_until(
        &self,
        id: &str,
        after: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<ResumeOutcome, Error> {
        let Some(record) = self.connections.resume_record(id).await? else {
            return Ok(ResumeOutcome::NotResuming);
        };
        if record.mark != FeedMark::Replaying {
            return Ok(ResumeOutcome::NotResuming);
        }
        let rights = rights_of(record.queues.as_deref());
        let subscription = Subscription::from_stored(record.filter.as_deref());
        let wanted = |n: &Notification| visible(&rights, n) && subscription.matches(n);
        // A continuation follows posts that reached the client: no handshake to wait for.
        let mut post = Posting { poster: self.poster.as_ref(), id, first: after.is_none() };
        let mut replayed = 0;
        // Everything at or before `bound` has been posted.
        let bound = match record.replay_from.as_deref().and_then(Position::parse_seq) {
            None => {
                let resync = ServerMessage::Resync {
                    since: record.since.clone(),
                    reason: "position_expired".into(),
                };
                if !post.send(resync.to_json().as_bytes()).await? {
                    return self.gone(id).await;
                }
                None
            }
            Some(start) => {
                let from = after.and_then(Position::parse_seq).filter(|a| *a > start);
                let from = from.unwrap_or(start);
                let connected = record.connected_at.timestamp_millis();
                let until = self.settled_bound(connected + INDEX_LAG_MILLIS).await;
                let mut page = PageRequest { limit: REPLAY_PAGE, cursor: None };
                // The replay is in exact feed order (everything up to `until` is settled),
                // so "up to `last`" is a position to continue from.
                let mut last = from.clone();
                let span = FeedSpan { after: from, until_millis: until };
                loop {
                    let got = self.notifications.list_notifications_after(&span, &page).await?;
                    for n in &got.items {
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Ok(ResumeOutcome::CutShort { after: last.seq(), replayed });
                        }
                        if wanted(n) {
                            if !post.notification(n).await? {
                                return self.gone(id).await;
                            }
                            replayed += 1;
                        }
                        last = Position::of(n);
                    }
                    match got.next_cursor {
                        Some(c) => page.cursor = Some(c),
                        None => break,
                    }
                }
                Some(Position { millis: until, id: END_OF_MILLI.into() })
            }
        };
        let mut drained = 0;
        for _ in 0..MAX_DRAINS {
            let held = self.connections.take_held(id).await?;
            if held.is_empty() {
                let live_after = bound.as_ref().map(Position::seq);
                if self.connections.go_live(id, live_after.as_deref()).await? {
                    info!(connection_id = %id, replayed, drained, "resumed; live");
                    return Ok(ResumeOutcome::Live { replayed, drained });
                }
                if self.connections.resume_record(id).await?.is_none() {
                    return Ok(ResumeOutcome::Gone);
                }
                // The push held more between the two writes: drain again.
                continue;
            }
            let held: BTreeSet<Position> = held
                .iter()
                .filter_map(|seq| Position::parse_seq(seq))
                .filter(|p| bound.as_ref().is_none_or(|b| p > b))
                .collect();
            for n in self.held_notifications(&held).await? {
                if !wanted(&n) {
                    continue;
                }
                if !post.notification(&n).await? {
                    return self.gone(id).await;
                }
                drained += 1;
            }
        }
        Err(Error::Internal(format!("connection {id} kept receiving held notifications")))
    }

    /// The newest settled time that is not before `at_least_millis`, waiting (at most
    /// the settle horizon and the index lag) until there is one.
    async fn settled_bound(&self, at_least_millis: i64) -> i64 {
        loop {
            let bound = self.settings.settled_until(self.clock.now());
            if bound >= at_least_millis {
                return bound;
            }
            let wait = u64::try_from(at_least_millis - bound).unwrap_or(0).min(1_000);
            tokio::time::sleep(Duration::from_millis(wait.max(1))).await;
        }
    }

    /// The held notifications, in feed order: one ascending read over their range, keeping
    /// the held ones (the range may hold others, not yet seen by the push: those come held
    /// or live later).
    async fn held_notifications(
        &self,
        held: &BTreeSet<Position>,
    ) -> Result<Vec<Notification>, StoreError> {
        let (Some(first), Some(last)) = (held.first(), held.last()) else {
            return Ok(Vec::new());
        };
        // Just before `first`: every id sorts after the empty one.
        let from = Position { millis: first.millis, id: String::new() };
        let span = FeedSpan { after: from, until_millis: last.millis };
        let mut found = Vec::with_capacity(held.len());
        let mut page = PageRequest { limit: REPLAY_PAGE, cursor: None };
        loop {
            let got = self.notifications.list_notifications_after(&span, &page).await?;
            found.extend(got.items.into_iter().filter(|n| held.contains(&Position::of(n))));
            match got.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => break,
            }
        }
        if found.len() < held.len() {
            warn!(
                held = held.len(),
                found = found.len(),
                "held notifications missing from the feed"
            );
        }
        Ok(found)
    }

    async fn gone(&self, id: &str) -> Result<ResumeOutcome, Error> {
        self.connections.remove(id).await?;
        Ok(ResumeOutcome::Gone)
    }
}

/// Starts resumes through the fan-out queue: `$connect` enqueues a [`ResumeTask`] and a
/// push worker runs it (`usecases::push::worker::PushWorker::resume`).
#[derive(Debug, Clone)]
pub struct EnqueueResume {
    queue: Arc<dyn TaskQueue>,
}

impl EnqueueResume {
    /// Over the fan-out queue.
    pub fn new(queue: Arc<dyn TaskQueue>) -> Self {
        Self { queue }
    }
}

#[async_trait]
impl ResumeStarter for EnqueueResume {
    async fn start(&self, connection_id: &str) -> Result<(), Error> {
        Ok(self.queue.enqueue_resume(&ResumeTask::new(connection_id)).await?)
    }
}

/// An id that sorts after every notification id (ids are ASCII letters, digits, `-`), so
/// `{millis}#~` closes a millisecond.
const END_OF_MILLI: &str = "~";

/// Which of `candidates` (index, `seq`) the push posts to `r` now. A replaying connection
/// gets none: they are held for its resume (one write); when it went live meanwhile it is
/// decided as a live one. A live one after a resume gets those after its bound.
pub async fn post_now(
    connections: &dyn ConnectionStore,
    r: &Recipient,
    candidates: &[(u32, &str)],
) -> Result<Vec<u32>, StoreError> {
    let mark = match &r.mark {
        FeedMark::Replaying => {
            let seqs: Vec<String> = candidates.iter().map(|(_, s)| (*s).to_owned()).collect();
            if connections.hold(&r.id, &seqs).await? {
                return Ok(Vec::new());
            }
            match connections.resume_record(&r.id).await? {
                Some(record) => record.mark,
                // Not resuming any more (gone): the post finds out.
                None => FeedMark::Live,
            }
        }
        mark => mark.clone(),
    };
    Ok(candidates
        .iter()
        .filter(|(_, seq)| match &mark {
            FeedMark::LiveAfter(after) => *seq > after.as_str(),
            // A connection never goes back to replaying: the hold failed because it went
            // live, so post rather than lose it.
            FeedMark::Live | FeedMark::Replaying => true,
        })
        .map(|(i, _)| *i)
        .collect())
}

fn rights_of(queues: Option<&str>) -> Option<QueueRights> {
    queues.map(|q| {
        let list: Vec<String> = serde_json::from_str(q).unwrap_or_default();
        QueueRights::from_list(&list, relay_default_queue())
    })
}

fn visible(rights: &Option<QueueRights>, n: &Notification) -> bool {
    rights.as_ref().is_none_or(|r| r.allows(&n.ticket.queue))
}

/// Posts to one connection, allowing the first post a grace period of 410s while the
/// handshake completes.
struct Posting<'a> {
    poster: &'a dyn ConnectionPoster,
    id: &'a str,
    first: bool,
}

impl Posting<'_> {
    async fn notification(&mut self, n: &Notification) -> Result<bool, Error> {
        let data = serde_json::to_vec(n).map_err(|e| Error::Internal(e.to_string()))?;
        self.send(&data).await
    }

    /// `false`: the connection is gone.
    async fn send(&mut self, data: &[u8]) -> Result<bool, Error> {
        let deadline = tokio::time::Instant::now() + HANDSHAKE_GRACE;
        let mut attempt = 0u32;
        loop {
            match self.poster.post(self.id, data).await {
                Ok(()) => {
                    self.first = false;
                    return Ok(true);
                }
                Err(PostError::Gone) if self.first && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(PostError::Gone) => return Ok(false),
                Err(PostError::Failed(why)) if attempt < 3 => {
                    attempt += 1;
                    warn!(connection_id = %self.id, error = %why, attempt, "resume post failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(PostError::Failed(why)) => {
                    return Err(Error::Internal(format!("posting to {}: {why}", self.id)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        fanout::MemoryPoster,
        model::Ticket,
        store::{memory::MemoryStore, Connection, ConnectionOwner, Creation, PageAfter, Resuming},
    };
    use chrono::{DateTime, Utc};

    fn ticket(id: u64, queue: &str, at: DateTime<Utc>) -> Ticket {
        Ticket {
            id,
            title: "t".into(),
            description: "d".into(),
            status: "new".into(),
            queue: queue.into(),
            requestor: None,
            created_at: at,
            updated_at: at,
            rt_url: "u".into(),
        }
    }

    /// Records ticket `id`'s notification created `age_ms` ago; its position.
    async fn note(store: &MemoryStore, id: u64, queue: &str, age_ms: i64) -> Position {
        let at = Utc::now() - chrono::Duration::milliseconds(age_ms);
        let t = ticket(id, queue, at);
        let n = Notification::ticket_created(&t, at);
        store.record_created(&Creation::new(&t, &n)).await.unwrap();
        Position::of(&n)
    }

    /// Records notifications 1, 2, ... of tickets in `queues` (60, 50, 45 and 40 s ago,
    /// oldest first); the position of the first, the one the client resumes after.
    async fn history(store: &MemoryStore, queues: &[&str]) -> Position {
        const AGES: [i64; 4] = [60_000, 50_000, 45_000, 40_000];
        assert!(!queues.is_empty() && queues.len() <= AGES.len(), "1 to 4 notifications");
        let mut first = None;
        for (id, (queue, age)) in (1..).zip(queues.iter().zip(AGES)) {
            let at = note(store, id, queue, age).await;
            first.get_or_insert(at);
        }
        first.unwrap()
    }

    fn posted_tickets(poster: &MemoryPoster, id: &str) -> Vec<String> {
        poster
            .received(id)
            .iter()
            .map(|b| {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                v["ticket"]["id"].as_u64().map_or_else(|| v["type"].to_string(), |t| t.to_string())
            })
            .collect()
    }

    fn setup() -> (Arc<MemoryStore>, Arc<MemoryPoster>, Resume) {
        let store = Arc::new(MemoryStore::new());
        let poster = Arc::new(MemoryPoster::new());
        let resume =
            Resume::new(store.clone(), store.clone(), poster.clone(), FeedSettings::default());
        (store, poster, resume)
    }

    fn connection(id: &str, age_ms: i64) -> Connection {
        let at = Utc::now() - chrono::Duration::milliseconds(age_ms);
        Connection { id: id.into(), connected_at: at, expires_at: at + chrono::Duration::hours(3) }
    }

    /// Records connection `c` (30 s old, any key) resuming from `since`.
    async fn resuming_from(store: &MemoryStore, since: &Position) {
        resuming_as(store, None, since).await;
    }

    /// Records connection `c` (30 s old) of `owner` resuming from `since`.
    async fn resuming_as(store: &MemoryStore, owner: Option<&ConnectionOwner>, since: &Position) {
        let replay_from = Some(since.seq());
        let resume = Resuming { owner, since: &since.id, replay_from: replay_from.as_deref() };
        store.add_resuming(&connection("c", 30_000), resume).await.unwrap();
    }

    #[tokio::test]
    async fn replays_the_key_s_queues_in_order_then_drains_what_the_push_held_then_goes_live() {
        let (store, poster, resume) = setup();
        let since = history(&store, &["A", "A", "B", "A"]).await;
        let owner = ConnectionOwner { key_id: "k".into(), queues: r#"["A"]"#.into() };
        resuming_as(&store, Some(&owner), &since).await;
        // The push sees two new ones while the connection replays: it holds them.
        let new5 = note(&store, 5, "A", 0).await;
        let new6 = note(&store, 6, "B", 0).await;
        let (recipient, _) = store.recipients(&PageAfter::first(10)).await.unwrap();
        assert_eq!(recipient[0].mark, FeedMark::Replaying);
        let (s6, s5) = (new6.seq(), new5.seq());
        let held = post_now(store.as_ref(), &recipient[0], &[(0, &s6), (1, &s5)]).await;
        assert!(held.unwrap().is_empty(), "held, not posted");

        let outcome = resume.run("c").await.unwrap();
        assert_eq!(outcome, ResumeOutcome::Live { replayed: 2, drained: 1 });
        assert_eq!(posted_tickets(&poster, "c"), ["2", "4", "5"], "queue A only, in order");
        // Live now: the push posts what is after the bound only.
        let (recipient, _) = store.recipients(&PageAfter::first(10)).await.unwrap();
        assert!(matches!(recipient[0].mark, FeedMark::LiveAfter(_)));
        let after = note(&store, 7, "A", 0).await.seq();
        let old = since.seq();
        let now = post_now(store.as_ref(), &recipient[0], &[(0, &old), (1, &after)]).await;
        assert_eq!(now.unwrap(), [1]);
        assert_eq!(resume.run("c").await.unwrap(), ResumeOutcome::NotResuming);
    }

    #[tokio::test]
    async fn an_expired_position_gets_resync_first_then_the_held_ones() {
        let (store, poster, resume) = setup();
        store
            .add_resuming(
                &connection("c", 1_000),
                Resuming { owner: None, since: "ticket-9-created", replay_from: None },
            )
            .await
            .unwrap();
        let held = note(&store, 8, "A", 0).await;
        assert!(store.hold("c", &[held.seq()]).await.unwrap());
        assert_eq!(resume.run("c").await.unwrap(), ResumeOutcome::Live { replayed: 0, drained: 1 });
        assert_eq!(posted_tickets(&poster, "c"), ["\"resync\"", "8"]);
        // Live without a bound: everything goes out.
        let (recipient, _) = store.recipients(&PageAfter::first(10)).await.unwrap();
        assert_eq!(recipient[0].mark, FeedMark::Live);
    }

    #[tokio::test]
    async fn a_gone_connection_is_forgotten() {
        let (store, poster, resume) = setup();
        let since = history(&store, &["A", "A"]).await;
        resuming_from(&store, &since).await;
        poster.set_gone("c");
        tokio::time::pause();
        assert_eq!(resume.run("c").await.unwrap(), ResumeOutcome::Gone);
        assert_eq!(store.connection_count(), 0);
    }

    /// Posts through a [`MemoryPoster`], each post taking a second of (paused) time.
    #[derive(Debug)]
    struct SlowPoster(Arc<MemoryPoster>);

    #[async_trait]
    impl ConnectionPoster for SlowPoster {
        async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PostError> {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.0.post(connection_id, data).await
        }
    }

    #[tokio::test]
    async fn a_replay_cut_short_by_the_deadline_continues_from_its_last_post_exactly_once() {
        tokio::time::pause();
        let store = Arc::new(MemoryStore::new());
        let poster = Arc::new(MemoryPoster::new());
        let slow = Arc::new(SlowPoster(poster.clone()));
        let resume = Resume::new(store.clone(), store.clone(), slow, FeedSettings::default());
        let since = note(&store, 1, "A", 60_000).await;
        for (id, age) in [(2, 50_000), (3, 49_000), (4, 48_000), (5, 47_000), (6, 46_000)] {
            note(&store, id, "A", age).await;
        }
        resuming_from(&store, &since).await;
        // GIVEN a deadline that passes after three posts (one second each)
        let deadline = Instant::now() + Duration::from_millis(2_500);
        let cut = resume.run_until("c", None, Some(deadline)).await.unwrap();
        let ResumeOutcome::CutShort { after, replayed: 3 } = cut else { panic!("{cut:?}") };
        assert_eq!(posted_tickets(&poster, "c"), ["2", "3", "4"]);
        // AND the push holds a new one meanwhile (the connection is still replaying)
        let held = note(&store, 7, "A", 0).await;
        assert!(store.hold("c", &[held.seq()]).await.unwrap());
        // WHEN the continuation runs from the position it was given
        let rest = resume.run_until("c", Some(&after), None).await.unwrap();
        // THEN it posts the rest of the replay and the held one, each once, in order
        assert_eq!(rest, ResumeOutcome::Live { replayed: 2, drained: 1 });
        assert_eq!(posted_tickets(&poster, "c"), ["2", "3", "4", "5", "6", "7"]);
        // AND once live a duplicate of the task does nothing
        assert_eq!(
            resume.run_until("c", Some(&after), None).await.unwrap(),
            ResumeOutcome::NotResuming
        );
    }

    #[tokio::test]
    async fn a_resume_re_run_from_its_start_after_a_failure_still_reaches_everything() {
        let (store, poster, resume) = setup();
        let since = history(&store, &["A", "A", "A"]).await;
        resuming_from(&store, &since).await;
        let held = note(&store, 4, "A", 0).await;
        assert!(store.hold("c", &[held.seq()]).await.unwrap());
        // GIVEN a run that stopped before its first post (as one the worker lost)
        let cut = resume.run_until("c", None, Some(Instant::now())).await.unwrap();
        assert!(matches!(cut, ResumeOutcome::CutShort { replayed: 0, .. }), "{cut:?}");
        assert!(poster.received("c").is_empty());
        // WHEN the task is handed out again and runs from the start
        let outcome = resume.run("c").await.unwrap();
        // THEN the connection gets everything in order and goes live (what the held set
        // had was not lost by the first run)
        assert_eq!(outcome, ResumeOutcome::Live { replayed: 2, drained: 1 });
        assert_eq!(posted_tickets(&poster, "c"), ["2", "3", "4"]);
    }

    #[tokio::test]
    async fn the_replay_and_the_drain_honour_the_connection_s_subscription() {
        let (store, poster, resume) = setup();
        let since = history(&store, &["A", "A", "B", "B"]).await;
        resuming_from(&store, &since).await;
        assert!(store.subscribe("c", Some(r#"{"queue":["B"]}"#)).await.unwrap());
        let held_a = note(&store, 5, "A", 0).await;
        let held_b = note(&store, 6, "B", 0).await;
        assert!(store.hold("c", &[held_a.seq(), held_b.seq()]).await.unwrap());
        assert_eq!(resume.run("c").await.unwrap(), ResumeOutcome::Live { replayed: 2, drained: 1 });
        assert_eq!(posted_tickets(&poster, "c"), ["3", "4", "6"], "queue B only, in order");
    }
}
