//! The whole local stack for end-to-end tests: the gateway started in-process (on free
//! loopback ports, with its own tables and checkpoint file) over the real RT and moto, plus
//! real WebSocket clients and bounded waits.

use std::{
    collections::HashMap,
    future::Future,
    path::PathBuf,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use rt_relay_gateway::{Gateway, GatewayConfig, RunningGateway};
use rt_relay_shared::{
    auth::{dynamodb::DynamoApiKeys, mint, ApiKeyStore, Scope, WS_KEY_PARAM},
    config::Tables,
    store::{dynamodb::client_from_env, schema::create_tables},
};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

use crate::services::{service_vars, unique_prefix};

/// One test's stack: its table prefix and checkpoint file, which survive a gateway restart,
/// and an API key with every scope and every queue that its clients send.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The gateway's configuration (ports 0, so a restart may get new ports).
    pub config: GatewayConfig,
    /// A DynamoDB client for moto, for looking at the tables directly.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// A key with every scope, minted into this stack's API keys table.
    pub api_key: String,
}

impl Stack {
    /// A fresh stack named after `tag`: unique tables, a new checkpoint file, RT over
    /// REST 2.0 with the test token. Panics (telling to run `make test`) when the services'
    /// variables are missing.
    pub async fn new(tag: &str) -> Self {
        Self::with_vars(tag, &[]).await
    }

    /// [`Stack::new`] with more gateway variables (they win over the defaults). The RT
    /// sync is off unless `GATEWAY_SYNC_INTERVAL_MS` is given: other tests' RT changes would
    /// otherwise become notifications in this stack's tables.
    pub async fn with_vars(tag: &str, extra: &[(&str, String)]) -> Self {
        let prefix = unique_prefix(tag);
        let checkpoint =
            std::env::temp_dir().join("rt-relay-e2e").join(format!("{prefix}checkpoint.json"));
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("GATEWAY_HTTP_ADDR", "127.0.0.1:0".into()),
            ("GATEWAY_WS_ADDR", "127.0.0.1:0".into()),
            ("GATEWAY_MANAGEMENT_ADDR", "127.0.0.1:0".into()),
            ("TABLE_PREFIX", prefix),
            ("GATEWAY_CHECKPOINT", checkpoint.display().to_string()),
            ("GATEWAY_POLL_MS", "100".into()),
            ("GATEWAY_SYNC_INTERVAL_MS", "0".into()),
        ]);
        vars.extend(service_vars());
        vars.extend(extra.iter().cloned());
        let config = GatewayConfig::from_lookup(&|k| vars.get(k).cloned())
            .unwrap_or_else(|e| panic!("gateway configuration for the tests: {e}"));
        let dynamodb = client_from_env().await;
        // The gateway would create them too; the key needs its table before the first start.
        create_tables(&dynamodb, &config.tables).await.expect("create the stack's tables in moto");
        let api_key = mint_key(&dynamodb, &config.tables, "e2e", &Scope::ALL).await;
        let stack = Self { config, dynamodb, api_key };
        // The stack's key may use every queue, as every key could before queue rights.
        let id = stack.api_key.split('_').nth(1).expect("a key rtr_<id>_<secret>").to_owned();
        assert!(stack.keys().set_queues(&id, &["*".into()]).await.expect("set the key's queues"));
        stack
    }

    /// The tables this stack uses.
    pub fn tables(&self) -> &Tables {
        &self.config.tables
    }

    /// The stack's API keys table.
    pub fn keys(&self) -> DynamoApiKeys {
        DynamoApiKeys::new(
            self.dynamodb.clone(),
            self.tables().api_keys.clone().expect("the stack has an API keys table"),
        )
    }

    /// Mints another key with `scopes`.
    pub async fn mint_key(&self, scopes: &[Scope]) -> String {
        mint_key(&self.dynamodb, self.tables(), "e2e extra", scopes).await
    }

    /// Revokes a key by its full value.
    pub async fn revoke_key(&self, key: &str) {
        let id = key.split('_').nth(1).expect("a key rtr_<id>_<secret>");
        self.keys().revoke(id, chrono::Utc::now()).await.expect("revoke the key");
    }

    /// An HTTP client that sends the stack's key (`Authorization: Bearer`).
    pub fn http(&self) -> reqwest::Client {
        authorized_client(&self.api_key)
    }

    /// `gateway`'s WebSocket URL with the stack's key as the `api_key` parameter.
    pub fn ws_url(&self, gateway: &RunningGateway) -> String {
        ws_url_with_key(&gateway.ws_url(), &self.api_key)
    }

    /// The checkpoint file this stack's gateways share.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.config.stream.checkpoint_path.clone()
    }

    /// Starts a gateway (creating the tables on first start).
    pub async fn start(&self) -> RunningGateway {
        Gateway::start(self.config.clone())
            .await
            .unwrap_or_else(|e| panic!("gateway did not start: {e:?}"))
    }

    /// A fresh stack ([`Stack::new`]) with its gateway started.
    pub async fn running(tag: &str) -> Running {
        Self::new(tag).await.run().await
    }

    /// Starts a gateway over this stack (as configured by then) and hands both over.
    pub async fn run(self) -> Running {
        let gateway = self.start().await;
        Running { http: self.http(), base: gateway.http_url(), stack: self, gateway }
    }

    /// Connection ids currently in the connections table.
    pub async fn stored_connections(&self) -> Vec<String> {
        stored_connections(&self.dynamodb, self.tables()).await
    }

    /// The end of a test: shuts `gateway` down (its sockets closed, `$disconnect` run),
    /// then deletes the stack's tables and checkpoint.
    pub async fn finish(&self, gateway: RunningGateway) {
        gateway.shutdown().await;
        self.clean_up().await;
    }

    /// Deletes this stack's tables and checkpoint (best effort, at the end of a test).
    pub async fn clean_up(&self) {
        let t = self.tables();
        for name in [&t.tickets, &t.notifications, &t.connections, &t.idempotency]
            .into_iter()
            .chain(t.api_keys.as_ref())
        {
            let _ = self.dynamodb.delete_table().table_name(name).send().await;
        }
        let _ = std::fs::remove_file(self.checkpoint_path());
    }
}

