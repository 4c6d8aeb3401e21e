//! The DELIVER step of the push: posts each connection its notifications in feed order (one
//! post after the other for a connection), connections in parallel up to a bound. A 410
//! Gone deletes the connection (whoever sees the 410 deletes it); any other failure, or a
//! deadline reached before a connection is done, leaves that connection's remaining
//! notifications in [`DeliveryReport::unfinished`] for the caller to retry, so nothing is
//! dropped.

use std::sync::Arc;

use futures_util::{stream::FuturesUnordered, StreamExt};
use tokio::time::Instant;
use tracing::warn;

use super::plan::{Delivery, Payload};
use crate::{
    fanout::{ConnectionPoster, PostError},
    http::error_chain,
    store::ConnectionStore,
};

/// What a delivery run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Posts that reached their connection.
    pub posted: usize,
    /// Connections that answered 410 and were deleted.
    pub gone: usize,
    /// Posts that failed otherwise (their connection's rest is in `unfinished`).
    pub failed: usize,
    /// What is left to post: per connection, the notifications not yet posted (the failed
    /// one first), in feed order; connections not started before the deadline whole.
    pub unfinished: Vec<Delivery>,
}

impl DeliveryReport {
    /// The lowest notification index some connection still needs, if any.
    pub fn first_unfinished(&self) -> Option<u32> {
        self.unfinished.iter().filter_map(|d| d.notifications.first().copied()).min()
    }
}

/// The deliver step over the poster.
#[derive(Debug, Clone)]
pub struct Deliverer {
    connections: Arc<dyn ConnectionStore>,
    poster: Arc<dyn ConnectionPoster>,
    concurrency: usize,
}

impl Deliverer {
    /// At most `concurrency` connections posted to at once (at least 1).
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        poster: Arc<dyn ConnectionPoster>,
        concurrency: usize,
    ) -> Self {
        Self { connections, poster, concurrency: concurrency.max(1) }
    }

    /// Changes how many connections are posted to at once (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Posts every delivery its notifications (indices into `notifications`) in order.
    /// No post starts at or after `deadline`: what is not done by then is reported
    /// unfinished, as is every post that failed and what came after it.
    pub async fn deliver(
        &self,
        notifications: &[Payload],
        deliveries: Vec<Delivery>,
        deadline: Option<Instant>,
    ) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        let mut pending = deliveries.into_iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.concurrency {
                let Some(d) = pending.next() else { break };
                if past(deadline) {
                    report.unfinished.push(d);
                    continue;
                }
                in_flight.push(self.deliver_one(notifications, d, deadline));
            }
            let Some(outcome) = in_flight.next().await else { break };
            report.posted += outcome.posted;
            match outcome.end {
                End::Done => {}
                End::Gone => report.gone += 1,
                End::Failed(rest) => {
                    report.failed += 1;
                    report.unfinished.push(rest);
                }
                End::OutOfTime(rest) => report.unfinished.push(rest),
            }
        }
        report
    }

    /// Posts one connection its notifications in order, stopping at the first that does
    /// not reach it, or at the deadline.
    async fn deliver_one(
        &self,
        notifications: &[Payload],
        d: Delivery,
        deadline: Option<Instant>,
    ) -> Outcome {
        let mut posted = 0;
        for (k, &i) in d.notifications.iter().enumerate() {
            let rest = || Delivery {
                connection: d.connection.clone(),
                notifications: d.notifications[k..].to_vec(),
            };
            if k > 0 && past(deadline) {
                return Outcome { posted, end: End::OutOfTime(rest()) };
            }
            let Some(data) = notifications.get(i as usize) else {
                // A plan never names a notification it lacks; a task from elsewhere might.
                warn!(connection_id = %d.connection, index = i, "delivery names no such notification; skipped");
                continue;
            };
            match self.poster.post(&d.connection, data).await {
                Ok(()) => posted += 1,
                Err(PostError::Gone) => {
                    if let Err(e) = self.connections.remove(&d.connection).await {
                        warn!(connection_id = %d.connection, error = %error_chain(&e), "could not delete gone connection");
                    }
                    return Outcome { posted, end: End::Gone };
                }
                Err(PostError::Failed(why)) => {
                    warn!(connection_id = %d.connection, error = %why, "post to connection failed");
                    return Outcome { posted, end: End::Failed(rest()) };
                }
            }
        }
        Outcome { posted, end: End::Done }
    }
}

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// How one connection's posts ended.
struct Outcome {
    posted: usize,
    end: End,
}

