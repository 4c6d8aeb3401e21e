//! The live-connection registry (connection id → the socket's outbound queue) and the API
//! Gateway Management API over it: `POST`, `GET` and `DELETE /@connections/{id}`. AWS serves
//! it on the WebSocket API's domain and demands an IAM signature; this stand-in checks none,
//! so the gateway serves it on its own listener that may only bind to loopback
//! (`GATEWAY_MANAGEMENT_ADDR`), never on the WebSocket port clients reach. Errors use AWS's wire
//! shape (`x-amzn-ErrorType` header, `{"message", "__type"}` body), so the AWS SDK — and
//! with it `rt_relay_shared::fanout::ApiGatewayPoster` — reads 410 as `GoneException`.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use axum::{
    body::{to_bytes, Body},
    extract::{FromRequestParts, Path, Request, State},
    http::{header, request::Parts, HeaderName, HeaderValue, StatusCode},
    response::Response,
    routing::post,
    Router,
};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tracing::debug;

/// Largest message `POST /@connections/{id}` takes (API Gateway: 128 KB).
pub const MAX_POST_BYTES: usize = 128 * 1024;
/// Messages queued for one socket before a post waits.
const QUEUE_DEPTH: usize = 256;
/// How long a post waits for room in a slow socket's queue before failing (retryable).
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Who is on the other end, as `GET /@connections/{id}` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The client's IP address.
    pub source_ip: String,
    /// Its `User-Agent`, if it sent one.
    pub user_agent: Option<String>,
}

/// What a socket task receives from the registry. Dropping it forgets the connection, so
/// a handshake abandoned at any point leaves nothing behind.
#[derive(Debug)]
pub struct Registration {
    /// Messages to write to the client, in order.
    pub outbound: mpsc::Receiver<Vec<u8>>,
    /// Woken when `DELETE /@connections/{id}` asks the socket to close.
    pub close: Arc<Notify>,
    /// Last traffic either way, epoch milliseconds; the socket task updates it.
    pub last_active: Arc<AtomicI64>,
    registry: Arc<ConnectionRegistry>,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.remove(&self.id);
    }
}

#[derive(Debug)]
struct Entry {
    outbound: mpsc::Sender<Vec<u8>>,
    close: Arc<Notify>,
    connected_at: DateTime<Utc>,
    identity: ClientIdentity,
    last_active: Arc<AtomicI64>,
}

/// Why `@connections` could not act on an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// No live connection has this id (never had, closed, or deleted).
    #[error("connection is gone")]
    Gone,
    /// The socket did not take the message in time (a slow client); worth retrying.
    #[error("the connection's send queue stayed full")]
    Busy,
}

/// Details of one live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// When the connection was accepted.
    pub connected_at: DateTime<Utc>,
    /// Last traffic either way.
    pub last_active_at: DateTime<Utc>,
    /// The client.
    pub identity: ClientIdentity,
}

/// Live connections by id.
#[derive(Debug, Default)]
pub struct ConnectionRegistry {
    entries: Mutex<HashMap<String, Entry>>,
}

impl ConnectionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection about to be accepted. Posts made from now on are queued, so a
    /// push racing the end of the handshake is delivered rather than answered 410.
    pub fn register(self: &Arc<Self>, id: &str, identity: ClientIdentity) -> Registration {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let close = Arc::new(Notify::new());
        let now = Utc::now();
        let last_active = Arc::new(AtomicI64::new(now.timestamp_millis()));
        let entry = Entry {
            outbound: tx,
            close: close.clone(),
            connected_at: now,
            identity,
            last_active: last_active.clone(),
        };
        self.lock().insert(id.to_owned(), entry);
        Registration { outbound: rx, close, last_active, registry: self.clone(), id: id.to_owned() }
    }

    /// Forgets a connection; later posts to it answer 410.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// Whether `id` is live.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Ids of all live connections.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Queues `data` for the client (sent as a text frame when it is UTF-8, else binary).
    pub async fn post(&self, id: &str, data: Vec<u8>) -> Result<(), ConnectionError> {
        let sender =
            self.lock().get(id).map(|e| e.outbound.clone()).ok_or(ConnectionError::Gone)?;
        match sender.send_timeout(data, QUEUE_WAIT).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(ConnectionError::Gone),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(ConnectionError::Busy),
        }
    }

    /// Asks the socket to close and forgets it at once (as `DeleteConnection` does).
    pub fn close(&self, id: &str) -> Result<(), ConnectionError> {
        let entry = self.lock().remove(id).ok_or(ConnectionError::Gone)?;
        entry.close.notify_one();
        Ok(())
    }

    /// Asks every socket to close (gateway shutdown); their tasks run `$disconnect`.
    pub fn close_all(&self) {
        let entries: Vec<Entry> = self.lock().drain().map(|(_, e)| e).collect();
        for e in entries {
            e.close.notify_one();
        }
    }

    /// Details of a live connection.
    pub fn info(&self, id: &str) -> Option<ConnectionInfo> {
        self.lock().get(id).map(|e| ConnectionInfo {
            connected_at: e.connected_at,
            last_active_at: Utc
                .timestamp_millis_opt(e.last_active.load(Ordering::Relaxed))
                .single()
                .unwrap_or(e.connected_at),
            identity: e.identity.clone(),
        })
    }
}