/// A stack with its gateway started, an HTTP client sending the stack's key and the HTTP
/// API's base URL: what an end-to-end test begins with. [`Stack::finish`] ends it.
#[derive(Debug)]
pub struct Running {
    /// The stack.
    pub stack: Stack,
    /// Its gateway.
    pub gateway: RunningGateway,
    /// [`Stack::http`].
    pub http: reqwest::Client,
    /// The gateway's HTTP API base URL.
    pub base: String,
}

/// Connection ids currently in `tables`' connections table (a consistent scan of the base
/// items, not the channel items the push's index reads).
pub async fn stored_connections(
    dynamodb: &aws_sdk_dynamodb::Client,
    tables: &Tables,
) -> Vec<String> {
    let out = dynamodb
        .scan()
        .table_name(&tables.connections)
        .filter_expression("attribute_not_exists(#channel)")
        .expression_attribute_names("#channel", "channel")
        .consistent_read(true)
        .send()
        .await
        .expect("scan the connections table");
    out.items()
        .iter()
        .filter_map(|i| i.get("connection_id").and_then(|v| v.as_s().ok()).cloned())
        .collect()
}

/// GETs `url` and returns its JSON body, failing the test unless the answer is 200.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let resp = http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "GET {url}");
    resp.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// Creates a ticket from `body` through `POST {base}/tickets`; its id. Fails the test
/// unless the answer is 201.
pub async fn create_ticket(http: &reqwest::Client, base: &str, body: &Value) -> u64 {
    let (status, text) = status_of(http.post(format!("{base}/tickets")).json(body)).await;
    assert_eq!(status, 201, "POST /tickets answered {status}: {text}");
    let ticket: Value = serde_json::from_str(&text).expect("ticket JSON");
    ticket["id"].as_u64().expect("numeric ticket id")
}

