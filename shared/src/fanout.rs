//! The fan-out's two boundaries. The API Gateway Management API: posting a message to one
//! WebSocket connection; [`ApiGatewayPoster`] is the real adapter (it also talks to the
//! local gateway's `@connections`), [`MemoryPoster`] the unit-test fake. The fan-out
//! queue (SQS FIFO) the sharded push enqueues its tasks on: [`SqsTaskQueue`], and the fake
//! [`MemoryTaskQueue`].

use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::{primitives::Blob, Client};
use sha2::Digest;

use crate::usecases::push::shard::{ResumeTask, Task};

/// Why a post did not reach its connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// 410 Gone: the connection no longer exists; forget it.
    #[error("connection is gone")]
    Gone,
    /// Anything else (throttling, 5xx, network): worth retrying.
    #[error("post failed: {0}")]
    Failed(String),
}

/// Sends one message to one connection.
#[async_trait]
pub trait ConnectionPoster: Send + Sync + std::fmt::Debug {
    /// Posts `data` to `connection_id`.
    async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PostError>;
}

/// The API Gateway Management API over the AWS SDK.
#[derive(Debug, Clone)]
pub struct ApiGatewayPoster {
    client: Client,
}

impl ApiGatewayPoster {
    /// A client for `endpoint` (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`
    /// on AWS, the local gateway's WebSocket URL locally) over the function's one SDK
    /// configuration, built once at cold start.
    pub fn new(sdk: &aws_types::SdkConfig, endpoint: &url::Url, timeout: Duration) -> Self {
        let timeouts =
            aws_smithy_types::timeout::TimeoutConfig::builder().operation_timeout(timeout).build();
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint.as_str().trim_end_matches('/'))
            .timeout_config(timeouts)
            .build();
        Self { client: Client::from_conf(conf) }
    }
}

#[async_trait]
impl ConnectionPoster for ApiGatewayPoster {
    async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PostError> {
        match self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_gone_exception()) => {
                Err(PostError::Gone)
            }
            Err(e) => Err(PostError::Failed(crate::http::error_chain(&e))),
        }
    }
}

/// A fake: records what each connection received; ids listed as gone answer 410 and ids
/// listed as failing answer an error.
#[derive(Debug, Default)]
pub struct MemoryPoster {
    inner: Mutex<MemoryPosterState>,
}

#[derive(Debug, Default)]
struct MemoryPosterState {
    received: HashMap<String, Vec<Vec<u8>>>,
    gone: Vec<String>,
    failing: Vec<String>,
}

impl MemoryPoster {
    /// A poster where every connection is live.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `id` answer 410 Gone.
    pub fn set_gone(&self, id: &str) {
        self.lock().gone.push(id.to_owned());
    }

    /// Makes `id` fail (not gone).
    pub fn set_failing(&self, id: &str, failing: bool) {
        let mut st = self.lock();
        st.failing.retain(|x| x != id);
        if failing {
            st.failing.push(id.to_owned());
        }
    }

