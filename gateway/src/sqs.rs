//! The local event source mapping from the FIFO fan-out queue (moto's SQS, on the same
//! endpoint as DynamoDB) to the push worker, as the template's mapping runs it on AWS:
//! `MaximumConcurrency` receivers at once (one per shard: SQS hands a message group to one
//! receiver at a time, so a shard's tasks run in order), `BatchSize` messages per
//! invocation, `ReportBatchItemFailures` (failed messages are left to come back after the
//! visibility timeout; the others are deleted), and the queue's redrive policy moving a
//! message to the dead-letter queue after `maxReceiveCount` receives. Each invocation gets
//! `worker_time` to run, as the function's timeout less its safety margin.
//!
//! [`ensure_queues`] creates the queue and its dead-letter queue when missing (the gateway
//! does so at start, like the tables), so `make dev` and the tests run the sharded path.

use std::time::Duration;

use aws_sdk_sqs::{
    types::{MessageSystemAttributeName, QueueAttributeName},
    Client,
};
use rt_relay_shared::{
    fanout::QueueError,
    handlers::push_worker::{PushWorkerHandler, SqsEvent, SqsMessage},
    http::error_chain,
    usecases::push::Sharding,
};
use tokio::sync::watch;
use tracing::{info, warn};

/// Pause after a failed SQS call.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Receives do not long-poll: moto's long poll spins (it wakes again at once, for the whole
/// wait, while a visible message waits behind an in-flight one of its FIFO group, as every
/// shard's next task does while its worker runs), which took moto's CPU from every other
/// request. An empty receive is followed by a pause instead, doubling from the first to the
/// longest below, back to none once a message comes.
const RECEIVE_WAIT_SECS: i32 = 0;
/// First pause after an empty receive.
const IDLE_PAUSE_FIRST: Duration = Duration::from_millis(20);
/// Longest pause after empty receives (how late an idle source notices new work).
const IDLE_PAUSE_MAX: Duration = Duration::from_millis(500);

/// The fan-out queue and its event source, mirroring the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutSettings {
    /// When and how the push shards (`PUSH_SHARD_OVER`, `PUSH_SHARDS`,
    /// `PUSH_TASK_CONNECTIONS`).
    pub sharding: Sharding,
    /// The FIFO queue's name (`{TABLE_PREFIX}fanout.fifo`).
    pub queue_name: String,
    /// Its dead-letter queue's name (`{TABLE_PREFIX}fanout-dlq.fifo`).
    pub dlq_name: String,
    /// Messages per worker invocation (`GATEWAY_SQS_BATCH`, template `BatchSize`: 1).
    pub batch_size: i32,
    /// How long a received message stays hidden (`GATEWAY_SQS_VISIBILITY_SECS`, template 60).
    pub visibility: Duration,
    /// Receives before the dead-letter queue (template `maxReceiveCount`: 5).
    pub max_receive_count: u32,
    /// Time one worker invocation has to post (`GATEWAY_WORKER_TIME_MS`, 27,000: the
    /// template's 30 s timeout less the worker's 3 s margin).
    pub worker_time: Duration,
}

/// Creates the dead-letter queue and the fan-out queue (FIFO, redrive to the former) if
/// missing; returns the fan-out queue's URL.
pub async fn ensure_queues(client: &Client, s: &FanoutSettings) -> Result<String, QueueError> {
    let dlq = client
        .create_queue()
        .queue_name(&s.dlq_name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .map_err(|e| failed("CreateQueue", &e))?;
    let dlq_url = dlq.queue_url().unwrap_or_default();
    let attrs = client
        .get_queue_attributes()
        .queue_url(dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed("GetQueueAttributes", &e))?;
    let dlq_arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default();
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": s.max_receive_count,
    });
    let queue = client
        .create_queue()
        .queue_name(&s.queue_name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, s.visibility.as_secs().to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| failed("CreateQueue", &e))?;
    Ok(queue.queue_url().unwrap_or_default().to_owned())
}

fn failed(op: &'static str, e: &(dyn std::error::Error + 'static)) -> QueueError {
    QueueError { op, message: error_chain(e) }
}

/// Receives from the fan-out queue and runs the worker until told to stop.
#[derive(Debug, Clone)]
pub struct SqsSource {
    client: Client,
    queue_url: String,
    worker: PushWorkerHandler,
    settings: FanoutSettings,
}

impl SqsSource {
    /// A source for `queue_url`.
    pub fn new(
        client: Client,
        queue_url: String,
        worker: PushWorkerHandler,
        settings: FanoutSettings,
    ) -> Self {
        Self { client, queue_url, worker, settings }
    }

    /// Runs one receiver per shard until `stop` turns true; an invocation in progress
    /// finishes first.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        info!(queue = %self.queue_url, receivers = self.settings.sharding.shards, "fan-out queue source started");
        let receivers: Vec<_> = (0..self.settings.sharding.shards.max(1))
            .map(|_| tokio::spawn(self.clone().receive_loop(stop.clone())))
            .collect();
        for r in receivers {
            let _ = r.await;
        }
        info!("fan-out queue source stopped");
    }

    async fn receive_loop(self, mut stop: watch::Receiver<bool>) {
        let mut idle = IDLE_PAUSE_FIRST;
        while !*stop.borrow() {
            let received = tokio::select! {
                r = self.receive() => r,
                _ = crate::stopped(&mut stop) => break,
            };
            let pause = match received {
                Ok(messages) if messages.is_empty() => {
                    let pause = idle;
                    idle = (idle * 2).min(IDLE_PAUSE_MAX);
                    pause
                }
                Ok(messages) => {
                    idle = IDLE_PAUSE_FIRST;
                    self.invoke(messages).await;
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "fan-out queue receive failed; will retry");
                    ERROR_PAUSE
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = crate::stopped(&mut stop) => {}
            }
        }
    }

    async fn receive(&self) -> Result<Vec<SqsMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.settings.batch_size)
            .wait_time_seconds(RECEIVE_WAIT_SECS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| QueueError { op: "ReceiveMessage", message: error_chain(&e) })?;
        Ok(out
            .messages()
            .iter()
            .map(|m| SqsMessage {
                message_id: m.message_id().map(str::to_owned),
                receipt_handle: m.receipt_handle().map(str::to_owned),
                body: m.body().map(str::to_owned),
                attributes: m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// One worker invocation over `messages`; the ones not reported failed are deleted.
    async fn invoke(&self, messages: Vec<SqsMessage>) {
        let deadline = tokio::time::Instant::now() + self.settings.worker_time;
        let event = SqsEvent { records: messages.clone() };
        let response = self.worker.handle(event, deadline).await;
        let failed: Vec<&str> =
            response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        for m in messages {
            if m.message_id.as_deref().is_some_and(|id| failed.contains(&id)) {
                continue;
            }
            let Some(handle) = m.receipt_handle else { continue };
            if let Err(e) = self
                .client
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(handle)
                .send()
                .await
            {
                // Not deleted: SQS hands it out again after the visibility timeout
                // (at-least-once, as on AWS).
                warn!(error = %error_chain(&e), "could not delete a processed fan-out message");
            }
        }
    }
}
