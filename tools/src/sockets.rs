//! Closing a revoked key's open WebSockets: the connections table's `by-key` index names
//! them, and the WebSocket API's Management API (`DELETE /@connections/{id}`) closes each,
//! as API Gateway lets its owner do. On AWS that is the stack's
//! `WebSocketManagementEndpoint` output, called with the operator's credentials (the
//! template's `KeyOperatorsPolicy` grants exactly `DELETE` on `@connections`); locally the
//! gateway's loopback `@connections` listener.

use std::error::Error;

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use rt_relay_shared::store::{dynamodb::DynamoStore, ConnectionStore};

/// Closes the open WebSockets of one key.
#[async_trait]
pub trait KeySockets: Send + Sync {
    /// Closes every open WebSocket of `key_id`; returns how many were open.
    async fn close_all(&self, key_id: &str) -> Result<usize, Box<dyn Error + Send + Sync>>;
}

/// [`KeySockets`] over the connections table and the Management API.
#[derive(Debug, Clone)]
pub struct ManagedSockets {
    connections: DynamoStore,
    management: aws_sdk_apigatewaymanagement::Client,
}

impl ManagedSockets {
    /// Over `connections` (the store of the connections table) and the Management API at
    /// `endpoint` (e.g. `https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
    pub fn new(connections: DynamoStore, sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint.trim_end_matches('/'))
            .build();
        Self { connections, management: aws_sdk_apigatewaymanagement::Client::from_conf(conf) }
    }
}

#[async_trait]
impl KeySockets for ManagedSockets {
    async fn close_all(&self, key_id: &str) -> Result<usize, Box<dyn Error + Send + Sync>> {
        let ids = self.connections.ids_for_key(key_id).await?;
        for id in &ids {
            match self.management.delete_connection().connection_id(id).send().await {
                Ok(_) => {}
                // Already closed: only its row is left.
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(DeleteConnectionError::GoneException(_))
                    ) => {}
                Err(e) => return Err(Box::new(e.into_service_error())),
            }
            // $disconnect removes the row too; this covers a connection already gone.
            self.connections.remove(id).await?;
        }
        Ok(ids.len())
    }
}