    /// What `id` received, in order.
    pub fn received(&self, id: &str) -> Vec<Vec<u8>> {
        self.lock().received.get(id).cloned().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryPosterState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ConnectionPoster for MemoryPoster {
    async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PostError> {
        let mut st = self.lock();
        if st.gone.iter().any(|g| g == connection_id) {
            return Err(PostError::Gone);
        }
        if st.failing.iter().any(|g| g == connection_id) {
            return Err(PostError::Failed("injected".into()));
        }
        st.received.entry(connection_id.to_owned()).or_default().push(data.to_vec());
        Ok(())
    }
}

/// Why tasks could not be put on the fan-out queue.
#[derive(Debug, thiserror::Error)]
#[error("SQS {op} failed: {message}")]
pub struct QueueError {
    /// The operation.
    pub op: &'static str,
    /// What failed (the SDK's error chain, or the entries SQS refused).
    pub message: String,
}

/// The fan-out queue: where the sharded push puts its tasks (and workers their remainders).
#[async_trait]
pub trait TaskQueue: Send + Sync + std::fmt::Debug {
    /// Enqueues `tasks`; tasks of one shard keep their order.
    async fn enqueue(&self, tasks: &[Task]) -> Result<(), QueueError>;

    /// Enqueues a connection's resume (its own message group).
    async fn enqueue_resume(&self, task: &ResumeTask) -> Result<(), QueueError>;
}

/// SQS's limit on one message, and on one `SendMessageBatch` (all entries together).
pub const SQS_MAX_BYTES: usize = 262_144;
/// Entries per `SendMessageBatch`.
const SQS_BATCH_ENTRIES: usize = 10;

/// The FIFO fan-out queue on SQS. Each task is one message in its shard's message group;
/// its deduplication id is the SHA-256 of its body, so a stream batch retried within SQS's
/// five-minute deduplication window does not enqueue the same task twice.
#[derive(Debug, Clone)]
pub struct SqsTaskQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsTaskQueue {
    /// The queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    async fn send_batch(&self, entries: Vec<(String, String)>) -> Result<(), QueueError> {
        let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
        for (k, (group, body)) in entries.into_iter().enumerate() {
            let dedup = hex::encode(sha2::Sha256::digest(body.as_bytes()));
            let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(k.to_string())
                .message_body(body)
                .message_group_id(group)
                .message_deduplication_id(dedup)
                .build()
                .map_err(|e| QueueError { op: "SendMessageBatch", message: e.to_string() })?;
            request = request.entries(entry);
        }
        let out = request.send().await.map_err(|e| QueueError {
            op: "SendMessageBatch",
            message: crate::http::error_chain(&e),
        })?;
        if out.failed().is_empty() {
            return Ok(());
        }
        let refused: Vec<String> = out
            .failed()
            .iter()
            .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or("")))
            .collect();
        Err(QueueError { op: "SendMessageBatch", message: refused.join("; ") })
    }
}

#[async_trait]
impl TaskQueue for SqsTaskQueue {
    async fn enqueue(&self, tasks: &[Task]) -> Result<(), QueueError> {
        let mut batch: Vec<(String, String)> = Vec::new();
        let mut bytes = 0;
        for task in tasks {
            let body = serde_json::to_string(task)
                .map_err(|e| QueueError { op: "SendMessageBatch", message: e.to_string() })?;
            if !batch.is_empty()
                && (batch.len() == SQS_BATCH_ENTRIES || bytes + body.len() > SQS_MAX_BYTES)
            {
                // One batch at a time keeps a shard's tasks in order.
                self.send_batch(std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += body.len();
            batch.push((task.group(), body));
        }
        if !batch.is_empty() {
            self.send_batch(batch).await?;
        }
        Ok(())
    }

    async fn enqueue_resume(&self, task: &ResumeTask) -> Result<(), QueueError> {
        let body = serde_json::to_string(task)
            .map_err(|e| QueueError { op: "SendMessageBatch", message: e.to_string() })?;
        self.send_batch(vec![(task.group(), body)]).await
    }
}

/// A fake queue: keeps what was enqueued, in order.
#[derive(Debug, Default)]
pub struct MemoryTaskQueue {
    tasks: Mutex<std::collections::VecDeque<Task>>,
    resumes: Mutex<std::collections::VecDeque<ResumeTask>>,
    failing: std::sync::atomic::AtomicBool,
}

impl MemoryTaskQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `enqueue` fail (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// Takes the oldest task.
    pub fn pop(&self) -> Option<Task> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }

    fn refuse_if_failing(&self) -> Result<(), QueueError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(QueueError { op: "SendMessageBatch", message: "injected".into() });
        }
        Ok(())
    }

    /// Takes the oldest resume.
    pub fn pop_resume(&self) -> Option<ResumeTask> {
        self.resumes.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }

    /// How many tasks wait.
    pub fn len(&self) -> usize {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no task waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl TaskQueue for MemoryTaskQueue {
    async fn enqueue(&self, tasks: &[Task]) -> Result<(), QueueError> {
        self.refuse_if_failing()?;
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).extend(tasks.iter().cloned());
        Ok(())
    }

    async fn enqueue_resume(&self, task: &ResumeTask) -> Result<(), QueueError> {
        self.refuse_if_failing()?;
        self.resumes.lock().unwrap_or_else(|p| p.into_inner()).push_back(task.clone());
        Ok(())
    }
}
