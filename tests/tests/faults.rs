//! Fault injection against the real product, each fault bounded in time and on loopback
//! only, each checking that nothing was half-written or lost:
//!
//! - RT refuses connections, hangs past the timeout, answers 500, answers 401 mid-run, or
//!   fails between the create and the read-back: a fault proxy sits between the local
//!   gateway and the real RT; the client gets a clear 502/504 (as the OpenAPI document
//!   says), no ticket record and no notification appear, and the same request succeeds
//!   once RT is healthy again.
//! - DynamoDB fails right after RT created the ticket (the proxy fronts moto and fails
//!   `TransactWriteItems`): the client gets 503, and the retry with the same
//!   `Idempotency-Key` completes without a second RT ticket and pushes once.
//! - The push meets live, gone (410) and failing connections: live ones receive, gone ones
//!   are deleted, the failing record is retried from itself (per record) until it lands.
//! - The gateway BINARY is frozen and killed (SIGSTOP, SIGKILL) with notifications still
//!   unprocessed in the stream, then restarted: every one of them reaches the clients then
//!   connected. The stream position survives (a checkpoint file per batch); a crash between
//!   a push and its checkpoint replays that batch, so delivery is at-least-once and clients
//!   dedupe by notification id (shown here by restoring an older checkpoint).

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use rt_relay_gateway::{
    stream::StreamPoller, Functions, Gateway, RunningGateway, ServerOptions, StreamSource,
};
use rt_relay_shared::{
    auth::Scope,
    config::RtApi,
    fanout::ApiGatewayPoster,
    handlers::push::PushNotifications,
    rt::{RtClient, RtQuery},
    store::{
        dynamodb::DynamoStore,
        schema::{create_tables, notifications_stream_arn},
        ConnectionStore, PageRequest, TicketQuery, TicketStore,
    },
    usecases::push::Fanout,
};
use rt_relay_tests::{
    fault_proxy::{Fault, FaultProxy, Match},
    gateway_process::{GatewayProcess, ProcessSettings},
    openapi,
    rt::{highest_rt_id, rt_client, rt_config, token_auth},
    services::{open_connection, record_sample, require_env, unique, unique_prefix},
    stack::{
        authorized_client, mint_key, stored_connections, wait_for, ws_url_with_key, Running, Stack,
        WsClient,
    },
};
use serde_json::{json, Value};

/// Bound on a push reaching a client.
const PUSH_WAIT: Duration = Duration::from_secs(20);
/// Bound on any one API call in these tests (the longest waits out an idempotency lease).
const CALL_WAIT: Duration = Duration::from_secs(30);
/// Bound on each RT request in these tests: long enough that a busy RT (its SQLite write
/// lock, other suites) still answers healthy calls, short enough to keep the hang cases quick.
const RT_BOUND: Duration = Duration::from_secs(4);

/// Prints an observation straight to stderr, past the test harness's output capture, so
/// `make test` shows what each fault did even when the test passes.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "faults: {line}");
}

/// What one `POST /tickets/` answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    took: Duration,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn id(&self) -> u64 {
        self.body["id"].as_u64().unwrap_or_else(|| panic!("no ticket id in {}", self.body))
    }
}

/// POSTs a ticket (bounded) and checks the answer against the OpenAPI document.
async fn post(http: &reqwest::Client, base: &str, title: &str, key: Option<&str>) -> Answer {
    let mut req = http
        .post(format!("{base}/tickets/"))
        .json(&json!({ "title": title, "description": "fault test" }));
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let started = Instant::now();
    let resp = tokio::time::timeout(CALL_WAIT, req.send())
        .await
        .unwrap_or_else(|_| panic!("POST /tickets/ did not answer within {CALL_WAIT:?}"))
        .expect("POST /tickets/ reached the gateway");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("response body");
    let doc = openapi::document();
    let problems = openapi::check_response(&doc, "/tickets/", "post", status, &headers, &bytes);
    assert!(
        problems.is_empty(),
        "POST /tickets/ answered {status} outside the OpenAPI document: {problems:?}"
    );
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, headers, body, took: started.elapsed() }
}

