//! The worker side of the sharded push: one [`Task`] (a slice of one shard's connections)
//! delivered before a deadline (the invocation's remaining time less a margin). What it
//! could not finish — posts that failed, connections not reached in time — goes back on
//! the queue as the task's remainder (same shard), so nothing is dropped. A remainder after
//! an invocation that posted nothing is one attempt later; after [`MAX_ATTEMPTS`] such
//! attempts the task is reported failed instead and SQS's redrive policy moves it to the
//! dead-letter queue. An invocation that posted something is no failed attempt, even if
//! some of its posts failed: those connections ride along in the remainder. (Counting them
//! against the whole slice let a few one-off failures spread over a slice use up its
//! attempts while it was still progressing; the message it then gave up on came back whole
//! from SQS, re-posting what that invocation had delivered, and went to the dead-letter
//! queue with connections never tried.) A connection that keeps failing is given up on once
//! nothing else is left with it, so the message reported failed holds no delivered post.
//!
//! A [`ResumeTask`] runs the resume use case ([`Resume::run_until`]) to the same deadline;
//! a replay cut short there goes back on the queue as a continuation from the last
//! position it replayed (a continuation that replayed nothing is one attempt later).

use std::sync::Arc;

use tokio::time::Instant;

use super::{
    deliver::{Deliverer, DeliveryReport},
    shard::{QueueMessage, ResumeTask, Task, TASK_VERSION},
};
use crate::{
    fanout::{QueueError, TaskQueue},
    usecases::resume::{Resume, ResumeOutcome},
};

/// Remainders re-enqueued for one task before it is left to the dead-letter queue.
pub const MAX_ATTEMPTS: u32 = 5;

/// Why a task is reported failed (SQS makes it visible again, then redrives it).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The remainder could not be enqueued.
    #[error("could not re-enqueue the remainder: {0}")]
    Requeue(#[from] QueueError),
    /// Posts kept failing through every attempt.
    #[error("{0} connections still unfinished after {MAX_ATTEMPTS} attempts")]
    GaveUp(usize),
    /// The resume failed (store or post errors after its retries).
    #[error("resume failed: {0}")]
    Resume(#[from] crate::usecases::Error),
    /// A resume task reached a worker built without the resume use case.
    #[error("this worker does not run resumes")]
    NoResume,
}

/// What one task came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    /// The deliver step's report.
    pub delivery: DeliveryReport,
    /// Connections whose rest went back on the queue.
    pub requeued: usize,
}

/// The worker use case.
#[derive(Debug, Clone)]
pub struct PushWorker {
    deliverer: Deliverer,
    queue: Arc<dyn TaskQueue>,
    resume: Option<Resume>,
}

impl PushWorker {
    /// Posts through `deliverer`; remainders go to `queue`.
    pub fn new(deliverer: Deliverer, queue: Arc<dyn TaskQueue>) -> Self {
        Self { deliverer, queue, resume: None }
    }

    /// Also runs resume tasks, with `resume`.
    pub fn with_resume(mut self, resume: Resume) -> Self {
        self.resume = Some(resume);
        self
    }

    /// Whether this worker understands `message`.
    pub fn accepts(message: &QueueMessage) -> bool {
        message.version() == TASK_VERSION
    }

    /// Resumes `task`'s connection, starting no replay post at or after `deadline`; a
    /// replay cut short goes back on the queue as a continuation.
    pub async fn resume(
        &self,
        task: &ResumeTask,
        deadline: Instant,
    ) -> Result<ResumeOutcome, TaskError> {
        let resume = self.resume.as_ref().ok_or(TaskError::NoResume)?;
        let outcome = resume.run_until(&task.resume, task.after.as_deref(), Some(deadline)).await?;
        if let ResumeOutcome::CutShort { after, replayed } = &outcome {
            let progress = *replayed > 0 || task.after.as_deref() != Some(after.as_str());
            let attempt = if progress { task.attempt } else { task.attempt + 1 };
            if attempt >= MAX_ATTEMPTS {
                return Err(TaskError::GaveUp(1));
            }
            let next = ResumeTask { after: Some(after.clone()), attempt, ..task.clone() };
            self.queue.enqueue_resume(&next).await?;
        }
        Ok(outcome)
    }

