//! The push function's transport: a DynamoDB stream batch of the notifications table, its
//! new notifications handed to the [`Fanout`] use case as one batch. The records from the
//! first notification that did not reach everyone on become batch item failures, so Lambda
//! retries from there.

use aws_lambda_events::{
    dynamodb::{Event, EventRecord},
    streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse},
};
use tracing::{error, info, warn};

pub use crate::usecases::push::{FanoutStats, CONNECTIONS_PAGE, DEFAULT_CONCURRENCY};
use crate::{
    http::error_chain,
    store::StoreResult,
    usecases::push::{BatchOutcome, Fanout, Payload},
};

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
    /// Posts `data` to every connection ([`Fanout::fan_out`]).
    pub async fn fan_out(&self, data: &[u8]) -> StoreResult<FanoutStats> {
        self.fanout.fan_out(data).await
    }

    /// Handles one stream batch: its new notifications are planned and delivered as one
    /// batch (in feed order). When some notification did not reach every connection it
    /// should have, the records from it on are reported failed, so Lambda retries from
    /// there (connections that had them get them again: at-least-once).
    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        let mut sequences = Vec::new();
        let mut notifications = Vec::new();
        for record in &event.records {
            if record.event_name != "INSERT" {
                continue;
            }
            let Some(payload) = payload_of(record) else {
                // Retrying cannot fix a record without a payload; skipping keeps the stream moving.
                warn!(event_id = %record.event_id, "stream record has no notification payload; skipped");
                continue;
            };
            sequences.push(record.change.sequence_number.clone());
            notifications.push(Payload::from(payload.into_bytes()));
        }
        if notifications.is_empty() {
            return response;
        }
        let count = notifications.len();
        let first_failed = match self.fanout.push_batch(notifications).await {
            Ok(BatchOutcome { stats, first_failed: None, tasks }) => {
                info!(
                    notifications = count,
                    delivered = stats.delivered,
                    gone = stats.gone,
                    tasks,
                    "pushed"
                );
                None
            }
            Ok(BatchOutcome { stats, first_failed: Some(i), .. }) => {
                warn!(
                    notifications = count,
                    delivered = stats.delivered,
                    gone = stats.gone,
                    failed = stats.failed,
                    retry_from = i,
                    "push partly failed; records will be retried"
                );
                Some(i)
            }
            Err(e) => {
                error!(error = %error_chain(&e), "could not read connections; batch will be retried");
                Some(0)
            }
        };
        if let Some(i) = first_failed {
            response.batch_item_failures.extend(sequences.into_iter().skip(i).map(failure));
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
        fanout::MemoryPoster,
        store::{memory::MemoryStore, Connection, ConnectionStore},
    };
    use chrono::Utc;
    use serde_json::json;
    use std::sync::Arc;

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
        let fanout = Fanout::new(store.clone(), poster.clone()).with_concurrency(4);
        let push = PushNotifications::from(fanout.with_page_size(2));
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

    #[tokio::test]
    async fn a_batch_reads_the_connections_once_not_once_per_record() {
        let store = Arc::new(MemoryStore::new());
        let now = Utc::now();
        for id in ["a", "b", "c", "d", "e"] {
            store
                .add(&Connection { id: id.into(), connected_at: now, expires_at: now })
                .await
                .unwrap();
        }
        let poster = Arc::new(MemoryPoster::new());
        let fanout = Fanout::new(store.clone(), poster.clone()).with_concurrency(2);
        let push = PushNotifications::from(fanout.with_page_size(2));
        // GIVEN three records and five connections in pages of 2
        let resp =
            push.handle(batch(vec![record("1", "{}"), record("2", "{}"), record("3", "{}")])).await;
        // THEN the three pages are read once for the whole batch, and everyone has all three
        assert!(resp.batch_item_failures.is_empty());
        let pages: Vec<usize> = store.take_audience_reads().into_iter().map(|(_, n)| n).collect();
        assert_eq!(pages, [2, 2, 1], "three pages of 2, 2 and 1, once");
        for id in ["a", "b", "c", "d", "e"] {
            assert_eq!(poster.received(id).len(), 3, "{id}");
        }
    }

    #[tokio::test]
    async fn past_the_threshold_a_batch_becomes_tasks_and_is_not_posted() {
        use crate::{fanout::MemoryTaskQueue, usecases::push::Sharding};
        let (_, poster, push) = setup(&["a", "b", "c"]).await;
        let queue = Arc::new(MemoryTaskQueue::new());
        let sharding = Sharding { over: 2, shards: 2, task_connections: 1, ..Sharding::default() };
        let push: PushNotifications = push.fanout.with_sharding(sharding, queue.clone()).into();
        let resp = push.handle(batch(vec![record("1", "{}"), record("2", "{}")])).await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(queue.len(), 3, "one task per connection (task_connections 1)");
        assert!(poster.received("a").is_empty(), "the workers post, not the push");
        // AND when the queue refuses, the whole batch is retried
        queue.set_failing(true);
        let resp = push.handle(batch(vec![record("3", "{}"), record("4", "{}")])).await;
        assert_eq!(resp.batch_item_failures.len(), 2);
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
        // The batch is planned and delivered as one: the live connection has all three, and
        // gets them again when Lambda retries the batch (at-least-once).
        assert_eq!(poster.received("live").len(), 3);
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
