//! The push: one stream batch of new notifications posted to the live WebSocket
//! connections that may see them, in two steps:
//!
//! - [`plan`]: which connections get which notifications of the batch, in feed order (the
//!   connections are read once per batch, not once per record);
//! - [`deliver`]: posting each connection its notifications in order, connections in
//!   parallel; a 410 Gone deletes the connection, any other failure leaves that
//!   connection's rest unfinished so the caller retries it (pushes are at-least-once;
//!   clients dedupe by notification id).
//!
//! Past `PUSH_SHARD_OVER` connections in a batch's plan the push does not deliver itself:
//! [`shard`] cuts the plan into tasks on the FIFO fan-out queue and [`worker`] invocations
//! deliver them, several shards at once.

use std::sync::Arc;

use tracing::error;

use crate::{
    fanout::{ConnectionPoster, TaskQueue},
    store::{ConnectionStore, StoreError},
};

pub mod deliver;
pub mod plan;
pub mod shard;
pub mod worker;

pub use deliver::{Deliverer, DeliveryReport};
pub use plan::{Delivery, Payload, Plan, Planner};
pub use shard::Sharding;

/// Posts in flight at once when `PUSH_CONCURRENCY` is unset.
pub const DEFAULT_CONCURRENCY: usize = 100;
/// Connection ids read per page.
pub const CONNECTIONS_PAGE: u32 = 500;

/// What one fan-out did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FanoutStats {
    /// Posts that reached their connection.
    pub delivered: usize,
    /// Connections that answered 410 and were deleted.
    pub gone: usize,
    /// Posts that failed otherwise (the record will be retried).
    pub failed: usize,
}

/// What pushing one batch came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Counts over the batch.
    pub stats: FanoutStats,
    /// The lowest index of a notification that did not reach every connection it should
    /// have: the caller retries the batch from that record on.
    pub first_failed: Option<usize>,
    /// Tasks enqueued for the workers (0 when delivered inline).
    pub tasks: usize,
}

/// The fan-out use case: plan, then deliver.
#[derive(Debug, Clone)]
pub struct Fanout {
    connections: Arc<dyn ConnectionStore>,
    deliverer: Deliverer,
    page_size: u32,
    sharded: Option<(Sharding, Arc<dyn TaskQueue>)>,
}

impl Fanout {
    /// Over its ports, [`DEFAULT_CONCURRENCY`] connections posted to at a time.
    pub fn new(connections: Arc<dyn ConnectionStore>, poster: Arc<dyn ConnectionPoster>) -> Self {
        let deliverer = Deliverer::new(connections.clone(), poster, DEFAULT_CONCURRENCY);
        Self { connections, deliverer, page_size: CONNECTIONS_PAGE, sharded: None }
    }

    /// Changes how many connections are posted to at once (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.deliverer = self.deliverer.with_concurrency(concurrency);
        self
    }

    /// Changes how many connection ids are read per page.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Shards past `sharding.over` connections: tasks go to `queue` instead of posts.
    pub fn with_sharding(mut self, sharding: Sharding, queue: Arc<dyn TaskQueue>) -> Self {
        self.sharded = Some((sharding, queue));
        self
    }

    /// The deliver step this fan-out uses (the worker posts through the same settings).
    pub fn deliverer(&self) -> &Deliverer {
        &self.deliverer
    }

    /// The plan step this fan-out uses.
    pub fn planner(&self) -> Planner {
        Planner::new(self.connections.clone(), self.page_size)
    }

    /// Pushes one batch of notifications (feed order): plans it, then delivers it.
    pub async fn push_batch(
        &self,
        notifications: Vec<Payload>,
    ) -> Result<BatchOutcome, StoreError> {
        let plan = self.planner().plan(notifications).await?;
        if let Some((sharding, queue)) = &self.sharded {
            if plan.deliveries.len() > sharding.over {
                let tasks = shard::tasks(&plan, sharding);
                let first_failed = match queue.enqueue(&tasks).await {
                    Ok(()) => None,
                    Err(e) => {
                        error!(error = %e, tasks = tasks.len(), "could not enqueue the fan-out tasks");
                        Some(0)
                    }
                };
                return Ok(BatchOutcome {
                    stats: FanoutStats::default(),
                    first_failed,
                    tasks: tasks.len(),
                });
            }
        }
        let report = self.deliverer.deliver(&plan.notifications, plan.deliveries, None).await;
        Ok(BatchOutcome {
            stats: FanoutStats {
                delivered: report.posted,
                gone: report.gone,
                failed: report.failed,
            },
            first_failed: report.first_unfinished().map(|i| i as usize),
            tasks: 0,
        })
    }

    /// Posts `data` (one notification) to every connection that may see it.
    pub async fn fan_out(&self, data: &[u8]) -> Result<FanoutStats, StoreError> {
        Ok(self.push_batch(vec![Payload::from(data)]).await?.stats)
    }
}
