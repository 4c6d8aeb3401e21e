//! The push: one stream batch of new notifications posted to the live WebSocket
//! connections that may see them, in two steps:
//!
//! - [`plan`]: which connections get which notifications of the batch, in feed order (the
//!   connections are read once per batch, not once per record);
//! - [`deliver`]: posting each connection its notifications in order, connections in
//!   parallel; a 410 Gone deletes the connection, any other failure leaves that
//!   connection's rest unfinished so the caller retries it (pushes are at-least-once;
//!   clients dedupe by notification id).

use std::sync::Arc;

use crate::{
    fanout::ConnectionPoster,
    store::{ConnectionStore, StoreError},
};

pub mod deliver;
pub mod plan;

pub use deliver::{Deliverer, DeliveryReport};
pub use plan::{Delivery, Payload, Plan, Planner};

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
}

/// The fan-out use case: plan, then deliver.
#[derive(Debug, Clone)]
pub struct Fanout {
    connections: Arc<dyn ConnectionStore>,
    deliverer: Deliverer,
    page_size: u32,
}

impl Fanout {
    /// Over its ports, [`DEFAULT_CONCURRENCY`] connections posted to at a time.
    pub fn new(connections: Arc<dyn ConnectionStore>, poster: Arc<dyn ConnectionPoster>) -> Self {
        let deliverer = Deliverer::new(connections.clone(), poster, DEFAULT_CONCURRENCY);
        Self { connections, deliverer, page_size: CONNECTIONS_PAGE }
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
        let report = self.deliverer.deliver(&plan.notifications, plan.deliveries, None).await;
        Ok(BatchOutcome {
            stats: FanoutStats {
                delivered: report.posted,
                gone: report.gone,
                failed: report.failed,
            },
            first_failed: report.first_unfinished().map(|i| i as usize),
        })
    }

    /// Posts `data` (one notification) to every connection that may see it.
    pub async fn fan_out(&self, data: &[u8]) -> Result<FanoutStats, StoreError> {
        Ok(self.push_batch(vec![Payload::from(data)]).await?.stats)
    }
}
