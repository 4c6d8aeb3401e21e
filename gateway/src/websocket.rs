//! The local WebSocket API. Each client gets a fresh connection id; the `$connect`
//! authorizer (the API key in the `api_key` query parameter) and then `$connect`
//! (`ConnectionRoutes::connect`) run BEFORE the handshake completes, and a refusal or a
//! non-2xx answer refuses it with that status, as API Gateway does. Client messages go to `$default`
//! (`ws::DefaultRoute`) and its response body is sent back (the template's route
//! response); a close, error or drop runs `$disconnect`. Events are built as the JSON API
//! Gateway sends and read into `ApiGatewayWebsocketProxyRequest`, as the runtime would.
//! Route keys, and whether `$connect` needs a key, come from the routes table
//! (`rt_relay_shared::routes`); every client message goes to `$default` (a custom route key
//! selected by the template's `$request.body.action` would need selection added here: a
//! unit test fails when the table gains one).

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::{
    apigw::ApiGatewayCustomAuthorizerResponse,
    iam::{IamPolicyEffect, IamPolicyStatement},
};
use axum::{
    body::Body,
    extract::{
        ws::{
            rejection::WebSocketUpgradeRejection, CloseFrame, Message, WebSocket, WebSocketUpgrade,
        },
        ConnectInfo, State,
    },
    http::{header, HeaderMap, HeaderValue, StatusCode, Uri},
    response::{IntoResponse, Response},
    Router,
};
use base64::Engine;
use chrono::Utc;
use rt_relay_shared::{
    auth::WS_KEY_PARAM,
    handlers::{
        authorizer::{AuthorizerError, RequestAuthorizer},
        ws::{ConnectionRoutes, DefaultRoute},
    },
    routes::{self, Access, Route},
};
use serde_json::{json, Map, Value};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tracing::{error, info, warn};

use crate::{
    config::WsSettings,
    connections::{ClientIdentity, ConnectionRegistry, Registration},
    ids,
};

/// How long `$connect`/`$disconnect` may run (API Gateway's integration timeout).
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);
/// How long the `$connect` authorizer may run.
const AUTHORIZER_TIMEOUT: Duration = Duration::from_secs(10);

/// Which route an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `$connect`.
    Connect,
    /// `$default` (a client message).
    Message,
    /// `$disconnect`.
    Disconnect,
}

impl EventKind {
    /// The routes table's row for this event.
    fn route(self) -> &'static Route {
        match self {
            EventKind::Connect => &routes::WS_CONNECT,
            EventKind::Message => &routes::WS_DEFAULT,
            EventKind::Disconnect => &routes::WS_DISCONNECT,
        }
    }

    /// API Gateway's route key, from the routes table.
    fn route_key(self) -> &'static str {
        self.route().path
    }

    fn event_type(self) -> &'static str {
        match self {
            EventKind::Connect => "CONNECT",
            EventKind::Message => "MESSAGE",
            EventKind::Disconnect => "DISCONNECT",
        }
    }
}

/// One connection's fixed facts, repeated in each of its events.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    /// The connection id.
    pub connection_id: String,
    /// When it connected, epoch milliseconds.
    pub connected_at: i64,
    /// The client.
    pub identity: ClientIdentity,
    /// The `Host` the client used.
    pub domain_name: String,
    /// The stage name.
    pub stage: String,
}

/// What a specific event adds to the context.
#[derive(Debug, Default)]
pub struct EventDetail<'a> {
    /// Handshake headers (`$connect`).
    pub headers: Option<&'a HeaderMap>,
    /// Handshake query string (`$connect`).
    pub query: Option<&'a str>,
    /// The message (`$default`): text, or binary sent base64-encoded.
    pub body: Option<(&'a [u8], bool)>,
    /// Close code and reason (`$disconnect`).
    pub disconnect: Option<(u16, &'a str)>,
}

/// Builds the event API Gateway sends for `kind`, and reads it as the Lambda would.
pub fn build_event(
    kind: EventKind,
    ctx: &ConnectionContext,
    detail: &EventDetail<'_>,
) -> ApiGatewayWebsocketProxyRequest {
    read_event(event_json(kind, ctx, detail), ctx)
}

/// Reads event JSON as the Lambda would.
fn read_event(event: Value, ctx: &ConnectionContext) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(event).unwrap_or_else(|e| {
        // Only a bug here could make the shape unreadable; the handlers still get the id.
        error!(error = %e, "WebSocket event did not deserialize");
        let mut fallback = ApiGatewayWebsocketProxyRequest::default();
        fallback.request_context.connection_id = Some(ctx.connection_id.clone());
        fallback
    })
}