/// Sends `req`; the answer's status and body text.
pub async fn status_of(req: reqwest::RequestBuilder) -> (u16, String) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Mints a key named `name` with `scopes` into `tables`' API keys table (which must exist).
pub async fn mint_key(
    dynamodb: &aws_sdk_dynamodb::Client,
    tables: &Tables,
    name: &str,
    scopes: &[Scope],
) -> String {
    let table =
        tables.api_keys.clone().expect("an API keys table name (Tables::with_prefix sets one)");
    let keys = DynamoApiKeys::new(dynamodb.clone(), table);
    let minted = mint(&keys, name, scopes.iter().copied().collect(), chrono::Utc::now())
        .await
        .expect("mint an API key");
    minted.key().to_owned()
}

/// An HTTP client that sends `key` as `Authorization: Bearer <key>` on every request.
pub fn authorized_client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
        .expect("a key is a valid header value");
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().expect("HTTP client")
}

/// A WebSocket URL with `key` as the `api_key` query parameter (keys need no escaping).
pub fn ws_url_with_key(ws_url: &str, key: &str) -> String {
    format!("{}/?{WS_KEY_PARAM}={key}", ws_url.trim_end_matches('/'))
}

/// The HTTP status a WebSocket handshake at `url` gets (101 when admitted; the socket is
/// then closed again), within 10 s.
pub async fn handshake_status(url: &str) -> u16 {
    match tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url)).await
    {
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => resp.status().as_u16(),
        Ok(Ok((mut socket, resp))) => {
            let _ = socket.close(None).await;
            resp.status().as_u16()
        }
        Ok(Err(e)) => panic!("handshake failed without an HTTP status: {e}"),
        Err(_) => panic!("the handshake did not finish within 10 s"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, failing the test after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real WebSocket client that keeps every JSON message it receives.
#[derive(Debug)]
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// JSON messages received so far, in order.
    pub received: Vec<Value>,
}

impl WsClient {
    /// Connects to `url` (the handshake completes only after `$connect` admitted it).
    pub async fn connect(url: &str) -> Self {
        let (socket, _) =
            tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url))
                .await
                .unwrap_or_else(|_| panic!("WebSocket connect to {url} timed out"))
                .unwrap_or_else(|e| panic!("WebSocket connect to {url}: {e}"));
        Self { socket, received: Vec::new() }
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("send a WebSocket message");
    }

    /// The next text message within `limit`, or `None` on timeout or close.
    pub async fn next_text(&mut self, limit: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(t.as_str().to_owned()),
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => {
                    return None
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Waits (bounded) for the server to end the connection (a close frame, an error or the
    /// end of the stream); `false` if it is still open after `limit`. Text received
    /// meanwhile is kept.
    pub async fn wait_closed(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(Some(Ok(Message::Text(t)))) => self.received.push(
                    serde_json::from_str(t.as_str()).unwrap_or(Value::String(t.as_str().into())),
                ),
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Waits (bounded) for a message matching `pred`, keeping everything received.
    pub async fn wait_for_message(
        &mut self,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(v) = self.received.iter().find(|v| pred(v)) {
            return Some(v.clone());
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let text = self.next_text(left).await?;
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            self.received.push(value.clone());
            if pred(&value) {
                return Some(value);
            }
        }
    }

    /// Waits (bounded) for the `ticket.created` notification of `ticket_id`.
    pub async fn wait_for_ticket(&mut self, ticket_id: u64, limit: Duration) -> Option<Value> {
        self.wait_for_message(limit, |v| {
            v["type"] == "ticket.created" && v["ticket"]["id"] == ticket_id
        })
        .await
    }

    /// Waits (bounded) until the server closes the connection: a close frame or the end of
    /// the stream. `false` when `limit` passed with the connection still open.
    pub async fn wait_closed_by_server(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Closes with the close handshake.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.socket.next().await.is_some() {}
        })
        .await;
    }
}