    /// Delivers `task`, starting no post at or after `deadline`; re-enqueues what is left.
    pub async fn run(&self, task: &Task, deadline: Instant) -> Result<TaskReport, TaskError> {
        let (notifications, deliveries) = task.unpack();
        let delivery = self.deliverer.deliver(&notifications, deliveries, Some(deadline)).await;
        if delivery.unfinished.is_empty() {
            return Ok(TaskReport { delivery, requeued: 0 });
        }
        // Only an invocation that posted nothing counts toward MAX_ATTEMPTS (module doc).
        let failed_attempt = delivery.posted == 0;
        if failed_attempt && task.attempt + 1 >= MAX_ATTEMPTS {
            return Err(TaskError::GaveUp(delivery.unfinished.len()));
        }
        let mut remainder = task.remainder(&delivery.unfinished);
        remainder.attempt = if failed_attempt { task.attempt + 1 } else { task.attempt };
        self.queue.enqueue(std::slice::from_ref(&remainder)).await?;
        Ok(TaskReport { requeued: delivery.unfinished.len(), delivery })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        fanout::{ConnectionPoster, MemoryPoster, MemoryTaskQueue, PostError},
        store::{memory::MemoryStore, Resuming},
        usecases::push::{
            plan::{Delivery, Payload, Plan},
            shard::{tasks, Sharding},
        },
    };
    use std::time::Duration;

    fn task(ids: &[&str]) -> Task {
        let plan = Plan {
            notifications: vec![Payload::from(&b"n0"[..]), Payload::from(&b"n1"[..])],
            deliveries: ids
                .iter()
                .map(|id| Delivery { connection: (*id).into(), notifications: vec![0, 1] })
                .collect(),
        };
        tasks(&plan, &Sharding { shards: 1, ..Sharding::default() }).remove(0)
    }