enum End {
    Done,
    Gone,
    Failed(Delivery),
    OutOfTime(Delivery),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        fanout::MemoryPoster,
        store::{memory::MemoryStore, Connection},
    };
    use async_trait::async_trait;
    use chrono::Utc;
    use std::time::Duration;

    fn payloads(n: usize) -> Vec<Payload> {
        (0..n).map(|i| Payload::from(format!("n{i}").into_bytes())).collect()
    }

    fn all(ids: &[&str], n: u32) -> Vec<Delivery> {
        ids.iter()
            .map(|id| Delivery { connection: (*id).into(), notifications: (0..n).collect() })
            .collect()
    }

    async fn store_with(ids: &[&str]) -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::new());
        let now = Utc::now();
        for id in ids {
            store
                .add(&Connection { id: (*id).into(), connected_at: now, expires_at: now })
                .await
                .unwrap();
        }
        store
    }

    /// Fails the post of one payload to one connection; each post takes `pause`.
    #[derive(Debug)]
    struct Poster {
        inner: MemoryPoster,
        fail: Option<(&'static str, &'static [u8])>,
        pause: Duration,
    }

    #[async_trait]
    impl ConnectionPoster for Poster {
        async fn post(&self, id: &str, data: &[u8]) -> Result<(), PostError> {
            tokio::time::sleep(self.pause).await;
            if self.fail == Some((id, data)) {
                return Err(PostError::Failed("injected".into()));
            }
            self.inner.post(id, data).await
        }
    }

    #[tokio::test]
    async fn each_connection_gets_its_notifications_in_order() {
        let store = store_with(&["a", "b"]).await;
        let poster = Arc::new(MemoryPoster::new());
        let deliverer = Deliverer::new(store, poster.clone(), 8);
        let mut deliveries = all(&["a"], 3);
        deliveries.push(Delivery { connection: "b".into(), notifications: vec![0, 2] });
        let report = deliverer.deliver(&payloads(3), deliveries, None).await;
        assert_eq!(report, DeliveryReport { posted: 5, ..Default::default() });
        assert_eq!(poster.received("a"), [b"n0".to_vec(), b"n1".to_vec(), b"n2".to_vec()]);
        assert_eq!(poster.received("b"), [b"n0".to_vec(), b"n2".to_vec()]);
    }

    #[tokio::test]
    async fn a_failed_post_leaves_that_connection_s_rest_unfinished() {
        let store = store_with(&["a", "b"]).await;
        let poster = Arc::new(Poster {
            inner: MemoryPoster::new(),
            fail: Some(("b", b"n1")),
            pause: Duration::ZERO,
        });
        let deliverer = Deliverer::new(store.clone(), poster.clone(), 8);
        let report = deliverer.deliver(&payloads(3), all(&["a", "b"], 3), None).await;
        assert_eq!(report.posted, 4);
        assert_eq!(report.failed, 1);
        assert_eq!(
            report.unfinished,
            [Delivery { connection: "b".into(), notifications: vec![1, 2] }]
        );
        assert_eq!(report.first_unfinished(), Some(1));
        assert_eq!(poster.inner.received("b"), [b"n0".to_vec()], "nothing after the failure");
        assert_eq!(store.connection_count(), 2, "a failing connection is kept");
    }

    #[tokio::test]
    async fn a_gone_connection_is_deleted_and_not_retried() {
        let store = store_with(&["a", "gone"]).await;
        let poster = Arc::new(MemoryPoster::new());
        poster.set_gone("gone");
        let deliverer = Deliverer::new(store.clone(), poster.clone(), 8);
        let report = deliverer.deliver(&payloads(2), all(&["a", "gone"], 2), None).await;
        assert_eq!(report, DeliveryReport { posted: 2, gone: 1, ..Default::default() });
        assert_eq!(store.connection_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn what_the_deadline_cuts_off_is_reported_unfinished() {
        // GIVEN posts of 10 ms, one connection at a time, and a deadline after 25 ms
        let ids = ["a", "b", "c", "d"];
        let store = store_with(&ids).await;
        let poster = Arc::new(Poster {
            inner: MemoryPoster::new(),
            fail: None,
            pause: Duration::from_millis(10),
        });
        let deliverer = Deliverer::new(store, poster.clone(), 1);
        let deadline = Instant::now() + Duration::from_millis(25);
        let report = deliverer.deliver(&payloads(2), all(&ids, 2), Some(deadline)).await;
        // THEN a got both, b its first (the deadline passed between its posts), c and d none,
        // and every post not made is in the remainder, each connection's in order
        assert_eq!(report.posted, 3);
        assert_eq!(report.failed, 0);
        assert_eq!(
            report.unfinished,
            [
                Delivery { connection: "b".into(), notifications: vec![1] },
                Delivery { connection: "c".into(), notifications: vec![0, 1] },
                Delivery { connection: "d".into(), notifications: vec![0, 1] },
            ]
        );
        assert_eq!(poster.inner.received("b"), [b"n0".to_vec()]);
    }
}