/// RT tickets with ids from `min_id` whose subject is `title`.
async fn rt_tickets_titled(rt: &dyn RtClient, min_id: u64, title: &str) -> Vec<u64> {
    let mut found = Vec::new();
    for page in 1..=50 {
        let got = rt
            .list(&RtQuery { min_id: Some(min_id), ..RtQuery::default() }, page, 100)
            .await
            .expect("list RT tickets");
        found.extend(got.tickets.iter().filter(|t| t.subject == title).map(|t| t.id));
        if !got.has_more {
            break;
        }
    }
    found
}

/// Ticket ids recorded and notification ids stored in the stack's tables (read directly).
async fn recorded(store: &DynamoStore) -> (Vec<u64>, Vec<String>) {
    let tickets = store.list_tickets(&TicketQuery::first(100)).await.expect("list tickets");
    let notes =
        store.list_notifications(&PageRequest::first(100)).await.expect("list notifications");
    (
        tickets.items.iter().map(|t| t.id).collect(),
        notes.items.iter().map(|n| n.id.clone()).collect(),
    )
}

/// The retry answered 201 with the one ticket RT `created` before the failure: RT holds no
/// second ticket titled so (ids from `min_id` on), and the tables hold that ticket and its
/// one notification.
async fn assert_recorded_rts_ticket(
    retry: &Answer,
    created: &[u64],
    (rt, min_id, title): (&dyn RtClient, u64, &str),
    store: &DynamoStore,
) {
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.id(), created[0], "the retry recorded the ticket RT already had");
    assert_eq!(rt_tickets_titled(rt, min_id, title).await, created, "no second RT ticket");
    let expected = (created.to_vec(), vec![format!("ticket-{}-created", created[0])]);
    assert_eq!(recorded(store).await, expected);
}

/// A stack whose gateway reaches RT through a fault proxy (RT requests bounded by
/// `RT_BOUND`), with the stack's tables and a client of RT itself, to see what each side
/// holds after a fault.
struct RtBehindProxy {
    proxy: FaultProxy,
    stack: Stack,
    gateway: RunningGateway,
    store: DynamoStore,
    http: reqwest::Client,
    base: String,
    rt: Arc<dyn RtClient>,
    /// The lowest id a ticket RT makes from now on can have.
    min_id: u64,
}

