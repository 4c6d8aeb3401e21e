//! WebSocket API routes: `$connect` records the connection, `$disconnect` forgets it,
//! `$default` answers any message with a short help text.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use chrono::Utc;
use tracing::{error, info};

use crate::{
    config::Tables,
    http::error_chain,
    store::{
        dynamodb::{client_from_env, DynamoStore},
        Connection, ConnectionStore,
    },
};

/// How long a connection record lives: API Gateway closes connections after 2 h, so 3 h
/// leaves TTL a margin and never drops a live one.
pub const CONNECTION_TTL: chrono::Duration = chrono::Duration::hours(3);

/// What `$default` answers.
pub const HELP: &str = r#"{"message":"rt-relay pushes a JSON notification for every new ticket on this connection; it does not take commands. Dedupe by the notification's id."}"#;

fn response(status: i64, body: Option<&str>) -> ApiGatewayProxyResponse {
    let mut resp = ApiGatewayProxyResponse::default();
    resp.status_code = status;
    resp.body = body.map(|b| Body::Text(b.to_owned()));
    resp
}

/// `$connect` and `$disconnect` over the connections table.
#[derive(Debug, Clone)]
pub struct ConnectionRoutes {
    connections: Arc<dyn ConnectionStore>,
}

impl ConnectionRoutes {
    /// Wires the handler from its parts.
    pub fn new(connections: Arc<dyn ConnectionStore>) -> Self {
        Self { connections }
    }

    /// Builds everything from the environment once at cold start.
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let tables = Tables::from_env()?;
        Ok(Self::new(Arc::new(DynamoStore::new(client_from_env().await, tables))))
    }

    /// `$connect`: 200 admits the client; anything else makes API Gateway refuse it.
    pub async fn connect(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Some(id) = event.request_context.connection_id else {
            return response(400, Some("missing connection id"));
        };
        let now = Utc::now();
        match self
            .connections
            .add(&Connection {
                id: id.clone(),
                connected_at: now,
                expires_at: now + CONNECTION_TTL,
            })
            .await
        {
            Ok(()) => {
                info!(connection_id = %id, "connected");
                response(200, None)
            }
            Err(e) => {
                error!(connection_id = %id, error = %error_chain(&e), "could not record connection");
                response(500, None)
            }
        }
    }

    /// `$disconnect`: forgets the connection.
    pub async fn disconnect(
        &self,
        event: ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(id) = event.request_context.connection_id else { return response(400, None) };
        match self.connections.remove(&id).await {
            Ok(()) => {
                info!(connection_id = %id, "disconnected");
                response(200, None)
            }
            Err(e) => {
                // The push function removes it on its first 410 anyway.
                error!(connection_id = %id, error = %error_chain(&e), "could not remove connection");
                response(500, None)
            }
        }
    }
}

/// `$default`: the integration response is the reply (the template declares a route response).
pub fn default_route(_event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    response(200, Some(HELP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn event(id: &str) -> ApiGatewayWebsocketProxyRequest {
        let mut e = ApiGatewayWebsocketProxyRequest::default();
        e.request_context.connection_id = Some(id.to_owned());
        e
    }

    #[tokio::test]
    async fn connect_then_disconnect_tracks_the_connection() {
        let store = Arc::new(MemoryStore::new());
        let routes = ConnectionRoutes::new(store.clone());
        assert_eq!(routes.connect(event("c1")).await.status_code, 200);
        assert_eq!(store.connection_count(), 1);
        assert_eq!(routes.disconnect(event("c1")).await.status_code, 200);
        assert_eq!(store.connection_count(), 0);
    }

    #[tokio::test]
    async fn connect_without_an_id_is_refused() {
        let routes = ConnectionRoutes::new(Arc::new(MemoryStore::new()));
        assert_eq!(
            routes.connect(ApiGatewayWebsocketProxyRequest::default()).await.status_code,
            400
        );
    }

    #[test]
    fn default_route_answers_help() {
        let r = default_route(event("c"));
        assert_eq!(r.status_code, 200);
        assert!(matches!(r.body, Some(Body::Text(ref t)) if t.contains("rt-relay")));
    }
}
