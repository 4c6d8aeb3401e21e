//! WebSocket API routes: `$connect` records the connection with the API key it was admitted
//! with (refusing a key over its connection limit with 429), `$disconnect` forgets it,
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
        Connection, ConnectionOwner, ConnectionStore,
    },
    tenant::{relay_default_queue, Caller},
};

/// Default for how many connections one API key may hold open (`MAX_CONNECTIONS_PER_KEY`).
pub const DEFAULT_MAX_CONNECTIONS_PER_KEY: usize = 100;

/// What `$connect` answers a key at its connection limit.
const OVER_LIMIT: &str =
    r#"{"message":"this API key has too many open connections; close one or use another key"}"#;

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
    max_per_key: usize,
}

impl ConnectionRoutes {
    /// Wires the handler from its parts, with the default connection limit per key.
    pub fn new(connections: Arc<dyn ConnectionStore>) -> Self {
        Self { connections, max_per_key: DEFAULT_MAX_CONNECTIONS_PER_KEY }
    }

    /// Sets how many connections one API key may hold open.
    pub fn with_max_connections_per_key(mut self, max: usize) -> Self {
        self.max_per_key = max;
        self
    }

    /// Builds everything from the environment once at cold start
    /// (`MAX_CONNECTIONS_PER_KEY`, default 100).
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let tables = Tables::from_env()?;
        let max = max_connections_per_key(&|k| std::env::var(k).ok())?;
        Ok(Self::new(Arc::new(DynamoStore::new(client_from_env().await, tables)))
            .with_max_connections_per_key(max))
    }

    /// `$connect`: 200 admits the client; anything else makes API Gateway refuse it.
    pub async fn connect(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Some(id) = event.request_context.connection_id else {
            return response(400, Some("missing connection id"));
        };
        let now = Utc::now();
        let connection =
            Connection { id: id.clone(), connected_at: now, expires_at: now + CONNECTION_TTL };
        let caller =
            Caller::from_context(&event.request_context.authorizer.fields, relay_default_queue());
        let recorded = match &caller {
            None => self.connections.add(&connection).await,
            Some(caller) => {
                // Counted before recording: concurrent handshakes of one key can pass
                // together, so the limit may be exceeded by the handshakes in flight.
                match self.connections.count_for_key(&caller.key_id).await {
                    Ok(open) if open >= self.max_per_key => {
                        info!(connection_id = %id, key_id = %caller.key_id, open, "over the key's connection limit");
                        return response(429, Some(OVER_LIMIT));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        error!(connection_id = %id, error = %error_chain(&e), "could not count the key's connections");
                        return response(500, None);
                    }
                }
                let owner = ConnectionOwner {
                    key_id: caller.key_id.clone(),
                    queues: caller.queues.to_context(),
                };
                self.connections.add_owned(&connection, &owner).await
            }
        };
        match recorded {
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

/// Reads `MAX_CONNECTIONS_PER_KEY` (1 to 10,000; default 100).
pub fn max_connections_per_key(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<usize, crate::config::ConfigError> {
    match lookup("MAX_CONNECTIONS_PER_KEY").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_MAX_CONNECTIONS_PER_KEY),
        Some(raw) => raw.parse::<usize>().ok().filter(|n| (1..=10_000).contains(n)).ok_or(
            crate::config::ConfigError {
                var: "MAX_CONNECTIONS_PER_KEY",
                problem: format!("must be a number from 1 to 10000, got {raw:?}"),
            },
        ),
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
