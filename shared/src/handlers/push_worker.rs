//! The push worker's transport: an SQS batch from the FIFO fan-out queue, each message one
//! [`Task`] (or one [`ResumeTask`]) run by the [`PushWorker`] use case before the
//! invocation's deadline. A message
//! whose task failed (its remainder could not be re-enqueued, or it gave up) is a batch
//! item failure, and so is every message after it in the batch: FIFO order within a
//! shard holds only if nothing behind a failed message runs first. Messages not started
//! because the deadline passed are failures too (SQS hands them out again).

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::usecases::{
    push::{
        shard::{QueueMessage, ResumeTask, Task},
        worker::PushWorker,
    },
    resume::ResumeOutcome,
};

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
            let parsed = message.body.as_deref().map(serde_json::from_str::<QueueMessage>);
            let parsed = match parsed {
                Some(Ok(m)) if PushWorker::accepts(&m) => m,
                other => {
                    // Retrying cannot fix a body that is not a task; dropping it keeps the
                    // shard moving (the log names it).
                    let why = match other {
                        Some(Err(e)) => e.to_string(),
                        Some(Ok(m)) => format!("task version {}", m.version()),
                        None => "no body".into(),
                    };
                    error!(message_id = %id, problem = %why, "fan-out message is not a task; dropped");
                    continue;
                }
            };
            let done = match &parsed {
                QueueMessage::Deliver(task) => self.deliver(&id, task, deadline).await,
                QueueMessage::Resume(task) => self.resume(&id, task, deadline).await,
            };
            if !done {
                failing = true;
                response.batch_item_failures.push(failure(id));
            }
        }
        response
    }

    /// Runs a delivery task; `false` when it failed (SQS retries it).
    async fn deliver(&self, id: &str, task: &Task, deadline: Instant) -> bool {
        match self.worker.run(task, deadline).await {
            Ok(report) if report.requeued == 0 => {
                info!(message_id = %id, shard = task.shard, attempt = task.attempt, posted = report.delivery.posted, gone = report.delivery.gone, "task delivered");
                true
            }
            Ok(report) => {
                warn!(message_id = %id, shard = task.shard, attempt = task.attempt, posted = report.delivery.posted, gone = report.delivery.gone, failed = report.delivery.failed, requeued = report.requeued, "task partly delivered; remainder re-enqueued");
                true
            }
            Err(e) => {
                error!(message_id = %id, shard = task.shard, attempt = task.attempt, error = %e, "task failed; SQS will retry it");
                false
            }
        }
    }

    /// Runs a resume task; `false` when it failed (SQS retries it).
    async fn resume(&self, id: &str, task: &ResumeTask, deadline: Instant) -> bool {
        match self.worker.resume(task, deadline).await {
            Ok(ResumeOutcome::CutShort { replayed, .. }) => {
                warn!(message_id = %id, connection_id = %task.resume, attempt = task.attempt, replayed, "resume cut short by the deadline; continuation enqueued");
                true
            }
            Ok(outcome) => {
                info!(message_id = %id, connection_id = %task.resume, ?outcome, "resume finished");
                true
            }
            Err(e) => {
                error!(message_id = %id, connection_id = %task.resume, attempt = task.attempt, error = %e, "resume failed; SQS will retry it");
                false
            }
        }
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
        store::{memory::MemoryStore, PageAfter, Resuming},
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
    #[tokio::test]
    async fn a_resume_task_runs_the_resume_and_a_failed_one_is_a_batch_item_failure() {
        use crate::{
            feed::FeedSettings,
            store::{Connection, ConnectionStore},
            usecases::{push::shard::ResumeTask, resume::Resume},
        };
        tokio::time::pause();
        let store = Arc::new(MemoryStore::new());
        let poster = Arc::new(MemoryPoster::new());
        let now = chrono::Utc::now() - chrono::Duration::seconds(30);
        for id in ["ok", "broken"] {
            let c = Connection {
                id: id.into(),
                connected_at: now,
                expires_at: now + chrono::Duration::hours(3),
            };
            // An unknown position: the resume posts `resync`, then goes live.
            store
                .add_resuming(
                    &c,
                    Resuming { owner: None, since: "ticket-9-created", replay_from: None },
                )
                .await
                .unwrap();
        }
        poster.set_failing("broken", true);
        let resume =
            Resume::new(store.clone(), store.clone(), poster.clone(), FeedSettings::default());
        let deliverer = Deliverer::new(store.clone(), poster.clone(), 4);
        let handler: PushWorkerHandler =
            PushWorker::new(deliverer, Arc::new(MemoryTaskQueue::new())).with_resume(resume).into();
        let resume_message = |id: &str, connection: &str| SqsMessage {
            message_id: Some(id.into()),
            body: Some(serde_json::to_string(&ResumeTask::new(connection)).unwrap()),
            ..SqsMessage::default()
        };
        let event =
            SqsEvent { records: vec![resume_message("1", "ok"), resume_message("2", "broken")] };
        let response = handler.handle(event, Instant::now() + Duration::from_secs(60)).await;
        let failed: Vec<_> =
            response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, ["2"], "the resume whose posts failed comes back");
        assert_eq!(poster.received("ok").len(), 1, "ok got its resync");
        let (recipients, _) = store.recipients(&PageAfter::first(10)).await.unwrap();
        let marks: std::collections::HashMap<_, _> =
            recipients.into_iter().map(|r| (r.id, r.mark)).collect();
        assert_eq!(marks["ok"], crate::store::FeedMark::Live);
        assert_eq!(marks["broken"], crate::store::FeedMark::Replaying, "still held for");
    }
}
