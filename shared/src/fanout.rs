//! The boundary to the API Gateway Management API: posting a message to one WebSocket
//! connection. [`ApiGatewayPoster`] is the real adapter (it also talks to the local
//! gateway's `@connections`); [`MemoryPoster`] is the unit-test fake.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::{primitives::Blob, Client};

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
