//! The stream-triggered push: each new notification in a DynamoDB stream batch is posted
//! to every live WebSocket connection whose API key may read the ticket's queue, with
//! bounded concurrency, reading connections page by page. 410 Gone deletes that connection; any other failure marks the record as a
//! batch item failure, so Lambda retries from it (pushes are at-least-once; clients dedupe
//! by notification id).

use std::{sync::Arc, time::Duration};

use aws_lambda_events::{
    dynamodb::{Event, EventRecord},
    streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse},
};
use futures_util::{future::BoxFuture, stream::FuturesUnordered, StreamExt};
use tracing::{error, info, warn};

use crate::{
    config::{ConfigError, Tables},
    fanout::{ApiGatewayPoster, ConnectionPoster, PostError},
    http::error_chain,
    store::{
        dynamodb::{client_from_env, DynamoStore},
        ConnectionStore, Recipient, StoreError,
    },
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

/// The push function's handler.
#[derive(Debug, Clone)]
pub struct PushNotifications {
    connections: Arc<dyn ConnectionStore>,
    poster: Arc<dyn ConnectionPoster>,
    concurrency: usize,
    page_size: u32,
}

impl PushNotifications {
    /// Wires the handler; `concurrency` is clamped to at least 1.
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        poster: Arc<dyn ConnectionPoster>,
        concurrency: usize,
    ) -> Self {
        Self { connections, poster, concurrency: concurrency.max(1), page_size: CONNECTIONS_PAGE }
    }

    /// Changes how many connection ids are read per page.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Builds everything from the environment once at cold start: `CONNECTIONS_TABLE`
    /// (via [`Tables`]), `WS_MANAGEMENT_ENDPOINT` (required), `PUSH_CONCURRENCY`.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let lookup = |k: &str| std::env::var(k).ok();
        let connections_table = lookup("CONNECTIONS_TABLE")
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError { var: "CONNECTIONS_TABLE", problem: "is not set".into() })?;
        let endpoint = crate::config::management_endpoint_from_lookup(&lookup)?
            .ok_or(ConfigError { var: "WS_MANAGEMENT_ENDPOINT", problem: "is not set".into() })?;
        let concurrency = match lookup("PUSH_CONCURRENCY") {
            None => DEFAULT_CONCURRENCY,
            Some(v) => v.trim().parse::<usize>().ok().filter(|c| (1..=1000).contains(c)).ok_or(
                ConfigError {
                    var: "PUSH_CONCURRENCY",
                    problem: format!("must be an integer from 1 to 1000, got {v:?}"),
                },
            )?,
        };
        let tables = Tables { connections: connections_table, ..Tables::with_prefix("unused-") };
        let store = Arc::new(DynamoStore::new(client_from_env().await, tables));
        let poster = Arc::new(ApiGatewayPoster::new(&endpoint, Duration::from_secs(5)).await);
        Ok(Self::new(store, poster, concurrency))
    }

    /// Handles one stream batch. Records are taken in order; after the first failed record
    /// the rest are reported failed too without pushing (Lambda retries from the lowest
    /// failed record anyway, so pushing them now would only duplicate).
    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        let mut failing = false;
        for record in &event.records {
            let seq = record.change.sequence_number.clone();
            if failing {
                response.batch_item_failures.push(failure(seq));
                continue;
            }
            if record.event_name != "INSERT" {
                continue;
            }
            let Some(payload) = payload_of(record) else {
                // Retrying cannot fix a record without a payload; skipping keeps the stream moving.
                warn!(event_id = %record.event_id, "stream record has no notification payload; skipped");
                continue;
            };
            match self.fan_out(payload.as_bytes()).await {
                Ok(stats) if stats.failed == 0 => {
                    info!(event_id = %record.event_id, delivered = stats.delivered, gone = stats.gone, "pushed");
                }
                Ok(stats) => {
                    warn!(event_id = %record.event_id, delivered = stats.delivered, gone = stats.gone, failed = stats.failed, "push partly failed; record will be retried");
                    failing = true;
                    response.batch_item_failures.push(failure(seq));
                }
                Err(e) => {
                    error!(event_id = %record.event_id, error = %error_chain(&e), "could not read connections; record will be retried");
                    failing = true;
                    response.batch_item_failures.push(failure(seq));
                }
            }
        }
        response
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

/// One page of connections and the cursor of the next, as `ConnectionStore::recipients`
/// answers.
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

fn failure(sequence_number: Option<String>) -> DynamoDbBatchItemFailure {
    let mut f = DynamoDbBatchItemFailure::default();
    f.item_identifier = sequence_number;
    f
}