impl RtBehindProxy {
    async fn start(tag: &str) -> Self {
        let proxy = FaultProxy::start(&require_env("RT_URL")).await;
        let mut stack = Stack::new(tag).await;
        stack.config.rt.base_url =
            url::Url::parse(&format!("{}/", proxy.url())).expect("proxy URL");
        stack.config.rt.timeout = RT_BOUND;
        let Running { stack, gateway, http, base } = stack.run().await;
        let store = DynamoStore::new(stack.dynamodb.clone(), stack.tables().clone());
        let rt = rt_client(&rt_config(RtApi::Rest2, token_auth()));
        let min_id = highest_rt_id(rt.as_ref()).await + 1;
        Self { proxy, stack, gateway, store, http, base, rt, min_id }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rt_refusing_hanging_failing_or_rejecting_credentials_gets_502_or_504_and_leaves_nothing() {
    let RtBehindProxy { proxy, stack, gateway, store, http, base, rt, min_id } =
        RtBehindProxy::start("fault-rt").await;
    let mut client = WsClient::connect(&stack.ws_url(&gateway)).await;

    // A healthy run first: created, recorded, pushed.
    let ok = post(&http, &base, &unique("healthy"), None).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert!(
        client.wait_for_ticket(ok.id(), PUSH_WAIT).await.is_some(),
        "the healthy ticket was pushed"
    );
    let mut expected_tickets = vec![ok.id()];

    type Inject = fn(&FaultProxy);
    let faults: [(&str, Inject, u16, &str); 4] = [
        ("RT answers 500", |p| p.set(Fault::rt_500()), 502, "rt_unavailable"),
        ("RT answers 401 mid-run", |p| p.set(Fault::rt_401()), 502, "rt_unavailable"),
        ("RT hangs past the timeout", |p| p.set(Fault::Hang), 504, "rt_timeout"),
        ("RT refuses connections", |p| p.refuse(), 502, "rt_unavailable"),
    ];
    for (name, inject, status, code) in faults {
        let title = unique(name);
        let key = uuid::Uuid::new_v4().to_string();
        inject(&proxy);
        let failed = post(&http, &base, &title, Some(&key)).await;
        report(&format!(
            "{name}: HTTP {} {} after {:?}",
            failed.status,
            failed.code(),
            failed.took
        ));
        assert_eq!((failed.status, failed.code()), (status, code), "{name}: {}", failed.body);
        assert!(failed.took < Duration::from_secs(10), "{name}: the answer took {:?}", failed.took);
        let message = failed.body["error"]["message"].as_str().unwrap_or("");
        assert!(
            !message.contains("127.0.0.1") && !message.contains("REST/2.0"),
            "{name}: internals leaked: {message}"
        );

        proxy.set(Fault::PassThrough);
        let (tickets, notes) = recorded(&store).await;
        assert_eq!(
            tickets,
            expected_tickets.iter().rev().copied().collect::<Vec<_>>(),
            "{name}: no ticket record was added"
        );
        assert_eq!(notes.len(), expected_tickets.len(), "{name}: no notification was added");
        assert!(
            rt_tickets_titled(rt.as_ref(), min_id, &title).await.is_empty(),
            "{name}: RT never saw the create"
        );

        // Healed: the same request with the same key now succeeds, once.
        let retry = post(&http, &base, &title, Some(&key)).await;
        assert_eq!(retry.status, 201, "{name}: the retry after healing: {}", retry.body);
        assert!(
            retry.headers.get("idempotent-replayed").is_none(),
            "{name}: the failure was not stored as an answer"
        );
        assert_eq!(
            rt_tickets_titled(rt.as_ref(), min_id, &title).await,
            vec![retry.id()],
            "{name}: one RT ticket"
        );
        assert!(
            client.wait_for_ticket(retry.id(), PUSH_WAIT).await.is_some(),
            "{name}: the healed create was pushed"
        );
        expected_tickets.push(retry.id());
    }
    assert!(proxy.faulted() >= 3 && proxy.refused() >= 1, "the faults were exercised");
    let titles: Vec<&str> =
        client.received.iter().filter_map(|m| m["ticket"]["title"].as_str()).collect();
    assert_eq!(
        titles.len(),
        expected_tickets.len(),
        "one push per created ticket, none for a failed request: {titles:?}"
    );

    client.close().await;
    stack.finish(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rt_failing_after_the_create_is_completed_by_the_retry_without_a_second_ticket() {
    // RT creates the ticket, then the read-back fails: the answer is 502 and nothing is
    // recorded, but the idempotency record noted RT's id, so the retry records THAT ticket.
    let RtBehindProxy { proxy, stack, gateway, store, http, base, rt, min_id } =
        RtBehindProxy::start("fault-readback").await;
    let mut client = WsClient::connect(&stack.ws_url(&gateway)).await;

    let title = unique("read-back fails");
    proxy.add_rule(Match::MethodPath("GET", "/REST/2.0/ticket/"), Fault::rt_500(), Some(1));
    let failed = post(&http, &base, &title, Some("readback-1")).await;
    assert_eq!((failed.status, failed.code()), (502, "rt_unavailable"), "{}", failed.body);
    let created = rt_tickets_titled(rt.as_ref(), min_id, &title).await;
    assert_eq!(created.len(), 1, "RT did create the ticket before the failure");
    assert_eq!(recorded(&store).await, (vec![], vec![]), "no record and no notification yet");

    // The retry takes over the first attempt's key (abandoned with a 2 s grace) and completes it.
    let retry = post(&http, &base, &title, Some("readback-1")).await;
    assert_recorded_rts_ticket(&retry, &created, (rt.as_ref(), min_id, &title), &store).await;
    assert!(client.wait_for_ticket(created[0], PUSH_WAIT).await.is_some(), "pushed once recorded");

    client.close().await;
    stack.finish(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rt_answering_after_the_timeout_gets_504_and_the_retry_adopts_rts_ticket() {
    // RT acts but answers too late: the client is told 504 and nothing is recorded. The
    // retry with the same key takes the key over, finds the ticket RT made late (same
    // queue, subject and description, created since the first attempt) and records it
    // instead of creating a second one.
    let RtBehindProxy { proxy, stack, gateway, store, http, base, rt, min_id } =
        RtBehindProxy::start("fault-slow").await;

    let title = unique("slow RT");
    proxy.add_rule(
        Match::MethodPath("POST", "/REST/2.0/ticket"),
        Fault::Slow(RT_BOUND * 2),
        Some(1),
    );
    let late = post(&http, &base, &title, Some("slow-1")).await;
    assert_eq!((late.status, late.code()), (504, "rt_timeout"), "{}", late.body);
    assert_eq!(recorded(&store).await, (vec![], vec![]), "no record and no notification");

    let retry = post(&http, &base, &title, Some("slow-1")).await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    let (tickets, notes) = recorded(&store).await;
    assert_eq!(
        (tickets.len(), notes.len()),
        (1, 1),
        "one record and one notification after the retry"
    );
    let in_rt = rt_tickets_titled(rt.as_ref(), min_id, &title).await;
    report(&format!(
        "RT answered after the timeout: RT tickets titled so: {in_rt:?}; recorded: {tickets:?}"
    ));
    assert_eq!(in_rt, vec![retry.id()], "the retry adopted the late ticket: no second RT ticket");

    stack.finish(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_after_rt_created_gets_503_and_the_retry_completes_without_a_second_rt_ticket(
) {
    let stack = Stack::new("fault-store").await;
    create_tables(&stack.dynamodb, stack.tables()).await.expect("create tables");
    let stream_arn =
        notifications_stream_arn(&stack.dynamodb, stack.tables()).await.expect("stream ARN");
    let moto_proxy = FaultProxy::start(&require_env("AWS_ENDPOINT_URL")).await;
    let store = Arc::new(moto_proxy.dynamodb_store(&stack.dynamodb, stack.tables()));
    let mut rt_conf = stack.config.rt.clone();
    rt_conf.timeout = RT_BOUND;
    let rt = rt_client(&rt_conf);
    let functions =
        Functions::new(rt.clone(), store, rt_conf.default_queue.clone(), rt_conf.timeout)
            .with_api_keys(Arc::new(stack.keys()));
    let source = StreamSource { stream_arn, settings: stack.config.stream.clone() };
    let gateway = Gateway::start_with(ServerOptions::loopback(), functions, Some(source))
        .await
        .expect("gateway");
    let direct = DynamoStore::new(stack.dynamodb.clone(), stack.tables().clone());
    let http = stack.http();
    let base = gateway.http_url();
    let min_id = highest_rt_id(rt.as_ref()).await + 1;
    let mut client = WsClient::connect(&stack.ws_url(&gateway)).await;

    // Every TransactWriteItems fails (the SDK retries, then gives up): the write that
    // records ticket + notification + stored answer, right after RT created the ticket.
    let title = unique("store fails");
    moto_proxy.add_rule(Match::TRANSACT_WRITE, Fault::dynamodb_500(), None);
    let failed = post(&http, &base, &title, Some("store-retry-1")).await;
    assert_eq!((failed.status, failed.code()), (503, "storage_unavailable"), "{}", failed.body);
    assert!(moto_proxy.faulted() >= 1, "the transaction was refused");
    let created = rt_tickets_titled(rt.as_ref(), min_id, &title).await;
    assert_eq!(created.len(), 1, "RT created the ticket before the store failed");
    assert_eq!(
        recorded(&direct).await,
        (vec![], vec![]),
        "nothing half-written: no record, no notification"
    );

    // DynamoDB is back. The retry with the same key waits out the first attempt's lease,
    // then records the ticket RT already has.
    moto_proxy.set(Fault::PassThrough);
    let retry = post(&http, &base, &title, Some("store-retry-1")).await;
    assert_recorded_rts_ticket(&retry, &created, (rt.as_ref(), min_id, &title), &direct).await;
    assert!(
        client.wait_for_ticket(created[0], PUSH_WAIT).await.is_some(),
        "the notification was pushed"
    );
    let replay = post(&http, &base, &title, Some("store-retry-1")).await;
    assert_eq!((replay.status, replay.id()), (201, created[0]));
    assert_eq!(
        replay.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()),
        Some("true")
    );
    drain(&mut client).await;
    let pushes = client.received.iter().filter(|m| m["ticket"]["id"] == created[0]).count();
    assert_eq!(pushes, 1, "pushed once");
    report(&format!(
        "DynamoDB failing after RT created ticket {}: HTTP {} {}; the retry with the same key: HTTP {} for the same \
         ticket, 1 RT ticket, 1 notification, pushed once",
        created[0],
        failed.status,
        failed.code(),
        retry.status
    ));

    client.close().await;
    stack.finish(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_delivers_to_live_deletes_gone_and_retries_a_failing_connection_per_record() {
    // A real gateway serves the clients and @connections (its own poller off); the real
    // stream poller and push function read the table's stream on moto and post through the
    // AWS SDK to the gateway's @connections, via a fault proxy that fails one connection's
    // posts of one notification a few times.
    let stack = Stack::new("fault-push").await;
    create_tables(&stack.dynamodb, stack.tables()).await.expect("create tables");
    let stream_arn =
        notifications_stream_arn(&stack.dynamodb, stack.tables()).await.expect("stream ARN");
    let store = Arc::new(DynamoStore::new(stack.dynamodb.clone(), stack.tables().clone()));
    let rt = rt_client(&stack.config.rt);
    let functions = Functions::new(rt, store.clone(), "General".into(), stack.config.rt.timeout)
        .with_api_keys(Arc::new(stack.keys()));
    let gateway =
        Gateway::start_with(ServerOptions::loopback(), functions, None).await.expect("gateway");

    let mut live = Vec::new();
    let mut live_ids = Vec::new();
    for _ in 0..4 {
        live.push(WsClient::connect(&stack.ws_url(&gateway)).await);
        let ids: HashSet<String> = gateway.connections().ids().into_iter().collect();
        let new = ids.into_iter().find(|id| !live_ids.contains(id)).expect("a new connection id");
        live_ids.push(new);
    }
    let failing_id = live_ids.pop().expect("four connections");
    let mut failing = live.pop().expect("four clients");
    for gone in ["GoneConnection01", "GoneConnection02"] {
        store.add(&open_connection(gone)).await.expect("record a connection whose client is gone");
    }

    let http = stack.http();
    let mut tickets = Vec::new();
    for i in 0..3 {
        let a = post(&http, &gateway.http_url(), &unique(&format!("push mix {i}")), None).await;
        assert_eq!(a.status, 201, "{}", a.body);
        tickets.push(a.id());
    }
    let notes: Vec<String> = tickets.iter().map(|id| format!("ticket-{id}-created")).collect();

    let proxy = FaultProxy::start(&gateway.management_endpoint()).await;
    // The SDK itself tries each post up to 3 times; 6 failures fail the record at least
    // twice, so the poller must retry it from the failed record.
    const FAILURES: u32 = 6;
    proxy.add_rule(
        Match::PathBody(format!("/@connections/{failing_id}"), notes[1].clone()),
        Fault::rt_500(),
        Some(FAILURES),
    );
    let endpoint = url::Url::parse(&proxy.url()).expect("proxy URL");
    let poster = Arc::new(ApiGatewayPoster::new(
        &rt_relay_shared::wiring::sdk_config().expect("AWS SDK configuration"),
        &endpoint,
        Duration::from_secs(5),
    ));
    let push = PushNotifications::from(Fanout::new(store.clone(), poster).with_concurrency(8));
    let mut settings = stack.config.stream.clone();
    settings.retry_backoff = Duration::from_millis(100);
    settings.max_retries = 10;
    let poller = StreamPoller::new(stream_arn, push, settings);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let poller_task = tokio::spawn(poller.run(stop_rx));

    for (i, client) in live.iter_mut().chain(std::iter::once(&mut failing)).enumerate() {
        for id in &tickets {
            assert!(
                client.wait_for_ticket(*id, PUSH_WAIT).await.is_some(),
                "client {i} got ticket {id}"
            );
        }
    }
    wait_for("the gone connections to be deleted", PUSH_WAIT, || async {
        let left = stack.stored_connections().await;
        (!left.iter().any(|id| id.starts_with("GoneConnection"))).then_some(())
    })
    .await;
    let _ = stop.send(true);
    poller_task.await.expect("poller stopped");
    for c in live.iter_mut().chain(std::iter::once(&mut failing)) {
        drain(c).await;
    }

    assert_eq!(proxy.faulted(), FAILURES as usize, "the failing post was retried until it landed");
    let count = |c: &WsClient, note: &str| c.received.iter().filter(|m| m["id"] == note).count();
    for (i, c) in live.iter().enumerate() {
        report(&format!(
            "push: live client {i} received the 3 notifications {:?} times",
            notes.iter().map(|n| count(c, n)).collect::<Vec<_>>()
        ));
        assert_eq!(
            count(c, &notes[0]),
            1,
            "live client {i}: the record before the failure was not pushed again"
        );
        assert!(
            count(c, &notes[1]) >= 2,
            "live client {i}: the failed record was pushed again to everyone (at-least-once)"
        );
        assert!(count(c, &notes[2]) >= 1, "live client {i}");
    }
    assert_eq!(
        count(&failing, &notes[1]),
        1,
        "the failing connection got the record once it stopped failing"
    );
    let mut stored = stack.stored_connections().await;
    stored.sort();
    let mut want: Vec<String> = live_ids.iter().cloned().chain([failing_id.clone()]).collect();
    want.sort();
    assert_eq!(stored, want, "gone deleted; live and failing kept");

    for c in live {
        c.close().await;
    }
    failing.close().await;
    stack.finish(gateway).await;
}

/// Reads (and keeps) whatever else reaches `client` in the next second.
async fn drain(client: &mut WsClient) {
    let _ = client.wait_for_message(Duration::from_secs(1), |_| false).await;
}

/// Connects `n` clients to `url`.
async fn connect_clients(url: &str, n: usize) -> Vec<WsClient> {
    join_all((0..n).map(|_| WsClient::connect(url))).await
}

/// Distinct notification ids a client received, and how many messages it got in all.
fn received_ids(client: &WsClient) -> (HashSet<String>, usize) {
    let ids: HashSet<String> =
        client.received.iter().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect();
    (ids, client.received.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_with_unprocessed_stream_records_pushes_them_all_after_a_restart() {
    let prefix = unique_prefix("fault-kill");
    let settings = ProcessSettings::new(&prefix);
    let dynamodb = rt_relay_shared::store::dynamodb::client_from_env().await;
    let tables = rt_relay_shared::config::Tables::with_prefix(&prefix);
    let store = DynamoStore::new(dynamodb.clone(), tables.clone());
    let _ = std::fs::remove_file(&settings.checkpoint);
    create_tables(&dynamodb, &tables).await.expect("create tables");
    let key = mint_key(&dynamodb, &tables, "fault-kill", &Scope::ALL).await;

    // Run 1: ticket A is pushed and its batch checkpointed.
    let first = GatewayProcess::start(&settings).await;
    let mut before = connect_clients(&ws_url_with_key(&first.ws_url, &key), 3).await;
    let a = record_sample(&store, 8_000_001).await;
    for c in &mut before {
        assert!(c.wait_for_ticket(a.id, PUSH_WAIT).await.is_some(), "A was pushed in run 1");
    }
    let checkpoint_after_a = wait_for("the checkpoint after A", PUSH_WAIT, || async {
        let text = std::fs::read_to_string(&settings.checkpoint).ok()?;
        let cp: Value = serde_json::from_str(&text).ok()?;
        cp["shards"].as_object().is_some_and(|s| !s.is_empty()).then_some(text)
    })
    .await;

    // Freeze it (nothing in it runs from here), write B1..B5, then kill it: the records
    // are in the stream, unprocessed, and no shutdown, $disconnect or checkpoint runs.
    first.freeze();
    let mut b_ids = Vec::new();
    for i in 1..=5 {
        let t = record_sample(&store, 8_000_100 + i).await;
        b_ids.push(format!("ticket-{}-created", t.id));
    }
    let pid = first.pid();
    first.kill().await;
    drop(before);
    let stale = stored_connections(&dynamodb, &tables).await;
    assert_eq!(
        stale.len(),
        3,
        "the killed gateway left its 3 connection records (no $disconnect ran)"
    );
    assert_eq!(
        std::fs::read_to_string(&settings.checkpoint).expect("checkpoint"),
        checkpoint_after_a,
        "pid {pid} saved nothing after A"
    );

    // Run 2, with its stream reads held back until the new clients are connected (a fault
    // proxy in front of moto fails DynamoDB Streams calls; the poller retries every second).
    let moto_proxy = FaultProxy::start(&require_env("AWS_ENDPOINT_URL")).await;
    moto_proxy.add_rule(
        Match::HeaderPrefix("x-amz-target", "DynamoDBStreams_20120810."),
        Fault::dynamodb_500(),
        None,
    );
    let held = ProcessSettings { aws_endpoint: moto_proxy.url(), ..settings.clone() };
    let second = GatewayProcess::start(&held).await;
    let mut after = connect_clients(&ws_url_with_key(&second.ws_url, &key), 3).await;
    wait_for("the new connections to be stored", PUSH_WAIT, || async {
        (stored_connections(&dynamodb, &tables).await.len() == 6).then_some(())
    })
    .await;
    assert!(moto_proxy.faulted() >= 1, "the restarted poller was held back");
    moto_proxy.set(Fault::PassThrough);
    for (i, c) in after.iter_mut().enumerate() {
        for id in &b_ids {
            let got = c.wait_for_message(PUSH_WAIT, |m| m["id"] == id.as_str()).await;
            assert!(
                got.is_some(),
                "client {i} of run 2 got {id}, written while the gateway was frozen"
            );
        }
    }
    for (i, c) in after.iter_mut().enumerate() {
        drain(c).await;
        let (ids, total) = received_ids(c);
        assert!(
            !ids.contains(&format!("ticket-{}-created", a.id)),
            "client {i}: A was not pushed again (the position survived)"
        );
        assert_eq!(total, b_ids.len(), "client {i}: each B exactly once");
    }
    wait_for("run 1's stale connections to be deleted by the pushes (410)", PUSH_WAIT, || async {
        (stored_connections(&dynamodb, &tables).await.len() == 3).then_some(())
    })
    .await;
    let listed: Value = authorized_client(&key)
        .get(format!("{}/notifications?limit=100", second.http_url))
        .send()
        .await
        .expect("GET /notifications")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(6),
        "A and B1..B5 are stored: {listed}"
    );

    // A crash after pushing but before the checkpoint is written replays that batch:
    // put back the checkpoint from after A, kill run 2, start run 3. Its client gets B1..B5
    // again (at-least-once) and dedupes by id; nothing is skipped.
    second.kill().await;
    drop(after);
    std::fs::write(&settings.checkpoint, &checkpoint_after_a)
        .expect("restore the older checkpoint");
    let third_proxy = FaultProxy::start(&require_env("AWS_ENDPOINT_URL")).await;
    third_proxy.add_rule(
        Match::HeaderPrefix("x-amz-target", "DynamoDBStreams_20120810."),
        Fault::dynamodb_500(),
        None,
    );
    let third = GatewayProcess::start(&ProcessSettings {
        aws_endpoint: third_proxy.url(),
        ..settings.clone()
    })
    .await;
    let mut replayed = WsClient::connect(&ws_url_with_key(&third.ws_url, &key)).await;
    third_proxy.set(Fault::PassThrough);
    for id in &b_ids {
        assert!(
            replayed.wait_for_message(PUSH_WAIT, |m| m["id"] == id.as_str()).await.is_some(),
            "run 3 replayed {id}"
        );
    }
    let (ids, _) = received_ids(&replayed);
    assert!(
        !ids.contains(&format!("ticket-{}-created", a.id)),
        "the replay starts after the checkpoint"
    );
    report(&format!(
        "gateway pid {pid} frozen and SIGKILLed with {} records unprocessed: after the restart each new client got \
         every one exactly once, the pushed one was not replayed, the 3 stale connections were deleted (410); \
         with the checkpoint rolled back, run 3 replayed all {} (at-least-once)",
        b_ids.len(),
        b_ids.len()
    ));
    replayed.close().await;
    third.stop().await;

    for name in [&tables.tickets, &tables.notifications, &tables.connections, &tables.idempotency]
        .into_iter()
        .chain(tables.api_keys.as_ref())
    {
        let _ = dynamodb.delete_table().table_name(name).send().await;
    }
    // The checkpoint and the three processes' logs.
    let dir = settings.checkpoint.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
