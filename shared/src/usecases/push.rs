//! The push: one notification posted to every live WebSocket connection whose API key may
//! read the ticket's queue, reading the
//! connections page by page with bounded concurrency. 410 Gone deletes that connection;
//! other failures are counted so the caller can have the notification retried (pushes are
//! at-least-once; clients dedupe by notification id).

use std::sync::Arc;

use futures_util::{future::BoxFuture, stream::FuturesUnordered, StreamExt};
use tracing::warn;

use crate::{
    fanout::{ConnectionPoster, PostError},
    http::error_chain,
    store::{ConnectionStore, Recipient, StoreError},
    tenant::{relay_default_queue, QueueRights},
};

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

/// The fan-out use case.
#[derive(Debug, Clone)]
pub struct Fanout {
    connections: Arc<dyn ConnectionStore>,
    poster: Arc<dyn ConnectionPoster>,
    concurrency: usize,
    page_size: u32,
}

impl Fanout {
    /// Over its ports, [`DEFAULT_CONCURRENCY`] posts at a time.
    pub fn new(connections: Arc<dyn ConnectionStore>, poster: Arc<dyn ConnectionPoster>) -> Self {
        Self { connections, poster, concurrency: DEFAULT_CONCURRENCY, page_size: CONNECTIONS_PAGE }
    }

    /// Changes how many posts are in flight at once (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Changes how many connection ids are read per page.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Posts `data` to every connection, reading them page by page, at most
    /// `concurrency` posts in flight. The next page is read while the current page's posts
    /// run (one page ahead at most), so a Scan round trip never leaves the posts idle.
    ///
    /// Written with a plain loop over `FuturesUnordered` of an `async fn` and one boxed
    /// page read rather than stream combinators over closures returning `async` blocks:
    /// rustc cannot prove the latter `Send` for every lifetime, which made `handle`'s future
    /// impossible to `tokio::spawn` (the local gateway runs it on a spawned task).
    pub async fn fan_out(&self, data: &[u8]) -> Result<FanoutStats, StoreError> {
        let mut stats = FanoutStats::default();
        let mut in_flight = FuturesUnordered::new();
        let queue = notification_queue(data);
        let (first, after_first) = self.connections.recipients(None, self.page_size).await?;
        let mut pending = audience(first, queue.as_deref()).into_iter();
        // The read of the page after `pending`, and its result until `pending` runs out.
        let mut reading = after_first.map(|cursor| self.read_page(cursor));
        let mut read: Option<ConnectionPage> = None;
        loop {
            if pending.len() == 0 {
                if let Some((recipients, next)) = read.take() {
                    pending = audience(recipients, queue.as_deref()).into_iter();
                    reading = next.map(|cursor| self.read_page(cursor));
                }
            }
            while in_flight.len() < self.concurrency {
                let Some(id) = pending.next() else { break };
                in_flight.push(self.post_one(id, data));
            }
            if in_flight.is_empty() && pending.len() == 0 && read.is_none() {
                // Nothing left to post but what the page being read holds.
                let Some(page) = reading.take() else { break };
                read = Some(page.await?);
                continue;
            }
            tokio::select! {
                Some(outcome) = in_flight.next(), if !in_flight.is_empty() => match outcome {
                    PostOutcome::Delivered => stats.delivered += 1,
                    PostOutcome::Gone => stats.gone += 1,
                    PostOutcome::Failed => stats.failed += 1,
                },
                page = async {
                    match reading.as_mut() {
                        Some(page) => page.await,
                        None => std::future::pending().await,
                    }
                }, if reading.is_some() && read.is_none() =>
                {
                    reading = None;
                    read = Some(page?);
                }
                else => {}
            }
        }
        Ok(stats)
    }

    /// Reads the page of connection ids after `cursor`.
    fn read_page(&self, cursor: String) -> BoxFuture<'_, Result<ConnectionPage, StoreError>> {
        Box::pin(async move { self.connections.recipients(Some(&cursor), self.page_size).await })
    }

    /// Posts to one connection; a gone connection is deleted here.
    async fn post_one(&self, id: String, data: &[u8]) -> PostOutcome {
        match self.poster.post(&id, data).await {
            Ok(()) => PostOutcome::Delivered,
            Err(PostError::Gone) => {
                if let Err(e) = self.connections.remove(&id).await {
                    warn!(connection_id = %id, error = %error_chain(&e), "could not delete gone connection");
                }
                PostOutcome::Gone
            }
            Err(PostError::Failed(why)) => {
                warn!(connection_id = %id, error = %why, "post to connection failed");
                PostOutcome::Failed
            }
        }
    }
}

/// One page of connection ids and the cursor of the next, as `ConnectionStore::page` answers.
type ConnectionPage = (Vec<Recipient>, Option<String>);

/// The queue of the ticket a notification is about (`ticket.queue`).
fn notification_queue(data: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    value.get("ticket")?.get("queue")?.as_str().map(str::to_owned)
}

/// The ids of the connections whose key may read `queue` (a notification without one goes
/// only to keys that read every queue). A connection recorded without an owner (in-process
/// tests without an authorizer) receives everything.
fn audience(recipients: Vec<Recipient>, queue: Option<&str>) -> Vec<String> {
    recipients
        .into_iter()
        .filter(|r| {
            let Some(rights) = &r.queues else { return true };
            let list: Vec<String> = serde_json::from_str(rights).unwrap_or_default();
            let rights = QueueRights::from_list(&list, relay_default_queue());
            match queue {
                Some(q) => rights.allows(q),
                None => rights == QueueRights::All,
            }
        })
        .map(|r| r.id)
        .collect()
}

/// What one post came to.
enum PostOutcome {
    Delivered,
    Gone,
    Failed,
}
