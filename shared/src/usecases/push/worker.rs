//! The worker side of the sharded push: one [`Task`] (a slice of one shard's connections)
//! delivered before a deadline (the invocation's remaining time less a margin). What it
//! could not finish — posts that failed, connections not reached in time — goes back on
//! the queue as the task's remainder (same shard), so nothing is dropped. A remainder after
//! failed posts (or after an invocation that posted nothing) is one attempt later; after
//! [`MAX_ATTEMPTS`] such attempts the task is reported failed instead and SQS's redrive
//! policy moves it to the dead-letter queue.

use std::sync::Arc;

use tokio::time::Instant;

use super::{
    deliver::{Deliverer, DeliveryReport},
    shard::{Task, TASK_VERSION},
};
use crate::fanout::{QueueError, TaskQueue};

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
}

impl PushWorker {
    /// Posts through `deliverer`; remainders go to `queue`.
    pub fn new(deliverer: Deliverer, queue: Arc<dyn TaskQueue>) -> Self {
        Self { deliverer, queue }
    }

    /// Whether this worker understands `task`.
    pub fn accepts(task: &Task) -> bool {
        task.v == TASK_VERSION
    }

    /// Delivers `task`, starting no post at or after `deadline`; re-enqueues what is left.
    pub async fn run(&self, task: &Task, deadline: Instant) -> Result<TaskReport, TaskError> {
        let (notifications, deliveries) = task.unpack();
        let delivery = self.deliverer.deliver(&notifications, deliveries, Some(deadline)).await;
        if delivery.unfinished.is_empty() {
            return Ok(TaskReport { delivery, requeued: 0 });
        }
        // A cut-off that made progress is not a failed attempt: only failed posts, or an
        // invocation that posted nothing, count toward MAX_ATTEMPTS.
        let failed_attempt = delivery.failed > 0 || delivery.posted == 0;
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
        fanout::{MemoryPoster, MemoryTaskQueue},
        store::memory::MemoryStore,
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
        // WHEN b fails THEN a and c are done and only b's two go back, one attempt later
        let report = w.run(&task(&["a", "b", "c"]), later()).await.unwrap();
        assert_eq!((report.delivery.posted, report.requeued), (4, 1));
        let rest = queue.pop().expect("a remainder");
        assert_eq!(rest.attempt, 1);
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
}
