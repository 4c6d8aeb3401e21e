//! The push worker's transport: an SQS batch from the FIFO fan-out queue, each message one
//! [`Task`] run by the [`PushWorker`] use case before the invocation's deadline. A message
//! whose task failed (its remainder could not be re-enqueued, or it gave up) is a batch
//! item failure, and so is every message after it in the batch: FIFO order within a
//! shard holds only if nothing behind a failed message runs first. Messages not started
//! because the deadline passed are failures too (SQS hands them out again).

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::usecases::push::{shard::Task, worker::PushWorker};

/// The push worker function's handler.
#[derive(Debug, Clone)]
pub struct PushWorkerHandler {
    worker: PushWorker,
}

impl From<PushWorker> for PushWorkerHandler {
    fn from(worker: PushWorker) -> Self {
        Self { worker }
    }
}

impl PushWorkerHandler {
    /// Runs the batch's tasks in order; no post starts at or after `deadline`.
    pub async fn handle(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let mut failing = false;
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            if failing || Instant::now() >= deadline {
                failing = true;
                response.batch_item_failures.push(failure(id));
                continue;
            }
            let task = message.body.as_deref().map(serde_json::from_str::<Task>);
            let task = match task {
                Some(Ok(task)) if PushWorker::accepts(&task) => task,
                other => {
                    // Retrying cannot fix a body that is not a task; dropping it keeps the
                    // shard moving (the log names it).
                    let why = match other {
                        Some(Err(e)) => e.to_string(),
                        Some(Ok(t)) => format!("task version {}", t.v),
                        None => "no body".into(),
                    };
                    error!(message_id = %id, problem = %why, "fan-out message is not a task; dropped");
                    continue;
                }
            };
            match self.worker.run(&task, deadline).await {
                Ok(report) if report.requeued == 0 => {
                    info!(message_id = %id, shard = task.shard, attempt = task.attempt, posted = report.delivery.posted, gone = report.delivery.gone, "task delivered");
                }
                Ok(report) => {
                    warn!(message_id = %id, shard = task.shard, attempt = task.attempt, posted = report.delivery.posted, gone = report.delivery.gone, failed = report.delivery.failed, requeued = report.requeued, "task partly delivered; remainder re-enqueued");
                }
                Err(e) => {
                    error!(message_id = %id, shard = task.shard, attempt = task.attempt, error = %e, "task failed; SQS will retry it");
                    failing = true;
                    response.batch_item_failures.push(failure(id));
                }
            }
        }
        response
    }
}

fn failure(message_id: String) -> BatchItemFailure {
    BatchItemFailure { item_identifier: message_id }
}

// Lambda's SQS event and partial batch response, the fields used here only (written out
// rather than taken from `aws_lambda_events`, whose `sqs` feature pulls in `serde_with`).

/// An SQS event source batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqsEvent {
    /// The messages, in the order SQS delivered them.
    #[serde(rename = "Records")]
    pub records: Vec<SqsMessage>,
}

/// One message of an [`SqsEvent`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsMessage {
    /// The message id (what a batch item failure names).
    #[serde(default)]
    pub message_id: Option<String>,
    /// The receipt handle (the local event source deletes by it).
    #[serde(default)]
    pub receipt_handle: Option<String>,
    /// The body: a task's JSON.
    #[serde(default)]
    pub body: Option<String>,
    /// System attributes (`MessageGroupId`, `ApproximateReceiveCount`, ...).
    #[serde(default)]
    pub attributes: std::collections::HashMap<String, String>,
}

/// The partial batch response (`ReportBatchItemFailures`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsBatchResponse {
    /// The messages to hand out again.
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// One failed message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    /// Its message id.
    pub item_identifier: String,
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;
    use crate::{
        fanout::{MemoryPoster, MemoryTaskQueue},
        store::memory::MemoryStore,
        usecases::push::{
            shard::{tasks, Sharding},
            Deliverer, Delivery, Payload, Plan,
        },
    };

    fn message(id: &str, connection: &str) -> SqsMessage {
        let plan = Plan {
            notifications: vec![Payload::from(&b"{}"[..])],
            deliveries: vec![Delivery { connection: connection.into(), notifications: vec![0] }],
        };
        let task = tasks(&plan, &Sharding { shards: 1, ..Sharding::default() }).remove(0);
        SqsMessage {
            message_id: Some(id.into()),
            body: Some(serde_json::to_string(&task).unwrap()),
            ..SqsMessage::default()
        }
    }

    #[tokio::test]
    async fn a_failed_task_fails_itself_and_every_message_after_it() {
        let poster = Arc::new(MemoryPoster::new());
        poster.set_failing("b", true);
        let queue = Arc::new(MemoryTaskQueue::new());
        queue.set_failing(true);
        let deliverer = Deliverer::new(Arc::new(MemoryStore::new()), poster.clone(), 4);
        let handler: PushWorkerHandler = PushWorker::new(deliverer, queue).into();
        let event =
            SqsEvent { records: vec![message("1", "a"), message("2", "b"), message("3", "c")] };
        let deadline = Instant::now() + Duration::from_secs(60);
        let response = handler.handle(event, deadline).await;
        let failed: Vec<_> =
            response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        // b's remainder could not be enqueued: 2 fails, and 3 is not run before it
        assert_eq!(failed, ["2", "3"]);
        assert_eq!(poster.received("a").len(), 1);
        assert!(poster.received("c").is_empty());
    }

    #[tokio::test]
    async fn a_body_that_is_not_a_task_is_dropped_not_retried() {
        let deliverer =
            Deliverer::new(Arc::new(MemoryStore::new()), Arc::new(MemoryPoster::new()), 4);
        let handler: PushWorkerHandler =
            PushWorker::new(deliverer, Arc::new(MemoryTaskQueue::new())).into();
        let junk = SqsMessage {
            message_id: Some("1".into()),
            body: Some("{".into()),
            ..SqsMessage::default()
        };
        let response = handler
            .handle(SqsEvent { records: vec![junk] }, Instant::now() + Duration::from_secs(9))
            .await;
        assert!(response.batch_item_failures.is_empty());
    }
}