/// The `$connect` REQUEST authorizer event: the `$connect` event plus `type` and the
/// route's `methodArn`.
pub fn build_authorizer_event(ctx: &ConnectionContext, detail: &EventDetail<'_>) -> Value {
    let mut event = event_json(EventKind::Connect, ctx, detail);
    event["type"] = json!("REQUEST");
    event["methodArn"] =
        json!(format!("arn:aws:execute-api:local:000000000000:local/{}/$connect", ctx.stage));
    event
}

/// The event JSON API Gateway sends for `kind`.
pub fn event_json(kind: EventKind, ctx: &ConnectionContext, detail: &EventDetail<'_>) -> Value {
    let now = Utc::now();
    let mut request_context = json!({
        "routeKey": kind.route_key(),
        "eventType": kind.event_type(),
        "extendedRequestId": ids::request_id(),
        "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "messageDirection": "IN",
        "stage": ctx.stage,
        "connectedAt": ctx.connected_at,
        "requestTimeEpoch": now.timestamp_millis(),
        "identity": { "sourceIp": ctx.identity.source_ip, "userAgent": ctx.identity.user_agent },
        "requestId": ids::request_id(),
        "domainName": ctx.domain_name,
        "connectionId": ctx.connection_id,
        "apiId": "local",
    });
    let mut event = json!({ "requestContext": {}, "isBase64Encoded": false });
    if let Some(headers) = detail.headers {
        let mut single = Map::new();
        let mut multi = Map::new();
        for name in headers.keys() {
            let values: Vec<String> = headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            single.insert(name.as_str().to_owned(), json!(values.join(",")));
            multi.insert(name.as_str().to_owned(), json!(values));
        }
        event["headers"] = Value::Object(single);
        event["multiValueHeaders"] = Value::Object(multi);
    }
    if let Some(query) = detail.query.filter(|q| !q.is_empty()) {
        let mut single = Map::new();
        let mut multi: Map<String, Value> = Map::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            single.insert(k.to_string(), json!(v));
            match multi.get_mut(k.as_ref()).and_then(Value::as_array_mut) {
                Some(list) => list.push(json!(v)),
                None => {
                    multi.insert(k.to_string(), json!([v]));
                }
            }
        }
        event["queryStringParameters"] = Value::Object(single);
        event["multiValueQueryStringParameters"] = Value::Object(multi);
    }
    if let Some((data, binary)) = detail.body {
        request_context["messageId"] = json!(ids::request_id());
        if binary {
            event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(data));
            event["isBase64Encoded"] = json!(true);
        } else {
            event["body"] = json!(String::from_utf8_lossy(data));
        }
    }
    if let Some((code, reason)) = detail.disconnect {
        request_context["disconnectStatusCode"] = json!(code);
        request_context["disconnectReason"] = json!(reason);
    }
    event["requestContext"] = request_context;
    event
}

/// State shared by every WebSocket client.
#[derive(Debug)]
pub struct WsApi {
    routes: ConnectionRoutes,
    default_route: DefaultRoute,
    authorizer: Option<RequestAuthorizer>,
    registry: Arc<ConnectionRegistry>,
    settings: WsSettings,
    shutdown: watch::Receiver<bool>,
    /// Never sent on. Every socket task holds the `WsApi`, so the gateway's receiver sees
    /// the channel close only once the server and every socket (with its `$disconnect`) are done.
    _drain: mpsc::Sender<()>,
}

impl WsApi {
    /// The API over `routes`; sockets stop when `shutdown` turns true.
    pub fn new(
        routes: ConnectionRoutes,
        default_route: DefaultRoute,
        registry: Arc<ConnectionRegistry>,
        settings: WsSettings,
        shutdown: watch::Receiver<bool>,
        drain: mpsc::Sender<()>,
    ) -> Self {
        Self {
            routes,
            default_route,
            authorizer: None,
            registry,
            settings,
            shutdown,
            _drain: drain,
        }
    }

