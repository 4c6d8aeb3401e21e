//! End to end: the local gateway (in-process, the same handler code the Lambdas run) over
//! the real RT and moto, driven by real HTTP (reqwest) and WebSocket (tokio-tungstenite)
//! clients. Every wait is bounded; everything listens on loopback. The services' variables
//! come from `make test`; without them each test fails saying so.

use std::{sync::Arc, time::Duration, time::Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use rt_relay_shared::{
    auth::{secret_hash, Scope},
    config::RtApi,
    fanout::{ApiGatewayPoster, ConnectionPoster, PostError},
    handlers::ws::HELP,
    store::{dynamodb::DynamoStore, ConnectionStore, PageAfter},
};
use rt_relay_tests::{
    fault_proxy::{FaultProxy, Match},
    rt::{rt_client, rt_config, token_auth},
    services::{open_connection, read_notification_stream, record_sample, require_env},
    stack::{
        authorized_client, get_json, handshake_status, status_of, wait_for, ws_url_with_key,
        Running, Stack, WsClient,
    },
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;

/// The `x-amz-target` of a DynamoDB Streams GetRecords call.
const GET_RECORDS: &str = "DynamoDBStreams_20120810.GetRecords";

/// Bound on a push reaching every client.
const PUSH_WAIT: Duration = Duration::from_secs(15);
/// Bound on the connections table catching up.
const TABLE_WAIT: Duration = Duration::from_secs(10);
/// The seed's example ticket.
const SEED_TITLE: &str = "Problema no Login";
const SEED_DESCRIPTION: &str = "Usuário não consegue fazer login no sistema.";

fn seed_body() -> Value {
    json!({ "title": SEED_TITLE, "description": SEED_DESCRIPTION })
}

/// Creates a ticket through the HTTP API and returns its JSON (asserting 201).
async fn post_ticket(http: &reqwest::Client, base: &str, body: &Value) -> Value {
    let resp =
        http.post(format!("{base}/tickets/")).json(body).send().await.expect("POST /tickets/");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::CREATED, "POST /tickets/ answered {status}: {text}");
    serde_json::from_str(&text).expect("ticket JSON")
}

/// The stored notification about `ticket_id`, from `GET /notifications`.
async fn notification_for(http: &reqwest::Client, base: &str, ticket_id: u64) -> Option<Value> {
    let list = get_json(http, &format!("{base}/notifications?limit=100")).await;
    list["items"].as_array()?.iter().find(|n| n["ticket"]["id"] == ticket_id).cloned()
}

fn ticket_id(ticket: &Value) -> u64 {
    ticket["id"].as_u64().unwrap_or_else(|| panic!("ticket without numeric id: {ticket}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connected_client_receives_the_new_ticket_and_everything_agrees() {
    let Running { stack, gateway, http, base } = Stack::running("e2e-fanout").await;

    let ws_url = stack.ws_url(&gateway);
    let mut clients = join_all((0..24).map(|_| WsClient::connect(&ws_url))).await;
    assert_eq!(gateway.connections().len(), 24);
    wait_for("24 connections in the table", TABLE_WAIT, || async {
        (stack.stored_connections().await.len() == 24).then_some(())
    })
    .await;

    let started = Instant::now();
    let ticket = post_ticket(&http, &base, &seed_body()).await;
    let id = ticket_id(&ticket);
    assert_eq!(ticket["title"], SEED_TITLE);
    assert_eq!(ticket["description"], SEED_DESCRIPTION);

    let note = notification_for(&http, &base, id)
        .await
        .expect("GET /notifications lists the new ticket's notification");
    assert_eq!(note["type"], "ticket.created");
    let received = join_all(clients.iter_mut().map(|c| c.wait_for_ticket(id, PUSH_WAIT))).await;
    for (i, message) in received.iter().enumerate() {
        let message = message.as_ref().unwrap_or_else(|| {
            panic!("client {i} got no notification for ticket {id} within {PUSH_WAIT:?}")
        });
        assert_eq!(message["id"], note["id"], "client {i} got the stored notification");
        assert_eq!(message["ticket"]["title"], SEED_TITLE);
    }
    eprintln!(
        "24 clients had ticket {id}'s notification {:?} after the POST started",
        started.elapsed()
    );

    let list = get_json(&http, &format!("{base}/tickets")).await;
    assert!(
        list["items"].as_array().is_some_and(|items| items.iter().any(|t| t["id"] == id)),
        "GET /tickets lists {id}"
    );
    let one = get_json(&http, &format!("{base}/tickets/{id}")).await;
    assert_eq!(one["title"], SEED_TITLE);
    assert_eq!(one["description"], SEED_DESCRIPTION);

    let rt = rt_client(&rt_config(RtApi::Rest2, token_auth()));
    let in_rt = rt.get(id).await.expect("the ticket exists in RT");
    assert_eq!(in_rt.subject, SEED_TITLE);
    assert_eq!(rt.description(id).await.expect("RT description").trim_end(), SEED_DESCRIPTION);

    stack.finish(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_is_removed_from_the_connections_table() {
    let Running { stack, gateway, .. } = Stack::running("e2e-close").await;
    let leaving = WsClient::connect(&stack.ws_url(&gateway)).await;
    let leaving_id = gateway.connections().ids().pop().expect("one live connection");
    let _staying = WsClient::connect(&stack.ws_url(&gateway)).await;
    let staying_id = gateway
        .connections()
        .ids()
        .into_iter()
        .find(|id| *id != leaving_id)
        .expect("a second connection");
    wait_for("both connections stored", TABLE_WAIT, || async {
        let stored = stack.stored_connections().await;
        (stored.contains(&leaving_id) && stored.contains(&staying_id)).then_some(())
    })
    .await;

    leaving.close().await;
    wait_for("$disconnect to remove the closed connection", TABLE_WAIT, || async {
        (stack.stored_connections().await == vec![staying_id.clone()]).then_some(())
    })
    .await;
    assert!(!gateway.connections().contains(&leaving_id));

    stack.finish(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_vanished_is_removed_on_the_next_push() {
    let Running { stack, gateway, http, base } = Stack::running("e2e-gone").await;
    // A connection the table knows but no socket has (its client vanished while the
    // gateway was down, say): only the push's 410 Gone can clear it.
    let store = DynamoStore::new(stack.dynamodb.clone(), stack.tables().clone());
    let vanished = "Vanished00000001".to_owned();
    store.add(&open_connection(&vanished)).await.expect("record a stale connection");
    let mut live = WsClient::connect(&stack.ws_url(&gateway)).await;
    let live_id = gateway.connections().ids().pop().expect("one live connection");

    let ticket =
        post_ticket(&http, &base, &json!({"title": "vanished client", "description": "410 path"}))
            .await;
    let id = ticket_id(&ticket);
    assert!(live.wait_for_ticket(id, PUSH_WAIT).await.is_some(), "the live client got ticket {id}");
    wait_for("the vanished connection to be deleted after its 410", PUSH_WAIT, || async {
        (stack.stored_connections().await == vec![live_id.clone()]).then_some(())
    })
    .await;

    stack.finish(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_poster_gets_gone_for_unknown_ids_and_delivers_to_live_ones() {
    let Running { stack, gateway, .. } = Stack::running("e2e-poster").await;
    let mut client = WsClient::connect(&stack.ws_url(&gateway)).await;
    let id = gateway.connections().ids().pop().expect("one live connection");

    let endpoint =
        url::Url::parse(&gateway.management_endpoint()).expect("management endpoint URL");
    let poster = ApiGatewayPoster::new(
        &rt_relay_shared::wiring::sdk_config().expect("AWS SDK configuration"),
        &endpoint,
        Duration::from_secs(5),
    );
    assert_eq!(poster.post("NoSuchConnection", b"{}").await, Err(PostError::Gone));
    assert_eq!(
        poster.post("with space/and%", b"{}").await,
        Err(PostError::Gone),
        "odd ids are escaped and still Gone"
    );
    poster.post(&id, br#"{"hello":"poster"}"#).await.expect("post to a live connection");
    let got = client.wait_for_message(PUSH_WAIT, |v| v["hello"] == "poster").await;
    assert!(got.is_some(), "the client received the SDK's post");

    client.close().await;
    wait_for("the closed connection to be gone", TABLE_WAIT, || async {
        (!gateway.connections().contains(&id)).then_some(())
    })
    .await;
    assert_eq!(poster.post(&id, b"{}").await, Err(PostError::Gone), "a closed connection is Gone");

    stack.finish(gateway).await;
}

/// Records a connection no socket has: the next push answers it 410 and deletes it, so
/// its disappearance shows that a push happened (and its presence that none did).
async fn add_sentinel(stack: &Stack, id: &str) {
    let store = DynamoStore::new(stack.dynamodb.clone(), stack.tables().clone());
    store.add(&open_connection(id)).await.expect("record a sentinel connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_data_and_resumes_the_stream_after_its_checkpoint() {
    let stack = Stack::new("e2e-restart").await;
    let http = stack.http();

    // Run 1: ticket A is pushed; shutdown closes the socket and saves the checkpoint.
    let first = stack.start().await;
    let mut before = WsClient::connect(&stack.ws_url(&first)).await;
    let a = ticket_id(
        &post_ticket(
            &http,
            &first.http_url(),
            &json!({"title": "before restart", "description": "A"}),
        )
        .await,
    );
    assert!(
        before.wait_for_ticket(a, PUSH_WAIT).await.is_some(),
        "ticket {a} was pushed before the restart"
    );
    first.shutdown().await;
    assert!(before.wait_closed(Duration::from_secs(5)).await, "shutdown closed the socket");
    assert!(
        stack.stored_connections().await.is_empty(),
        "shutdown ran $disconnect for the open socket"
    );
    let checkpoint: Value = serde_json::from_str(
        &std::fs::read_to_string(stack.checkpoint_path()).expect("checkpoint file written"),
    )
    .expect("checkpoint JSON");
    assert!(
        checkpoint["shards"].as_object().is_some_and(|s| !s.is_empty()),
        "checkpoint: {checkpoint}"
    );

    // Run 2: the data is still there, A is not pushed again, B reaches new clients. Its
    // poller reads the stream through a proxy that counts GetRecords calls.
    add_sentinel(&stack, "SentinelRunTwo01").await;
    let streams = FaultProxy::start(&require_env("AWS_ENDPOINT_URL")).await;
    let reads = streams.count(Match::HeaderPrefix("x-amz-target", GET_RECORDS));
    let mut via_proxy = stack.clone();
    via_proxy.config.stream.endpoint = url::Url::parse(&streams.url()).expect("proxy URL");
    let second = via_proxy.start().await;
    let base = second.http_url();
    let list = get_json(&http, &format!("{base}/tickets")).await;
    assert!(
        list["items"].as_array().is_some_and(|items| items.iter().any(|t| t["id"] == a)),
        "ticket {a} survived"
    );
    assert!(
        notification_for(&http, &base, a).await.is_some(),
        "ticket {a}'s notification survived"
    );
    // The poller pushes a batch before it reads the next one: by its second GetRecords call,
    // the first batch after the restart (A, were the checkpoint ignored) has been pushed, and
    // that push would have removed the sentinel (posting to it answers 410).
    wait_for("the restarted poller's second stream read", PUSH_WAIT, || async {
        (reads.get() >= 2).then_some(())
    })
    .await;
    assert!(
        stack.stored_connections().await.contains(&"SentinelRunTwo01".to_owned()),
        "the restarted gateway pushed ticket {a} again: the checkpoint was not honoured"
    );
    let ws_url = stack.ws_url(&second);
    let mut after = join_all((0..3).map(|_| WsClient::connect(&ws_url))).await;
    let b = ticket_id(
        &post_ticket(&http, &base, &json!({"title": "after restart", "description": "B"})).await,
    );
    for (i, client) in after.iter_mut().enumerate() {
        assert!(
            client.wait_for_ticket(b, PUSH_WAIT).await.is_some(),
            "client {i} got ticket {b} after the restart"
        );
        // The stream is read in order: a replay of A would have arrived before B.
        assert!(
            !client.received.iter().any(|m| m["ticket"]["id"] == a),
            "client {i} was pushed ticket {a} again"
        );
    }
    wait_for("B's push to clear the sentinel (410)", PUSH_WAIT, || async {
        (!stack.stored_connections().await.contains(&"SentinelRunTwo01".to_owned())).then_some(())
    })
    .await;
    second.shutdown().await;

    // A notification written while no gateway runs is pushed once one starts again.
    let store = DynamoStore::new(stack.dynamodb.clone(), stack.tables().clone());
    // Written while down.
    let missed = record_sample(&store, b + 1_000_000).await;
    add_sentinel(&stack, "SentinelRunThree").await;
    let third = stack.start().await;
    wait_for("the notification written while down to be pushed", PUSH_WAIT, || async {
        (!stack.stored_connections().await.contains(&"SentinelRunThree".to_owned())).then_some(())
    })
    .await;
    assert!(notification_for(&http, &third.http_url(), missed.id).await.is_some());
    stack.finish(third).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_gets_the_default_route_help_text() {
    let Running { stack, gateway, .. } = Stack::running("e2e-default").await;
    let mut client = WsClient::connect(&stack.ws_url(&gateway)).await;
    // An action $default does not know (`subscribe` and `ping` are answered otherwise).
    client.send_text(r#"{"action":"hello"}"#).await;
    assert_eq!(client.next_text(Duration::from_secs(5)).await.as_deref(), Some(HELP));
    client.close().await;
    stack.finish(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_connect_refuses_the_handshake() {
    let Running { stack, gateway, .. } = Stack::running("e2e-refuse").await;
    stack
        .dynamodb
        .delete_table()
        .table_name(&stack.tables().connections)
        .send()
        .await
        .expect("delete the connections table");
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(stack.ws_url(&gateway)),
    )
    .await
    {
        Ok(Err(tungstenite::Error::Http(resp))) => assert_eq!(resp.status(), 500),
        Ok(Ok(_)) => {
            panic!("the handshake was accepted although $connect could not record the connection")
        }
        Ok(Err(e)) => panic!("expected an HTTP 500 refusal, got {e}"),
        Err(_) => panic!("the handshake did not finish within 10 s"),
    }
    assert!(gateway.connections().is_empty(), "a refused connection is not registered");
    stack.finish(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_wrong_methods_get_json_errors() {
    let Running { stack, gateway, http, base } = Stack::running("e2e-routes").await;

    let missing =
        http.get(format!("{base}/no/such/route")).send().await.expect("GET unknown route");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["content-type"], "application/json");
    let body: Value = missing.json().await.expect("404 JSON");
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));

    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/tickets", "GET, POST"),
        (reqwest::Method::PUT, "/tickets/", "GET, POST"),
        (reqwest::Method::POST, "/notifications", "GET"),
        (reqwest::Method::DELETE, "/tickets/1", "GET"),
    ] {
        let resp = http
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .expect("wrong method");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        let body: Value = resp.json().await.expect("405 JSON");
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }

    let bad_id = http.get(format!("{base}/tickets/abc")).send().await.expect("GET /tickets/abc");
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);
    let unknown =
        http.get(format!("{base}/tickets/999999999")).send().await.expect("GET unknown ticket");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND, "RT has no such ticket");

    stack.finish(gateway).await;
}

/// `@connections` (which checks no IAM signature here) is served on its own loopback
/// listener, in AWS's error shape, and NOT on the WebSocket port clients reach, where the
/// path is just another WebSocket endpoint; a fresh stack starts with an empty connections
/// table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_is_served_on_its_own_loopback_listener() {
    let Running { stack, gateway, .. } = Stack::running("e2e-endpoint").await;
    let management = url::Url::parse(&gateway.management_endpoint()).expect("endpoint URL");
    assert_eq!(management.host_str(), Some("127.0.0.1"));
    assert_ne!(gateway.management_endpoint(), gateway.ws_url().replace("ws://", "http://"));
    let http = reqwest::Client::new(); // @connections is IAM-signed on AWS, not keyed
    let status = http
        .get(format!("{}/@connections/NoSuchConnection", gateway.management_endpoint()))
        .send()
        .await
        .expect("GET @connections");
    assert_eq!(status.status(), StatusCode::GONE);
    assert_eq!(status.headers()["x-amzn-errortype"], "GoneException");
    let on_ws_port = http
        .delete(format!(
            "{}/@connections/NoSuchConnection",
            gateway.ws_url().replace("ws://", "http://")
        ))
        .send()
        .await
        .expect("DELETE @connections on the WebSocket port");
    assert_eq!(on_ws_port.status(), StatusCode::UPGRADE_REQUIRED, "no @connections there");
    let store: Arc<dyn ConnectionStore> =
        Arc::new(DynamoStore::new(stack.dynamodb.clone(), stack.tables().clone()));
    assert!(store
        .page(&PageAfter::first(10))
        .await
        .expect("connections table exists")
        .0
        .is_empty());
    stack.finish(gateway).await;
}

/// A poster that fails posts carrying `marker` the first `failures` times.
#[derive(Debug)]
struct FlakyPoster {
    marker: String,
    failures: std::sync::Mutex<u32>,
    attempts_with_marker: std::sync::atomic::AtomicU32,
    delivered: std::sync::Mutex<Vec<String>>,
}

impl FlakyPoster {
    fn new(marker: &str, failures: u32) -> Self {
        Self {
            marker: marker.to_owned(),
            failures: std::sync::Mutex::new(failures),
            attempts_with_marker: std::sync::atomic::AtomicU32::new(0),
            delivered: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Notification ids delivered, in order.
    fn delivered(&self) -> Vec<String> {
        self.delivered.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait::async_trait]
impl ConnectionPoster for FlakyPoster {
    async fn post(&self, _connection_id: &str, data: &[u8]) -> Result<(), PostError> {
        let note: Value =
            serde_json::from_slice(data).map_err(|e| PostError::Failed(e.to_string()))?;
        let id = note["id"].as_str().unwrap_or_default().to_owned();
        if id == self.marker {
            self.attempts_with_marker.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut left = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if *left > 0 {
                *left -= 1;
                return Err(PostError::Failed("injected failure".into()));
            }
        }
        self.delivered.lock().unwrap_or_else(|p| p.into_inner()).push(id);
        Ok(())
    }
}

/// Three notifications in a fresh table, one connection, and a poller over the table's
/// real (moto) stream that pushes through `poster`, retrying up to `max_retries` times.
async fn poller_fixture(tag: &str, poster: Arc<FlakyPoster>, max_retries: u32) -> PollerFixture {
    use rt_relay_gateway::{stream::StreamPoller, StreamSettings};
    use rt_relay_shared::{
        handlers::push::PushNotifications, store::schema::notifications_stream_arn,
        usecases::push::Fanout,
    };

    let (client, tables) = rt_relay_tests::services::fresh_tables(tag).await;
    let store = Arc::new(DynamoStore::new(client.clone(), tables.clone()));
    for id in 1..=3 {
        record_sample(store.as_ref(), id).await;
    }
    store.add(&open_connection("c1")).await.expect("record a connection");
    let arn = notifications_stream_arn(&client, &tables).await.expect("stream ARN");
    // The fixture's own table names make the checkpoint file unique.
    let checkpoint = std::env::temp_dir()
        .join("rt-relay-e2e")
        .join(format!("{}checkpoint.json", tables.tickets));
    let endpoint = url::Url::parse(&rt_relay_tests::services::require_env("AWS_ENDPOINT_URL"))
        .expect("endpoint URL");
    let mut settings = StreamSettings::new(endpoint, checkpoint.clone());
    settings.poll_interval = Duration::from_millis(50);
    settings.retry_backoff = Duration::from_millis(20);
    settings.max_retries = max_retries;
    let push = PushNotifications::from(Fanout::new(store.clone(), poster).with_concurrency(4));
    let poller = StreamPoller::new(arn, push, settings);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(poller.run(stop_rx));
    PollerFixture { client, tables, store, stop, task, checkpoint }
}

struct PollerFixture {
    client: aws_sdk_dynamodb::Client,
    tables: rt_relay_shared::config::Tables,
    store: Arc<DynamoStore>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    checkpoint: std::path::PathBuf,
}

impl PollerFixture {
    /// Stops the poller (it finishes its batch), then drops the tables and checkpoint.
    async fn finish(self) {
        let _ = self.stop.send(true);
        self.task.await.expect("poller stopped");
        let t = &self.tables;
        for name in [&t.tickets, &t.notifications, &t.connections, &t.idempotency]
            .into_iter()
            .chain(t.api_keys.as_ref())
        {
            let _ = self.client.delete_table().table_name(name).send().await;
        }
        let _ = std::fs::remove_file(&self.checkpoint);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_poller_retries_from_the_lowest_failed_record() {
    let poster = Arc::new(FlakyPoster::new("ticket-2-created", 2));
    let fixture = poller_fixture("e2e-retry", poster.clone(), 5).await;
    wait_for("all three notifications delivered", PUSH_WAIT, || async {
        (poster.delivered().len() >= 3).then_some(())
    })
    .await;
    // The checkpoint reaches the last record only when its batch is done, retries included:
    // a wrong retry (from the batch start) has shown up as a duplicate by then.
    let last = read_notification_stream(&fixture.client, &fixture.tables)
        .await
        .records
        .last()
        .and_then(|r| r.change.sequence_number.clone())
        .expect("the stream's last sequence number");
    let checkpoint = fixture.checkpoint.clone();
    let saved = wait_for("the checkpoint to reach the last record", PUSH_WAIT, || async {
        let saved: Value =
            serde_json::from_str(&std::fs::read_to_string(&checkpoint).ok()?).ok()?;
        let shards = saved["shards"].as_object()?;
        shards.values().any(|seq| seq.as_str() == Some(last.as_str())).then_some(saved)
    })
    .await;
    fixture.finish().await;
    assert_eq!(
        poster.delivered(),
        ["ticket-1-created", "ticket-2-created", "ticket-3-created"],
        "record 1 was not pushed again: the retry started at the lowest failed record"
    );
    assert_eq!(
        poster.attempts_with_marker.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "two failures, then success"
    );
    assert_eq!(
        saved["shards"].as_object().map(|s| s.len()),
        Some(1),
        "one shard checkpointed: {saved}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_keeps_failing_is_skipped_after_the_retries() {
    let poster = Arc::new(FlakyPoster::new("ticket-2-created", u32::MAX));
    let fixture = poller_fixture("e2e-skip", poster.clone(), 2).await;
    wait_for("the failing record's retries to run out", PUSH_WAIT, || async {
        (poster.attempts_with_marker.load(std::sync::atomic::Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    record_sample(fixture.store.as_ref(), 4).await;
    wait_for("the stream to move on to record 4", PUSH_WAIT, || async {
        poster.delivered().contains(&"ticket-4-created".to_owned()).then_some(())
    })
    .await;
    fixture.finish().await;
    assert_eq!(
        poster.attempts_with_marker.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "one try and two retries"
    );
    // Record 3 came after the failure in the given-up batch: sent to the on-failure
    // destination with it, never pushed.
    assert_eq!(poster.delivered(), ["ticket-1-created", "ticket-4-created"]);
}

// ---------------------------------------------------------------- API keys

/// Both APIs, against the real keys table: no key 401, a key without the route's scope 403,
/// and a revoked key refused from its very next request (HTTP and WebSocket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_both_apis_and_a_revoked_key_is_refused_at_once() {
    let Running { stack, gateway, http, base } = Stack::running("e2e-auth").await;

    // GIVEN no key at all: every route of both APIs answers 401 in API Gateway's shape
    let anonymous = reqwest::Client::new();
    let routes = [
        (reqwest::Method::POST, "/tickets"),
        (reqwest::Method::GET, "/tickets"),
        (reqwest::Method::GET, "/tickets/1"),
        (reqwest::Method::GET, "/notifications"),
    ];
    for (method, path) in &routes {
        let (status, body) = status_of(
            anonymous.request(method.clone(), format!("{base}{path}")).json(&seed_body()),
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (401, r#"{"message":"Unauthorized"}"#),
            "{method} {path}"
        );
    }
    assert_eq!(handshake_status(&gateway.ws_url()).await, 401, "WebSocket without api_key");

    // GIVEN a read-only key and a write+notifications key
    let reader = stack.mint_key(&[Scope::TicketsRead]).await;
    let writer = stack.mint_key(&[Scope::TicketsWrite, Scope::NotificationsRead]).await;
    let (reader_http, writer_http) = (authorized_client(&reader), authorized_client(&writer));

    // THEN each reaches exactly its routes; the others are 403
    let (status, body) =
        status_of(reader_http.post(format!("{base}/tickets")).json(&seed_body())).await;
    assert_eq!((status, body.as_str()), (403, r#"{"message":"Forbidden"}"#));
    assert_eq!(status_of(reader_http.get(format!("{base}/tickets"))).await.0, 200);
    assert_eq!(status_of(reader_http.get(format!("{base}/notifications"))).await.0, 403);
    assert_eq!(status_of(writer_http.get(format!("{base}/tickets"))).await.0, 403);
    assert_eq!(
        handshake_status(&ws_url_with_key(&gateway.ws_url(), &reader)).await,
        403,
        "tickets:read cannot listen"
    );
    let mut listener = WsClient::connect(&ws_url_with_key(&gateway.ws_url(), &writer)).await;
    let id = ticket_id(
        &post_ticket(&writer_http, &base, &json!({"title": "keyed", "description": "auth e2e"}))
            .await,
    );
    assert!(
        listener.wait_for_ticket(id, PUSH_WAIT).await.is_some(),
        "a keyed listener gets the push"
    );

    // WHEN the writer key is revoked
    stack.revoke_key(&writer).await;
    // THEN its next request is refused, on both APIs, with no cache in between
    let (status, _) =
        status_of(writer_http.post(format!("{base}/tickets")).json(&seed_body())).await;
    assert_eq!(status, 403, "revoked key, HTTP API");
    assert_eq!(
        handshake_status(&ws_url_with_key(&gateway.ws_url(), &writer)).await,
        401,
        "revoked key, WebSocket API"
    );
    // AND the refused POSTs created nothing
    let notes = get_json(&http, &format!("{base}/notifications?limit=100")).await;
    assert_eq!(notes["items"].as_array().map(Vec::len), Some(1), "{notes}");

    listener.close().await;
    stack.finish(gateway).await;
}

/// The keys table holds hashes only: no attribute carries the key or its secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_hashes_of_api_keys_are_stored() {
    let stack = Stack::new("e2e-hashes").await;
    let extra = stack.mint_key(&[Scope::TicketsRead]).await;
    let table = stack.tables().api_keys.clone().expect("keys table");
    let items = stack
        .dynamodb
        .scan()
        .table_name(&table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan the keys table");
    assert_eq!(items.items().len(), 2);
    for key in [&stack.api_key, &extra] {
        let (id, secret) =
            key.strip_prefix("rtr_").and_then(|r| r.split_once('_')).expect("rtr_<id>_<secret>");
        let item = items
            .items()
            .iter()
            .find(|i| i.get("key_id").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(id))
            .expect("an item per key");
        // `queues` only on a key given a queue list (the stack's key: every queue).
        let mut names: Vec<&str> =
            item.keys().map(String::as_str).filter(|n| *n != "queues").collect();
        names.sort_unstable();
        assert_eq!(names, ["created_at", "key_id", "name", "scopes", "secret_hash"]);
        assert_eq!(
            item["secret_hash"].as_s().ok().map(String::as_str),
            Some(secret_hash(secret).as_str())
        );
        let dump = format!("{item:?}");
        assert!(
            !dump.contains(secret) && !dump.contains(key.as_str()),
            "the secret is stored in {id}"
        );
    }
    stack.clean_up().await;
}
