//! The gateway over the in-memory store and fake RT: the HTTP API, the WebSocket API and
//! `@connections` with real clients (reqwest, tokio-tungstenite, the AWS SDK), without
//! moto or RT. The full stack against the real services is in `tests/tests/e2e.rs`.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::{
    config::{BehaviorVersion, Credentials, Region},
    primitives::Blob,
    Client as ManagementClient,
};
use futures_util::{SinkExt, StreamExt};
use rt_relay_gateway::{Functions, Gateway, RunningGateway, ServerOptions};
use rt_relay_shared::{
    auth::{memory::MemoryApiKeys, mint, ApiKeyStore, MintedKey, Scope},
    handlers::ws::{ConnectionRoutes, HELP},
    rt::memory::MemoryRt,
    store::{memory::MemoryStore, Connection, ConnectionStore, PageAfter, StoreError},
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};

const WAIT: Duration = Duration::from_secs(5);

async fn start() -> (RunningGateway, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let gateway = start_functions(functions_over(&store)).await;
    (gateway, store)
}

/// The functions over `store` and a fresh fake RT, with no API key check.
fn functions_over(store: &Arc<MemoryStore>) -> Functions {
    Functions::new(
        Arc::new(MemoryRt::new()),
        store.clone(),
        "General".into(),
        Duration::from_secs(5),
    )
}

async fn start_functions(functions: Functions) -> RunningGateway {
    Gateway::start_with(ServerOptions::loopback(), functions, None).await.expect("gateway starts")
}