    /// Puts the template's `$connect` Lambda authorizer in front of `$connect`.
    pub fn with_authorizer(mut self, authorizer: Option<RequestAuthorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// The router: a WebSocket endpoint at every path. `@connections` is not served here
    /// (AWS serves it on this domain behind IAM signatures; the gateway on its own loopback
    /// listener, [`crate::connections::management_router`]).
    pub fn router(self) -> Router {
        Router::new().fallback(upgrade).with_state(Arc::new(self))
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    let mut resp = Response::new(Body::from(text.to_owned()));
    *resp.status_mut() = status;
    resp
}

/// Runs a route handler on its own task, bounded like an integration; a panic or timeout
/// is a 500.
async fn invoke<F>(what: &'static str, fut: F) -> ApiGatewayProxyResponse
where
    F: std::future::Future<Output = ApiGatewayProxyResponse> + Send + 'static,
{
    match tokio::time::timeout(INTEGRATION_TIMEOUT, tokio::spawn(fut)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            error!(route = what, error = %e, "route handler panicked");
            let mut r = ApiGatewayProxyResponse::default();
            r.status_code = 500;
            r
        }
        Err(_) => {
            error!(route = what, "route handler timed out");
            let mut r = ApiGatewayProxyResponse::default();
            r.status_code = 500;
            r
        }
    }
}

fn body_bytes(body: Option<aws_lambda_events::encodings::Body>) -> Option<(Vec<u8>, bool)> {
    match body? {
        aws_lambda_events::encodings::Body::Text(t) => Some((t.into_bytes(), false)),
        aws_lambda_events::encodings::Body::Binary(b) => Some((b, true)),
        _ => None,
    }
}

async fn upgrade(
    State(api): State<Arc<WsApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let mut resp = plain(
                StatusCode::UPGRADE_REQUIRED,
                "this is a WebSocket endpoint; connect with a WebSocket client",
            );
            resp.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            tracing::debug!(reason = %rejection.body_text(), "not a WebSocket handshake");
            return resp;
        }
    };
    if *api.shutdown.borrow() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "the gateway is shutting down");
    }
    let header_str = |name: header::HeaderName| {
        headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let identity = ClientIdentity {
        source_ip: peer.ip().to_string(),
        user_agent: header_str(header::USER_AGENT),
    };
    let ctx = ConnectionContext {
        connection_id: ids::connection_id(),
        connected_at: Utc::now().timestamp_millis(),
        identity: identity.clone(),
        domain_name: header_str(header::HOST).unwrap_or_else(|| "localhost".into()),
        stage: api.settings.stage.clone(),
    };
    let detail =
        EventDetail { headers: Some(&headers), query: uri.query(), ..EventDetail::default() };
    let mut connect_event = event_json(EventKind::Connect, &ctx, &detail);
    // The routes table says whether `$connect` needs a key (it does: the template's authorizer).
    if let (Some(authorizer), Access::Key(_)) = (&api.authorizer, EventKind::Connect.route().access)
    {
        match authorize(authorizer, &ctx, &detail).await {
            Ok(context) => connect_event["requestContext"]["authorizer"] = Value::Object(context),
            Err(status) => {
                info!(connection_id = %ctx.connection_id, status = status.as_u16(), "the authorizer refused the connection");
                return plain(status, status.canonical_reason().unwrap_or(""));
            }
        }
    }
    // Registered before $connect runs, so a push racing the handshake is queued, not lost.
    // If the handshake is refused or abandoned, dropping `registration` forgets the id.
    let registration = api.registry.register(&ctx.connection_id, identity);
    let event = read_event(connect_event, &ctx);
    let routes = api.routes.clone();
    let answer =
        invoke(EventKind::Connect.route_key(), async move { routes.connect(event).await }).await;
    let status = u16::try_from(answer.status_code).ok().and_then(|s| StatusCode::from_u16(s).ok());
    if !status.is_some_and(|s| s.is_success()) {
        drop(registration);
        let status = status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        info!(connection_id = %ctx.connection_id, status = status.as_u16(), "$connect refused the connection");
        let body = body_bytes(answer.body).map(|(b, _)| b).unwrap_or_default();
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = status;
        return resp;
    }
    let failed_api = api.clone();
    let failed_ctx = ctx.clone();
    ws.max_message_size(api.settings.max_message_bytes)
        .max_frame_size(api.settings.max_frame_bytes)
        .on_failed_upgrade(move |e| {
            warn!(connection_id = %failed_ctx.connection_id, error = %e, "WebSocket upgrade failed after $connect");
            tokio::spawn(async move { disconnect(&failed_api, &failed_ctx, 1006, "Upgrade failed").await });
        })
        // The task holds the `WsApi` (and with it a drain sender) until `$disconnect` is done.
        .on_upgrade(move |socket| run_socket(api, ctx, registration, socket))
        .into_response()
}