    fn worker(poster: Arc<MemoryPoster>, queue: Arc<MemoryTaskQueue>) -> PushWorker {
        let deliverer = Deliverer::new(Arc::new(MemoryStore::new()), poster, 4);
        PushWorker::new(deliverer, queue)
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn a_worker_failing_mid_slice_re_enqueues_only_the_remainder() {
        let poster = Arc::new(MemoryPoster::new());
        let queue = Arc::new(MemoryTaskQueue::new());
        poster.set_failing("b", true);
        let w = worker(poster.clone(), queue.clone());
        // WHEN b fails THEN a and c are done and only b's two go back; the invocation made
        // progress, so that is no failed attempt
        let report = w.run(&task(&["a", "b", "c"]), later()).await.unwrap();
        assert_eq!((report.delivery.posted, report.requeued), (4, 1));
        let rest = queue.pop().expect("a remainder");
        assert_eq!(rest.attempt, 0);
        assert_eq!(rest.deliveries.iter().map(|d| d.c.as_str()).collect::<Vec<_>>(), ["b"]);
        // AND the remainder, run when b works again, completes the slice
        poster.set_failing("b", false);
        let report = w.run(&rest, later()).await.unwrap();
        assert_eq!((report.delivery.posted, report.requeued), (2, 0));
        assert!(queue.is_empty());
        for id in ["a", "b", "c"] {
            assert_eq!(poster.received(id), [b"n0".to_vec(), b"n1".to_vec()], "{id}");
        }
    }

    /// Each post takes 10 ms; the first post to each connection in `flaky` fails.
    #[derive(Debug)]
    struct FailsOnce {
        inner: MemoryPoster,
        flaky: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl ConnectionPoster for FailsOnce {
        async fn post(&self, id: &str, data: &[u8]) -> Result<(), PostError> {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let failing = {
                let mut flaky = self.flaky.lock().unwrap_or_else(|p| p.into_inner());
                let k = flaky.iter().position(|f| f == id);
                k.map(|k| flaky.remove(k)).is_some()
            };
            if failing {
                return Err(PostError::Failed("injected".into()));
            }
            self.inner.post(id, data).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_off_failures_spread_over_a_slice_never_use_up_its_attempts() {
        // GIVEN a slice of 20 connections, every other one failing its first post, and
        // invocations with time for about three posts each
        let ids: Vec<String> = (0..20).map(|i| format!("c{i:02}")).collect();
        let poster = Arc::new(FailsOnce {
            inner: MemoryPoster::new(),
            flaky: std::sync::Mutex::new(ids.iter().step_by(2).cloned().collect()),
        });
        let queue = Arc::new(MemoryTaskQueue::new());
        let w = PushWorker::new(
            Deliverer::new(Arc::new(MemoryStore::new()), poster.clone(), 1),
            queue.clone(),
        );
        let mut current = task(&ids.iter().map(String::as_str).collect::<Vec<_>>());
        let mut with_failures = 0;
        loop {
            // WHEN each remainder runs in turn THEN none is given up on
            let deadline = Instant::now() + Duration::from_millis(25);
            let report = w.run(&current, deadline).await.expect("a progressing slice goes on");
            with_failures += usize::from(report.delivery.failed > 0);
            let Some(rest) = queue.pop() else { break };
            assert_eq!(rest.attempt, 0, "an invocation that posted something is no failed attempt");
            current = rest;
        }
        // AND more invocations saw failures than a task has attempts, yet every connection
        // got both notifications, once each
        assert!(with_failures > MAX_ATTEMPTS as usize, "{with_failures} invocations with failures");
        for id in &ids {
            assert_eq!(poster.inner.received(id), [b"n0".to_vec(), b"n1".to_vec()], "{id}");
        }
    }

    #[tokio::test]
    async fn a_worker_out_of_time_re_enqueues_what_it_did_not_start() {
        let poster = Arc::new(MemoryPoster::new());
        let queue = Arc::new(MemoryTaskQueue::new());
        let w = worker(poster.clone(), queue.clone());
        let report = w.run(&task(&["a", "b"]), Instant::now()).await.unwrap();
        assert_eq!((report.delivery.posted, report.requeued), (0, 2));
        assert_eq!(queue.pop().expect("a remainder").deliveries.len(), 2);
    }

    #[tokio::test]
    async fn a_task_fails_when_its_remainder_cannot_be_enqueued_or_after_the_last_attempt() {
        let poster = Arc::new(MemoryPoster::new());
        poster.set_failing("a", true);
        let queue = Arc::new(MemoryTaskQueue::new());
        let w = worker(poster.clone(), queue.clone());
        queue.set_failing(true);
        assert!(matches!(w.run(&task(&["a"]), later()).await, Err(TaskError::Requeue(_))));
        queue.set_failing(false);
        let mut last = task(&["a"]);
        last.attempt = MAX_ATTEMPTS - 1;
        assert!(matches!(w.run(&last, later()).await, Err(TaskError::GaveUp(1))));
        assert!(queue.is_empty());
    }
    /// A worker that also resumes, over `store`, with one connection `c` replaying from
    /// ticket 1 and tickets 2 and 3 after it.
    async fn resuming(
        poster: Arc<MemoryPoster>,
        queue: Arc<MemoryTaskQueue>,
    ) -> (PushWorker, Arc<MemoryStore>) {
        use crate::{
            feed::{FeedSettings, Position},
            model::{Notification, Ticket},
            store::{Connection, ConnectionStore, Creation, TicketStore},
        };
        let store = Arc::new(MemoryStore::new());
        let mut since = None;
        for (id, age) in [(1u64, 60), (2, 50), (3, 40)] {
            let at = chrono::Utc::now() - chrono::Duration::seconds(age);
            let t = Ticket {
                id,
                title: "t".into(),
                description: "d".into(),
                status: "new".into(),
                queue: "A".into(),
                requestor: None,
                created_at: at,
                updated_at: at,
                rt_url: "u".into(),
            };
            let n = Notification::ticket_created(&t, at);
            store.record_created(&Creation::new(&t, &n)).await.unwrap();
            since.get_or_insert(Position::of(&n));
        }
        let since = since.unwrap();
        let at = chrono::Utc::now() - chrono::Duration::seconds(30);
        let c = Connection {
            id: "c".into(),
            connected_at: at,
            expires_at: at + chrono::Duration::hours(3),
        };
        store
            .add_resuming(
                &c,
                Resuming { owner: None, since: &since.id, replay_from: Some(&since.seq()) },
            )
            .await
            .unwrap();
        let resume =
            Resume::new(store.clone(), store.clone(), poster.clone(), FeedSettings::default());
        let deliverer = Deliverer::new(store.clone(), poster, 4);
        (PushWorker::new(deliverer, queue).with_resume(resume), store)
    }

    #[tokio::test]
    async fn a_resume_cut_short_goes_back_as_a_continuation_that_finishes_it() {
        let poster = Arc::new(MemoryPoster::new());
        let queue = Arc::new(MemoryTaskQueue::new());
        let (w, _store) = resuming(poster.clone(), queue.clone()).await;
        // WHEN the deadline has passed before the first replay post
        let first = ResumeTask::new("c");
        let outcome = w.resume(&first, Instant::now()).await.unwrap();
        assert!(matches!(outcome, ResumeOutcome::CutShort { replayed: 0, .. }), "{outcome:?}");
        // THEN a continuation of the same connection is enqueued with the position to go on
        // from, in the connection's own message group (a first run that stops gave the task
        // its position: not counted as a failed attempt)
        let next = queue.pop_resume().expect("a continuation");
        assert_eq!((next.resume.as_str(), next.attempt), ("c", 0));
        assert!(next.after.is_some());
        assert_eq!(next.group(), first.group());
        // AND run in time it replays the rest and the connection goes live
        let outcome = w.resume(&next, later()).await.unwrap();
        assert_eq!(outcome, ResumeOutcome::Live { replayed: 2, drained: 0 });
        assert_eq!(poster.received("c").len(), 2);
        assert!(queue.pop_resume().is_none());
    }

    #[tokio::test]
    async fn a_resume_that_makes_no_progress_gives_up_after_the_last_attempt() {
        let queue = Arc::new(MemoryTaskQueue::new());
        let (w, _store) = resuming(Arc::new(MemoryPoster::new()), queue.clone()).await;
        let cut = w.resume(&ResumeTask::new("c"), Instant::now()).await.unwrap();
        let ResumeOutcome::CutShort { after, .. } = cut else { panic!("{cut:?}") };
        assert_eq!(queue.pop_resume().map(|t| t.attempt), Some(0));
        let stuck = ResumeTask { after: Some(after), ..ResumeTask::new("c") };
        w.resume(&stuck, Instant::now()).await.unwrap();
        assert_eq!(queue.pop_resume().map(|t| t.attempt), Some(1), "no progress: one attempt");
        let last = ResumeTask { attempt: MAX_ATTEMPTS - 1, ..stuck };
        assert!(matches!(w.resume(&last, Instant::now()).await, Err(TaskError::GaveUp(1))));
        assert!(queue.pop_resume().is_none());
        // A worker built without the resume refuses the task (SQS retries it).
        let plain = worker(Arc::new(MemoryPoster::new()), queue);
        assert!(matches!(plain.resume(&last, later()).await, Err(TaskError::NoResume)));
    }
}
