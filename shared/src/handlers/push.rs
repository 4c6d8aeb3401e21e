//! The push function's transport: a DynamoDB stream batch of the notifications table,
//! each new notification handed to the [`Fanout`] use case. A record whose fan-out failed
//! becomes a batch item failure, so Lambda retries from it.

use aws_lambda_events::{
    dynamodb::{Event, EventRecord},
    streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse},
};
use tracing::{error, info, warn};

pub use crate::usecases::push::{FanoutStats, CONNECTIONS_PAGE, DEFAULT_CONCURRENCY};
use crate::{
    fanout::ConnectionPoster,
    http::error_chain,
    store::{ConnectionStore, StoreError},
    usecases::push::Fanout,
};
use std::sync::Arc;

/// The push function's handler.
#[derive(Debug, Clone)]
pub struct PushNotifications {
    fanout: Fanout,
}

impl From<Fanout> for PushNotifications {
    fn from(fanout: Fanout) -> Self {
        Self { fanout }
    }
}

impl PushNotifications {
    /// Shorthand for a handler over [`Fanout::new`].
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        poster: Arc<dyn ConnectionPoster>,
        concurrency: usize,
    ) -> Self {
        Fanout::new(connections, poster).with_concurrency(concurrency).into()
    }

    /// Changes how many connection ids are read per page.
    pub fn with_page_size(self, page_size: u32) -> Self {
        self.fanout.with_page_size(page_size).into()
    }

    /// Posts `data` to every connection ([`Fanout::fan_out`]).
    pub async fn fan_out(&self, data: &[u8]) -> Result<FanoutStats, StoreError> {
        self.fanout.fan_out(data).await
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
            match self.fanout.fan_out(payload.as_bytes()).await {
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
    use crate::{
        fanout::{MemoryPoster, PostError},
        store::{memory::MemoryStore, Connection},
    };
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