/// Runs the `$connect` authorizer as API Gateway does for a WebSocket REQUEST authorizer
/// with identity source `route.request.querystring.api_key`: no `api_key` → 401 without
/// invoking it; the error `Unauthorized` → 401; a Deny policy → 403; any other error, a
/// timeout or a malformed answer → 500. On Allow, the context API Gateway puts in
/// `requestContext.authorizer` (the policy's `principalId` and `context`).
async fn authorize(
    authorizer: &RequestAuthorizer,
    ctx: &ConnectionContext,
    detail: &EventDetail<'_>,
) -> Result<Map<String, Value>, StatusCode> {
    let has_key = detail
        .query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == WS_KEY_PARAM && !v.trim().is_empty())
        })
        .unwrap_or(false);
    if !has_key {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let event = build_authorizer_event(ctx, detail);
    let method_arn = event["methodArn"].as_str().unwrap_or_default().to_owned();
    let authorizer = authorizer.clone();
    let call = tokio::spawn(async move { authorizer.handle(event).await });
    let answer = match tokio::time::timeout(AUTHORIZER_TIMEOUT, call).await {
        Ok(Ok(Ok(answer))) => answer,
        Ok(Ok(Err(AuthorizerError::Unauthorized))) => return Err(StatusCode::UNAUTHORIZED),
        Ok(Ok(Err(e))) => {
            error!(error = %e, "authorizer failed");
            return Err(StatusCode::INTERNAL_SERVER_ERROR);
        }
        Ok(Err(join)) => {
            error!(error = %join, "authorizer panicked");
            return Err(StatusCode::INTERNAL_SERVER_ERROR);
        }
        Err(_) => {
            error!("authorizer timed out");
            return Err(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let policy: ApiGatewayCustomAuthorizerResponse =
        serde_json::from_value(answer).map_err(|e| {
            error!(error = %e, "authorizer answered something other than a policy");
            StatusCode::INTERNAL_SERVER_ERROR
        })?;
    let applies = |st: &&IamPolicyStatement| {
        st.action.iter().any(|a| a == "execute-api:Invoke")
            && st.resource.iter().any(|r| *r == method_arn || r == "*")
    };
    let statements: Vec<&IamPolicyStatement> =
        policy.policy_document.statement.iter().filter(applies).collect();
    // IAM: an explicit Deny wins; without an Allow, the default is deny.
    if statements.iter().any(|st| st.effect == IamPolicyEffect::Deny)
        || !statements.iter().any(|st| st.effect == IamPolicyEffect::Allow)
    {
        return Err(StatusCode::FORBIDDEN);
    }
    let mut context = policy.context.as_object().cloned().unwrap_or_default();
    if let Some(principal) = policy.principal_id {
        context.insert("principalId".into(), json!(principal));
    }
    Ok(context)
}

/// Forgets the connection and runs `$disconnect`.
async fn disconnect(api: &WsApi, ctx: &ConnectionContext, code: u16, reason: &str) {
    api.registry.remove(&ctx.connection_id);
    let event = build_event(
        EventKind::Disconnect,
        ctx,
        &EventDetail { headers: None, disconnect: Some((code, reason)), ..EventDetail::default() },
    );
    let routes = api.routes.clone();
    let answer =
        invoke(EventKind::Disconnect.route_key(), async move { routes.disconnect(event).await })
            .await;
    info!(connection_id = %ctx.connection_id, code, reason, status = answer.status_code, "WebSocket closed");
}

fn touch(registration: &Registration) {
    registration.last_active.store(Utc::now().timestamp_millis(), Ordering::Relaxed);
}

/// Why the socket loop ended: the close code and reason `$disconnect` reports, and whether
/// the gateway still owes the client a close frame.
struct Ending {
    code: u16,
    reason: &'static str,
    send_close: bool,
}

async fn run_socket(
    api: Arc<WsApi>,
    ctx: ConnectionContext,
    mut registration: Registration,
    mut socket: WebSocket,
) {
    let mut shutdown = api.shutdown.clone();
    let idle = api.settings.idle_timeout;
    let lifetime_end = Instant::now() + api.settings.max_lifetime;
    let mut client_close_code = None;
    let ending = loop {
        let last = registration.last_active.load(Ordering::Relaxed);
        let idle_ms =
            u64::try_from(Utc::now().timestamp_millis().saturating_sub(last)).unwrap_or(0);
        let idle_end = Instant::now() + idle.saturating_sub(Duration::from_millis(idle_ms));
        tokio::select! {
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) => break Ending { code: 1006, reason: "Connection closed abnormally", send_close: false },
                Some(Ok(Message::Close(frame))) => {
                    client_close_code = Some(frame.as_ref().map_or(1005, |f| f.code));
                    break Ending { code: 0, reason: "", send_close: false };
                }
                Some(Ok(Message::Text(text))) => {
                    touch(&registration);
                    if reply(&api, &ctx, text.as_str().as_bytes(), false, &mut socket).await.is_err() {
                        break Ending { code: 1006, reason: "Connection closed abnormally", send_close: false };
                    }
                }
                Some(Ok(Message::Binary(data))) => {
                    touch(&registration);
                    if reply(&api, &ctx, &data, true, &mut socket).await.is_err() {
                        break Ending { code: 1006, reason: "Connection closed abnormally", send_close: false };
                    }
                }
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(_)) => touch(&registration),
            },
            outbound = registration.outbound.recv() => {
                let Some(data) = outbound else {
                    break Ending { code: 1001, reason: "Going away", send_close: true };
                };
                touch(&registration);
                let message = match String::from_utf8(data) {
                    Ok(text) => Message::Text(text.into()),
                    Err(e) => Message::Binary(e.into_bytes().into()),
                };
                if socket.send(message).await.is_err() {
                    break Ending { code: 1006, reason: "Connection closed abnormally", send_close: false };
                }
            }
            _ = registration.close.notified() => {
                // Shutdown closes every socket through the registry too: that is "going away".
                if *shutdown.borrow() {
                    break Ending { code: 1001, reason: "Going away", send_close: true };
                }
                break Ending { code: 1000, reason: "Connection deleted", send_close: true };
            }
            _ = tokio::time::sleep_until(idle_end) => {
                // Re-check: traffic may have moved the deadline while we slept.
                let last = registration.last_active.load(Ordering::Relaxed);
                if Utc::now().timestamp_millis().saturating_sub(last) >= i64::try_from(idle.as_millis()).unwrap_or(i64::MAX) {
                    break Ending { code: 1001, reason: "Going away (idle timeout)", send_close: true };
                }
            }
            _ = tokio::time::sleep_until(lifetime_end) => break Ending { code: 1001, reason: "Going away (maximum connection duration)", send_close: true },
            _ = crate::stopped(&mut shutdown) => break Ending { code: 1001, reason: "Going away", send_close: true },
        }
    };
    // Posts from now on answer 410; the close handshake and $disconnect follow.
    api.registry.remove(&ctx.connection_id);
    if ending.send_close {
        let frame = CloseFrame { code: ending.code, reason: ending.reason.into() };
        let _ = socket.send(Message::Close(Some(frame))).await;
    }
    // Let the close handshake finish (our reply to the client's close, or theirs to ours).
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
    match client_close_code {
        Some(code) => {
            let reason = if code == 1005 {
                "Client-side close frame status not set"
            } else {
                "Client-side close"
            };
            disconnect(&api, &ctx, code, reason).await;
        }
        None => disconnect(&api, &ctx, ending.code, ending.reason).await,
    }
}