fn management(gateway: &RunningGateway) -> ManagementClient {
    let conf = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(gateway.management_endpoint())
        .http_client(rt_relay_shared::aws::http_client())
        .build();
    ManagementClient::from_conf(conf)
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A CORS preflight for a POST to `url` from a browser page, asking for `request_headers`.
async fn preflight(
    http: &reqwest::Client,
    url: &str,
    request_headers: Option<&str>,
) -> reqwest::Response {
    let mut request = http
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", "http://app.local")
        .header("access-control-request-method", "POST");
    if let Some(headers) = request_headers {
        request = request.header("access-control-request-headers", headers);
    }
    request.send().await.expect("the preflight is answered")
}

#[tokio::test]
async fn http_api_routes_to_the_functions_and_maps_errors() {
    let (gateway, _) = start().await;
    let http = reqwest::Client::new();
    let base = gateway.http_url();

    let created = http
        .post(format!("{base}/tickets/"))
        .json(&json!({"title": "Problema no Login", "description": "Usuário não consegue fazer login no sistema."}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/tickets/1");
    assert!(created.headers().contains_key("apigw-requestid"));
    let ticket: Value = created.json().await.unwrap();
    assert_eq!(ticket["title"], "Problema no Login");
    assert_eq!(ticket["description"], "Usuário não consegue fazer login no sistema.");

    let one: Value =
        http.get(format!("{base}/tickets/1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["id"], 1);
    let list: Value =
        http.get(format!("{base}/tickets?limit=5")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"][0]["id"], 1);
    let notes: Value =
        http.get(format!("{base}/notifications/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(notes["items"][0]["ticket"]["id"], 1, "{notes}");

    let missing = http.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    let wrong = http.delete(format!("{base}/tickets")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["allow"], "GET, POST");
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");

    let bad_query = http.get(format!("{base}/tickets?limit=0")).send().await.unwrap();
    assert_eq!(bad_query.status(), 400);

    let too_big = http
        .post(format!("{base}/tickets"))
        .header("content-type", "application/json")
        .body(vec![b' '; 600 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413, "the handler refuses more than 512 KiB");
    let over_gateway = http
        .post(format!("{base}/tickets"))
        .header("content-type", "application/json")
        .body(vec![b' '; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(over_gateway.status(), 413);
    let body: Value = over_gateway.json().await.unwrap();
    assert_eq!(body["message"], "Request Entity Too Large");

    let preflight = preflight(&http, &format!("{base}/tickets"), None).await;
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    gateway.shutdown().await;
}

#[tokio::test]
async fn websocket_clients_talk_to_the_routes_and_management_api() {
    let (gateway, store) = start().await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}/?client=t1", gateway.ws_url())).await.unwrap();
    assert_eq!(
        store.connection_count(),
        1,
        "$connect recorded the connection before the handshake completed"
    );
    let id = gateway.connections().ids().pop().unwrap();
    assert_eq!(id.len(), 16);

    // $default answers with the help text.
    socket.send(Message::text("hello")).await.unwrap();
    let reply = tokio::time::timeout(WAIT, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), HELP);

    // @connections through the AWS SDK: post, get, and gone ids.
    let client = management(&gateway);
    client
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new(r#"{"n":1}"#))
        .send()
        .await
        .unwrap();
    let pushed = tokio::time::timeout(WAIT, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(pushed.into_text().unwrap().as_str(), r#"{"n":1}"#);
    let info = client.get_connection().connection_id(&id).send().await.unwrap();
    assert!(info.connected_at().is_some());
    assert!(info.last_active_at().is_some());
    assert_eq!(info.identity().and_then(|i| i.source_ip()), Some("127.0.0.1"));
    let gone = client
        .post_to_connection()
        .connection_id("NoSuchConnection")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert!(gone.as_service_error().is_some_and(|e| e.is_gone_exception()), "{gone:?}");
    let gone_get =
        client.get_connection().connection_id("NoSuchConnection").send().await.unwrap_err();
    assert!(gone_get.as_service_error().is_some_and(|e| e.is_gone_exception()));

    // DELETE closes the socket and runs $disconnect.
    client.delete_connection().connection_id(&id).send().await.unwrap();
    let closed = tokio::time::timeout(WAIT, socket.next()).await.unwrap();
    assert!(matches!(closed, Some(Ok(Message::Close(_))) | None), "{closed:?}");
    wait_until("$disconnect", || store.connection_count() == 0).await;
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_client_close_runs_disconnect_and_shutdown_closes_the_rest() {
    let (gateway, store) = start().await;
    let (mut a, _) = tokio_tungstenite::connect_async(gateway.ws_url()).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(gateway.ws_url()).await.unwrap();
    assert_eq!(store.connection_count(), 2);
    a.close(None).await.unwrap();
    wait_until("a's $disconnect", || store.connection_count() == 1).await;
    assert_eq!(gateway.connections().len(), 1);

    let stopping = tokio::spawn(gateway.shutdown());
    let frame = tokio::time::timeout(WAIT, b.next()).await.unwrap();
    match frame {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1001),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(15), stopping).await.unwrap().unwrap();
    assert_eq!(store.connection_count(), 0, "shutdown ran $disconnect for every socket");
}

/// A connections store whose writes fail, as when the table is missing.
#[derive(Debug)]
struct BrokenConnections;

#[async_trait]
impl ConnectionStore for BrokenConnections {
    async fn add(&self, _: &Connection) -> Result<(), StoreError> {
        Err(StoreError::aws("PutItem", std::io::Error::other("ResourceNotFoundException")))
    }
    async fn remove(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn page(&self, _: &PageAfter) -> Result<(Vec<String>, Option<String>), StoreError> {
        Ok((Vec::new(), None))
    }
}

#[tokio::test]
async fn a_failing_connect_refuses_the_handshake() {
    let mut functions = functions_over(&Arc::new(MemoryStore::new()));
    functions.connection_routes = ConnectionRoutes::new(Arc::new(BrokenConnections));
    let gateway = start_functions(functions).await;
    match tokio_tungstenite::connect_async(gateway.ws_url()).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 500),
        other => panic!("expected the handshake to be refused with 500, got {other:?}"),
    }
    assert!(gateway.connections().is_empty());
    let plain = reqwest::get(gateway.ws_url().replace("ws://", "http://")).await.unwrap();
    assert_eq!(plain.status(), 426, "a plain GET is told to upgrade");
    gateway.shutdown().await;
}

// ---------------------------------------------------------------- API keys

/// A gateway that checks API keys (as `Gateway::start` always does) over in-memory keys.
async fn start_with_keys() -> (RunningGateway, Arc<MemoryStore>, Arc<MemoryApiKeys>) {
    let store = Arc::new(MemoryStore::new());
    let keys = Arc::new(MemoryApiKeys::new());
    let gateway = start_functions(functions_over(&store).with_api_keys(keys.clone())).await;
    (gateway, store, keys)
}

async fn key(keys: &MemoryApiKeys, scopes: &[Scope]) -> MintedKey {
    mint(keys, "in-memory test", scopes.iter().copied().collect(), chrono::Utc::now())
        .await
        .expect("mint a key")
}

fn ticket_body() -> Value {
    json!({"title": "with a key", "description": "d"})
}

async fn status_and_body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sends `method url` with `authorization` as the `Authorization` header and `body` as JSON
/// (each only when given).
async fn send_keyed(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = http.request(method, url);
    if let Some(credential) = authorization {
        request = request.header("authorization", credential);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("the gateway answers")
}

#[tokio::test]
async fn the_http_api_checks_api_keys_like_api_gateway() {
    use reqwest::Method;
    let (gateway, store, keys) = start_with_keys().await;
    let http = reqwest::Client::new();
    let base = gateway.http_url();
    let tickets = format!("{base}/tickets");
    let all = key(&keys, &Scope::ALL).await;
    let reader = key(&keys, &[Scope::TicketsRead]).await;
    let (all_bearer, reader_bearer) =
        (format!("Bearer {}", all.key()), format!("Bearer {}", reader.key()));
    let as_reader = Some(reader_bearer.as_str());
    let body = ticket_body();

    // No key: 401 from the gateway itself, in API Gateway's shape, CORS headers included.
    let none = http.get(&tickets).header("origin", "http://app.local").send().await.unwrap();
    assert_eq!(none.headers()["access-control-allow-origin"], "*");
    assert_eq!(status_and_body(none).await, (401, json!({"message": "Unauthorized"})));
    let blank = send_keyed(&http, Method::GET, &tickets, Some(" "), None).await;
    assert_eq!(blank.status(), 401, "a blank identity source counts as missing");

    // A credential that is not a live key: 403 (a simple-response authorizer can only say no).
    let wrong_secret = format!("Bearer rtr_{}_{}", all.record.key_id, "0".repeat(64));
    for credential in ["Basic cm9vdDpwYXNz", all.key(), wrong_secret.as_str(), "Bearer rtr_short"] {
        let resp = send_keyed(&http, Method::GET, &tickets, Some(credential), None).await;
        assert_eq!(
            status_and_body(resp).await,
            (403, json!({"message": "Forbidden"})),
            "{}",
            &credential[..10]
        );
    }

    // The right scope passes; the wrong one is 403 and never reaches the function.
    let list = send_keyed(&http, Method::GET, &tickets, as_reader, None).await;
    assert_eq!(list.status(), 200);
    let post = send_keyed(&http, Method::POST, &tickets, as_reader, Some(&body)).await;
    assert_eq!(status_and_body(post).await, (403, json!({"message": "Forbidden"})));
    assert_eq!(store.notification_count(), 0, "the refused POST created nothing");
    let notes =
        send_keyed(&http, Method::GET, &format!("{base}/notifications"), as_reader, None).await;
    assert_eq!(notes.status(), 403, "tickets:read does not read notifications");
    let created =
        send_keyed(&http, Method::POST, &tickets, Some(all_bearer.as_str()), Some(&body)).await;
    assert_eq!(created.status(), 201);
    let one = send_keyed(&http, Method::GET, &format!("{base}/tickets/1"), as_reader, None).await;
    assert_eq!(one.status(), 200);

    // Revoked: refused on the very next request (no authorizer cache locally).
    keys.revoke(&all.record.key_id, chrono::Utc::now()).await.unwrap();
    let after =
        send_keyed(&http, Method::POST, &tickets, Some(all_bearer.as_str()), Some(&body)).await;
    assert_eq!(after.status(), 403);
    assert_eq!(store.notification_count(), 1);

    // Unknown routes, wrong methods, CORS preflights and the OpenAPI document need no key.
    assert_eq!(http.get(format!("{base}/nope")).send().await.unwrap().status(), 404);
    assert_eq!(http.delete(&tickets).send().await.unwrap().status(), 405);
    assert_eq!(http.get(format!("{base}/openapi.json")).send().await.unwrap().status(), 200);
    let preflight = preflight(&http, &tickets, Some("authorization,content-type")).await;
    assert_eq!(preflight.status(), 204);
    let allowed = preflight.headers()["access-control-allow-headers"].to_str().unwrap().to_owned();
    assert!(allowed.split(',').any(|h| h == "authorization"), "{allowed}");

    // The key store failing refuses the request with API Gateway's bare 500, no detail.
    keys.set_failing(true);
    let down = send_keyed(&http, Method::GET, &tickets, as_reader, None).await;
    assert_eq!(status_and_body(down).await, (500, json!({"message": "Internal Server Error"})));
    gateway.shutdown().await;
}

async fn handshake_status(url: &str) -> u16 {
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake finishes")
    {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Ok((mut socket, resp)) => {
            let _ = socket.close(None).await;
            resp.status().as_u16()
        }
        Err(e) => panic!("handshake failed without an HTTP status: {e}"),
    }
}

#[tokio::test]
async fn the_websocket_api_checks_the_key_on_connect() {
    let (gateway, store, keys) = start_with_keys().await;
    let ws = gateway.ws_url();
    let listener = key(&keys, &[Scope::NotificationsRead]).await;
    let writer = key(&keys, &[Scope::TicketsWrite]).await;

    assert_eq!(handshake_status(&ws).await, 401, "no api_key");
    assert_eq!(handshake_status(&format!("{ws}/?api_key=")).await, 401, "blank api_key");
    assert_eq!(handshake_status(&format!("{ws}/?api_key=rtr_nope")).await, 401, "not a key");
    assert_eq!(
        handshake_status(&format!("{ws}/?api_key={}", writer.key())).await,
        403,
        "no notifications:read"
    );
    assert_eq!(store.connection_count(), 0, "refused handshakes never reach $connect");
    assert!(gateway.connections().is_empty());

    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{ws}/?api_key={}", listener.key()))
            .await
            .expect("admitted");
    assert_eq!(store.connection_count(), 1);
    socket.send(Message::text("hi")).await.unwrap();
    let reply = tokio::time::timeout(WAIT, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), HELP);

    keys.revoke(&listener.record.key_id, chrono::Utc::now()).await.unwrap();
    assert_eq!(
        handshake_status(&format!("{ws}/?api_key={}", listener.key())).await,
        401,
        "revoked: refused at once"
    );
    let _ = socket.close(None).await;
    gateway.shutdown().await;
}