/// An AWS-style error response.
fn aws_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let body = json!({ "message": message, "__type": kind }).to_string();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(HeaderName::from_static("x-amzn-errortype"), HeaderValue::from_static(kind));
    resp
}

fn gone() -> Response {
    aws_error(StatusCode::GONE, "GoneException", "The connection is gone.")
}

fn status_only(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

fn with_request_id(mut resp: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&crate::ids::request_id()) {
        resp.headers_mut().insert(HeaderName::from_static("x-amzn-requestid"), v);
    }
    resp
}

#[derive(Debug)]
struct Management {
    registry: Arc<ConnectionRegistry>,
    stage: String,
}

/// The Management API routes, at `/@connections/{id}` and `/{stage}/@connections/{id}`
/// (the template's `WS_MANAGEMENT_ENDPOINT` names the stage). Request signatures are not
/// checked: this is a local stand-in, served only on a loopback listener of its own.
pub fn management_router(registry: Arc<ConnectionRegistry>, stage: &str) -> Router {
    let state = Arc::new(Management { registry, stage: stage.to_owned() });
    let methods = || post(post_to_connection).get(get_connection).delete(delete_connection);
    Router::new()
        .route("/@connections/{id}", methods())
        .route("/{stage}/@connections/{id}", methods())
        .with_state(state)
}

/// The connection id from either route shape, for the handlers; a path naming another stage
/// (or none) is answered 404 before the handler runs.
struct ConnectionId(String);

impl FromRequestParts<Arc<Management>> for ConnectionId {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        m: &Arc<Management>,
    ) -> Result<Self, Self::Rejection> {
        let not_found = || with_request_id(status_only(StatusCode::NOT_FOUND));
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, m)
            .await
            .map_err(|_| not_found())?;
        if params.get("stage").is_some_and(|s| *s != m.stage) {
            return Err(not_found());
        }
        params.get("id").cloned().map(Self).ok_or_else(not_found)
    }
}

async fn post_to_connection(
    State(m): State<Arc<Management>>,
    ConnectionId(id): ConnectionId,
    req: Request,
) -> Response {
    let data = match to_bytes(req.into_body(), MAX_POST_BYTES).await {
        Ok(d) => d.to_vec(),
        Err(_) => {
            return with_request_id(aws_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeException",
                "Message too long; the limit is 128 KB",
            ))
        }
    };
    let resp = match m.registry.post(&id, data).await {
        Ok(()) => status_only(StatusCode::OK),
        Err(ConnectionError::Gone) => gone(),
        Err(ConnectionError::Busy) => aws_error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "The connection is not reading fast enough",
        ),
    };
    debug!(connection_id = %id, status = resp.status().as_u16(), "@connections post");
    with_request_id(resp)
}

async fn get_connection(
    State(m): State<Arc<Management>>,
    ConnectionId(id): ConnectionId,
) -> Response {
    let Some(info) = m.registry.info(&id) else { return with_request_id(gone()) };
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    // The service's wire names (lower camel case), which the SDK's GetConnection reads.
    let body = json!({
        "connectedAt": time(info.connected_at),
        "identity": { "sourceIp": info.identity.source_ip, "userAgent": info.identity.user_agent },
        "lastActiveAt": time(info.last_active_at),
    });
    let mut resp = Response::new(Body::from(body.to_string()));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    with_request_id(resp)
}

async fn delete_connection(
    State(m): State<Arc<Management>>,
    ConnectionId(id): ConnectionId,
) -> Response {
    with_request_id(match m.registry.close(&id) {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(_) => gone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ClientIdentity {
        ClientIdentity { source_ip: "127.0.0.1".into(), user_agent: Some("t".into()) }
    }

    #[tokio::test]
    async fn posts_reach_a_registered_connection_and_unknown_ids_are_gone() {
        let reg = Arc::new(ConnectionRegistry::new());
        let mut r = reg.register("a", identity());
        reg.post("a", b"hi".to_vec()).await.unwrap();
        assert_eq!(r.outbound.recv().await.unwrap(), b"hi");
        assert_eq!(reg.post("b", b"x".to_vec()).await, Err(ConnectionError::Gone));
        assert!(reg.remove("a"));
        assert_eq!(reg.post("a", b"x".to_vec()).await, Err(ConnectionError::Gone));
    }

    #[tokio::test]
    async fn dropping_the_registration_forgets_the_connection() {
        let reg = Arc::new(ConnectionRegistry::new());
        drop(reg.register("a", identity()));
        assert!(reg.is_empty());
        assert_eq!(reg.post("a", b"x".to_vec()).await, Err(ConnectionError::Gone));
    }

    #[tokio::test]
    async fn close_notifies_the_socket_and_forgets_it() {
        let reg = Arc::new(ConnectionRegistry::new());
        let r = reg.register("a", identity());
        reg.close("a").unwrap();
        tokio::time::timeout(Duration::from_secs(1), r.close.notified()).await.unwrap();
        assert!(!reg.contains("a"));
        assert_eq!(reg.close("a"), Err(ConnectionError::Gone));
    }

    #[test]
    fn gone_has_the_aws_error_shape() {
        let resp = gone();
        assert_eq!(resp.status(), 410);
        assert_eq!(resp.headers()["x-amzn-errortype"], "GoneException");
    }
}