/// Runs `$default` for one client message and sends its response body back, if any.
async fn reply(
    api: &WsApi,
    ctx: &ConnectionContext,
    data: &[u8],
    binary: bool,
    socket: &mut WebSocket,
) -> Result<(), axum::Error> {
    let event = build_event(
        EventKind::Message,
        ctx,
        &EventDetail { body: Some((data, binary)), ..EventDetail::default() },
    );
    let route = api.default_route.clone();
    let answer =
        invoke(EventKind::Message.route_key(), async move { route.handle(event).await }).await;
    match body_bytes(answer.body) {
        Some((bytes, false)) => {
            socket.send(Message::Text(String::from_utf8_lossy(&bytes).into_owned().into())).await
        }
        Some((bytes, true)) => socket.send(Message::Binary(bytes.into())).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_websocket_routes_of_the_table_are_the_ones_served_here() {
        let served: Vec<&Route> = [EventKind::Connect, EventKind::Message, EventKind::Disconnect]
            .map(EventKind::route)
            .to_vec();
        for r in routes::routes_of(routes::Api::WebSocket) {
            assert!(
                served.contains(&r),
                "{}: the local gateway routes client messages to $default only; add route \
                 selection ($request.body.action) to gateway/src/websocket.rs",
                r.path
            );
        }
        assert_eq!(EventKind::Connect.route_key(), "$connect");
        assert_eq!(EventKind::Message.route_key(), "$default");
        assert_eq!(EventKind::Disconnect.route_key(), "$disconnect");
        assert_eq!(
            EventKind::Connect.route().access,
            Access::Key(rt_relay_shared::auth::Scope::NotificationsRead)
        );
    }

    fn ctx() -> ConnectionContext {
        ConnectionContext {
            connection_id: "abcDEF0123456789".into(),
            connected_at: 1_700_000_000_000,
            identity: ClientIdentity {
                source_ip: "127.0.0.1".into(),
                user_agent: Some("ua".into()),
            },
            domain_name: "127.0.0.1:3001".into(),
            stage: "local".into(),
        }
    }

    #[test]
    fn connect_event_carries_headers_query_and_context() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:3001"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let e = build_event(
            EventKind::Connect,
            &ctx(),
            &EventDetail {
                headers: Some(&headers),
                query: Some("token=t&x=1&x=2"),
                ..EventDetail::default()
            },
        );
        let rc = &e.request_context;
        assert_eq!(rc.route_key.as_deref(), Some("$connect"));
        assert_eq!(rc.event_type.as_deref(), Some("CONNECT"));
        assert_eq!(rc.connection_id.as_deref(), Some("abcDEF0123456789"));
        assert_eq!(rc.connected_at, 1_700_000_000_000);
        assert_eq!(rc.stage.as_deref(), Some("local"));
        assert_eq!(rc.apiid.as_deref(), Some("local"));
        assert_eq!(rc.domain_name.as_deref(), Some("127.0.0.1:3001"));
        assert!(rc.request_id.is_some());
        assert_eq!(rc.identity.source_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.headers["host"], "127.0.0.1:3001");
        assert_eq!(e.multi_value_headers.get_all("x-multi").iter().count(), 2);
        assert_eq!(e.query_string_parameters.first("token"), Some("t"));
        assert_eq!(e.multi_value_query_string_parameters.all("x").map(|v| v.len()), Some(2));
    }

    #[test]
    fn the_connect_authorizer_event_and_context_have_api_gateways_shapes() {
        let detail = EventDetail { query: Some("api_key=rtr_k&x=1"), ..EventDetail::default() };
        let event = build_authorizer_event(&ctx(), &detail);
        assert_eq!(event["requestContext"]["routeKey"], "$connect");
        let auth: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_value(event).unwrap();
        assert_eq!(auth.type_.as_deref(), Some("REQUEST"));
        assert_eq!(
            auth.method_arn.as_deref(),
            Some("arn:aws:execute-api:local:000000000000:local/local/$connect")
        );
        assert_eq!(auth.query_string_parameters.first("api_key"), Some("rtr_k"));

        // What ws-connect sees of an admitted connection: requestContext.authorizer.
        let mut connect = event_json(EventKind::Connect, &ctx(), &detail);
        connect["requestContext"]["authorizer"] =
            json!({ "principalId": "abc", "key_id": "abc", "scopes": "notifications:read" });
        let e = read_event(connect, &ctx());
        assert_eq!(e.request_context.authorizer.fields["key_id"], "abc");
        assert_eq!(e.request_context.connection_id.as_deref(), Some("abcDEF0123456789"));
    }

    #[test]
    fn message_and_disconnect_events() {
        let m = build_event(
            EventKind::Message,
            &ctx(),
            &EventDetail { body: Some((b"hello", false)), ..EventDetail::default() },
        );
        assert_eq!(m.request_context.event_type.as_deref(), Some("MESSAGE"));
        assert_eq!(m.request_context.route_key.as_deref(), Some("$default"));
        assert_eq!(m.body.as_deref(), Some("hello"));
        assert!(!m.is_base64_encoded);
        assert!(m.request_context.message_id.is_some());
        let b = build_event(
            EventKind::Message,
            &ctx(),
            &EventDetail { body: Some((&[0, 255], true)), ..EventDetail::default() },
        );
        assert!(b.is_base64_encoded);
        assert_eq!(b.body.as_deref(), Some("AP8="));
        let d = build_event(
            EventKind::Disconnect,
            &ctx(),
            &EventDetail { disconnect: Some((1001, "Going away")), ..EventDetail::default() },
        );
        assert_eq!(d.request_context.event_type.as_deref(), Some("DISCONNECT"));
        assert_eq!(d.request_context.disconnect_status_code, Some(1001));
        assert_eq!(d.request_context.disconnect_reason.as_deref(), Some("Going away"));
    }
}