/// The notification JSON stored in the record's `payload` attribute.
fn payload_of(record: &EventRecord) -> Option<String> {
    let image = serde_json::to_value(&record.change.new_image).ok()?;
    image.get("payload")?.get("S")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{fanout::MemoryPoster, store::memory::MemoryStore, store::Connection};
    use chrono::Utc;
    use serde_json::json;

    fn record(seq: &str, payload: &str) -> serde_json::Value {
        json!({
            "eventID": format!("e{seq}"), "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": {"id": {"S": "n"}},
                "NewImage": {"id": {"S": "n"}, "payload": {"S": payload}},
                "SequenceNumber": seq, "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"
            }
        })
    }

    fn batch(records: Vec<serde_json::Value>) -> Event {
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    async fn setup(ids: &[&str]) -> (Arc<MemoryStore>, Arc<MemoryPoster>, PushNotifications) {
        let store = Arc::new(MemoryStore::new());
        for id in ids {
            let now = Utc::now();
            store
                .add(&Connection { id: (*id).into(), connected_at: now, expires_at: now })
                .await
                .unwrap();
        }
        let poster = Arc::new(MemoryPoster::new());
        let push = PushNotifications::new(store.clone(), poster.clone(), 4).with_page_size(2);
        (store, poster, push)
    }

    #[tokio::test]
    async fn every_connection_on_every_page_receives_each_record() {
        let ids = ["a", "b", "c", "d", "e"];
        let (_, poster, push) = setup(&ids).await;
        let resp = push
            .handle(batch(vec![record("1", r#"{"id":"n1"}"#), record("2", r#"{"id":"n2"}"#)]))
            .await;
        assert!(resp.batch_item_failures.is_empty());
        for id in ids {
            assert_eq!(
                poster.received(id),
                vec![br#"{"id":"n1"}"#.to_vec(), br#"{"id":"n2"}"#.to_vec()],
                "{id}"
            );
        }
    }

    #[tokio::test]
    async fn a_batch_can_be_handled_on_a_spawned_task() {
        // Compile-time guard: `handle`'s future must be `Send` for every lifetime, or the
        // local gateway (which spawns it) does not build.
        let (_, poster, push) = setup(&["a", "b", "c"]).await;
        let resp = tokio::spawn(async move { push.handle(batch(vec![record("1", "{}")])).await })
            .await
            .unwrap();
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(poster.received("c").len(), 1);
    }

    /// Counts page reads; posts wait at a gate the test opens.
    #[derive(Debug)]
    struct CountingStore {
        inner: MemoryStore,
        pages: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl ConnectionStore for CountingStore {
        async fn add(&self, c: &Connection) -> Result<(), StoreError> {
            self.inner.add(c).await
        }
        async fn remove(&self, id: &str) -> Result<(), StoreError> {
            self.inner.remove(id).await
        }
        async fn page(
            &self,
            after: Option<&str>,
            limit: u32,
        ) -> Result<(Vec<String>, Option<String>), StoreError> {
            self.pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.page(after, limit).await
        }
    }

    #[derive(Debug)]
    struct GatedPoster {
        gate: tokio::sync::Semaphore,
        inner: MemoryPoster,
    }

    #[async_trait::async_trait]
    impl ConnectionPoster for GatedPoster {
        async fn post(&self, id: &str, data: &[u8]) -> Result<(), PostError> {
            let _permit =
                self.gate.acquire().await.map_err(|e| PostError::Failed(e.to_string()))?;
            self.inner.post(id, data).await
        }
    }

    #[tokio::test]
    async fn the_next_page_is_read_while_posts_are_in_flight() {
        let store =
            Arc::new(CountingStore { inner: MemoryStore::new(), pages: Default::default() });
        let now = Utc::now();
        for id in ["a", "b", "c", "d", "e"] {
            store
                .add(&Connection { id: id.into(), connected_at: now, expires_at: now })
                .await
                .unwrap();
        }
        let poster = Arc::new(GatedPoster {
            gate: tokio::sync::Semaphore::new(0),
            inner: MemoryPoster::new(),
        });
        let push = PushNotifications::new(store.clone(), poster.clone(), 2).with_page_size(2);
        let task = tokio::spawn(async move { push.fan_out(b"{}").await });
        // GIVEN the first page's posts cannot finish THEN the second page is read anyway.
        for _ in 0..200 {
            if store.pages.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(
            store.pages.load(std::sync::atomic::Ordering::SeqCst) >= 2,
            "page 2 read while page 1 posts wait"
        );
        assert!(poster.inner.received("a").is_empty(), "no post has finished yet");
        poster.gate.add_permits(1000);
        let stats = task.await.unwrap().unwrap();
        assert_eq!(stats, FanoutStats { delivered: 5, gone: 0, failed: 0 });
        assert_eq!(
            store.pages.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "three pages of 2, 2 and 1"
        );
    }

    #[tokio::test]
    async fn gone_connections_are_deleted_and_do_not_fail_the_record() {
        let (store, poster, push) = setup(&["live", "gone"]).await;
        poster.set_gone("gone");
        let resp = push.handle(batch(vec![record("1", "{}")])).await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(store.connection_count(), 1);
        assert_eq!(poster.received("live").len(), 1);
    }

    #[tokio::test]
    async fn a_failing_connection_fails_its_record_and_the_rest_of_the_batch() {
        let (store, poster, push) = setup(&["live", "flaky"]).await;
        poster.set_failing("flaky", true);
        let resp =
            push.handle(batch(vec![record("1", "{}"), record("2", "{}"), record("3", "{}")])).await;
        let ids: Vec<_> =
            resp.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap()).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        assert_eq!(store.connection_count(), 2, "a failing connection is not deleted");
        assert_eq!(poster.received("live").len(), 1, "later records were not pushed");
    }

    #[tokio::test]
    async fn records_without_payload_and_non_inserts_are_skipped() {
        let (_, poster, push) = setup(&["a"]).await;
        let mut modify = record("1", "{}");
        modify["eventName"] = json!("MODIFY");
        let mut empty = record("2", "{}");
        empty["dynamodb"]["NewImage"] = json!({"id": {"S": "n"}});
        let resp = push.handle(batch(vec![modify, empty])).await;
        assert!(resp.batch_item_failures.is_empty());
        assert!(poster.received("a").is_empty());
    }
}
