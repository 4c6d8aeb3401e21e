//! Cold start and footprint benchmark (part 4 of `make bench`): each function's release
//! binary is started against a local Lambda Runtime API (served here, on 127.0.0.1) and
//! measured against the `hello_lambda` baseline built with the same profile:
//!
//! - init: time from exec until the process asks for its first event
//!   (`GET /2018-06-01/runtime/invocation/next`);
//! - size: the release binary's file size;
//! - peak RSS: `VmHWM` from `/proc/<pid>/status` once it has answered one realistic event
//!   (API Gateway HTTP v2 for the HTTP functions and `board`'s page, WebSocket for `ws-*`, a
//!   DynamoDB stream batch for `push-notifications`, an SQS batch of one fan-out task for
//!   `push-worker`), against the real RT and moto.
//!
//! Medians over interleaved runs. Build first (`scripts/bench.sh` does):
//! `cargo build --release -p rt-relay-tests --bins -p post-ticket -p ...`, then
//! `target/release/cold_start_bench [--runs 7] [--bin-dir target/release] [--only a,b]
//! [--env K=V]...` with RT and moto env set (`--only`: these functions and the baseline).
//! Prints rows of the combined table.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use chrono::Utc;
use rt_relay_shared::store::{dynamodb::DynamoStore, Connection, ConnectionStore};
use rt_relay_shared::usecases::push::{shard::tasks, Delivery, Payload, Plan, Sharding};
use rt_relay_shared::{auth::Scope, events::signature, wiring};
use rt_relay_tests::{
    bench::{arg, median, ms, row, Target},
    connections_server::ConnectionsServer,
    services::{delete_tables, fresh_tables, require_env, service_vars},
    stack::mint_key,
    tls_proxy::TlsCa,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// What the runtime API saw from the process under test.
#[derive(Debug)]
enum Seen {
    /// A `GET .../invocation/next` that handed out an event, and when.
    Next(Instant),
    /// `POST .../invocation/{id}/response` with its body, and when.
    Response(String, Instant),
    /// `POST .../invocation/{id}/error` or `.../init/error` with its body.
    Error(String),
}

#[derive(Debug, Default)]
struct RuntimeState {
    /// The events the next `/next` calls hand out, in order; then `/next` waits forever.
    events: std::collections::VecDeque<Value>,
    tx: Option<mpsc::UnboundedSender<Seen>>,
}

type Shared = Arc<Mutex<RuntimeState>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, RuntimeState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn report(s: &Shared, seen: Seen) {
    if let Some(tx) = &lock(s).tx {
        let _ = tx.send(seen);
    }
}

async fn next(State(s): State<Shared>) -> Response {
    let at = Instant::now();
    let event = lock(&s).events.pop_front();
    let Some(event) = event else {
        // No more events for this process: later polls wait until the process is killed.
        std::future::pending::<()>().await;
        return StatusCode::NO_CONTENT.into_response();
    };
    report(&s, Seen::Next(at));
    let deadline = (Utc::now() + chrono::Duration::seconds(30)).timestamp_millis();
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_static("bench-request-1"));
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:bench"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (headers, event.to_string()).into_response()
}

async fn response(State(s): State<Shared>, body: Bytes) -> StatusCode {
    report(&s, Seen::Response(String::from_utf8_lossy(&body).into_owned(), Instant::now()));
    StatusCode::ACCEPTED
}

async fn error(State(s): State<Shared>, body: Bytes) -> StatusCode {
    report(&s, Seen::Error(String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}

/// Serves the Runtime API on 127.0.0.1 and returns its `host:port`.
async fn start_runtime_api(state: Shared) -> String {
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// One measured start.
#[derive(Debug, Clone, Copy)]
struct Run {
    init: Duration,
    /// CPU time all its threads had used by then: less disturbed by a busy machine.
    init_cpu: Duration,
    peak_rss_kb: u64,
    file_rss_kb: u64,
    /// Anonymous resident memory (heap, stacks) and the thread count, at the same moment.
    anon_rss_kb: u64,
    threads: u64,
}

/// A process's first and second answer, and its init.
#[derive(Debug, Clone, Copy)]
struct Sample {
    first: Duration,
    warm: Duration,
    init: Duration,
    first_cpu: Duration,
    warm_cpu: Duration,
    first_faults: u64,
    warm_faults: u64,
}

impl Sample {
    fn of(answers: &[Answer], init: Duration) -> Self {
        let (a, b) = (&answers[0], &answers[1]);
        Sample {
            first: a.latency,
            warm: b.latency,
            init,
            first_cpu: a.cpu,
            warm_cpu: b.cpu,
            first_faults: a.faults,
            warm_faults: b.faults,
        }
    }
}

/// One answered event: latency from `/next` to the response, and what the process spent on
/// it meanwhile (CPU of all its threads, minor page faults: pages touched the first time).
#[derive(Debug, Clone)]
struct Answer {
    latency: Duration,
    cpu: Duration,
    faults: u64,
    value: Value,
}

/// A binary under test: its name, the event it gets and how to judge the answer.
struct Subject {
    name: &'static str,
    /// Whether it calls DynamoDB or RT (and so is measured over TLS too).
    network: bool,
    event: fn(&mut Ctx) -> Value,
    check: fn(&Value) -> bool,
}

/// What the events refer to: the ticket the last `post-ticket` run created and its first
/// transaction (for the webhook), the API key the authorizer checks, the webhook's secret.
#[derive(Debug, Default)]
struct Ctx {
    ticket_id: u64,
    transaction_id: u64,
    api_key: String,
    webhook_secret: String,
    /// Signing times already used for the current body: the webhook refuses a replayed
    /// signature (409), so every call is signed at a second not used before.
    signed_at: std::collections::HashSet<(u64, i64)>,
    /// Fan-out tasks handed to `push-worker`: each posts [`FANOUT_NOTIFICATION`] once to
    /// [`FANOUT_LIVE`].
    fanout_tasks: usize,
}

/// The live connection of `push-worker`'s task (one of the registered ones).
const FANOUT_LIVE: &str = "bench-000";
/// The id of the notification `push-worker`'s task carries.
const FANOUT_NOTIFICATION: &str = "ticket-1-fanout-bench";

/// A signed `POST /webhooks/rt` naming the ticket's first transaction, as RT's scrip sends it.
fn webhook_event(c: &mut Ctx) -> Value {
    let body = json!({"ticket_id": c.ticket_id, "transaction_id": c.transaction_id}).to_string();
    let mut at = Utc::now().timestamp();
    while !c.signed_at.insert((c.transaction_id, at)) {
        at -= 1;
    }
    let secret = rt_relay_shared::secret::Secret::new(c.webhook_secret.clone());
    let mut e = http_event(
        "POST",
        "POST /webhooks/rt",
        "/webhooks/rt",
        &[],
        Value::Null,
        Some(serde_json::from_str(&body).unwrap_or_default()),
    );
    e["headers"][signature::TIMESTAMP_HEADER] = json!(at.to_string());
    e["headers"][signature::SIGNATURE_HEADER] =
        json!(signature::sign(&secret, at, body.as_bytes()));
    e["body"] = json!(body);
    e
}

/// An HTTP API (payload 2.0) REQUEST authorizer event for `GET /tickets` with `key`.
fn authorizer_event(key: &str) -> Value {
    let now = Utc::now();
    let bearer = format!("Bearer {key}");
    json!({
        "version": "2.0", "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:bench/$default/GET/tickets",
        "identitySource": [bearer], "routeKey": "GET /tickets", "rawPath": "/tickets",
        "rawQueryString": "", "headers": { "host": "api.bench.example", "authorization": bearer },
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "api.bench.example",
            "domainPrefix": "api",
            "http": { "method": "GET", "path": "/tickets", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "cold-start-bench" },
            "requestId": "bench-request-1", "routeKey": "GET /tickets", "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(), "timeEpoch": now.timestamp_millis()
        }
    })
}

/// An EventBridge scheduled event, as the `rt-sync` schedule sends it.
fn schedule_event() -> Value {
    json!({
        "version": "0", "id": "bench-schedule-1", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": Utc::now().to_rfc3339(),
        "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/bench"],
        "detail": {}
    })
}

fn http_event(
    method: &str,
    route_key: &str,
    path: &str,
    query: &[(&str, &str)],
    path_params: Value,
    body: Option<Value>,
) -> Value {
    let now = Utc::now();
    let raw_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let params: serde_json::Map<String, Value> =
        query.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let mut e = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": { "host": "api.bench.example", "content-type": "application/json", "user-agent": "cold-start-bench" },
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "api.bench.example", "domainPrefix": "api",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "cold-start-bench" },
            "requestId": "bench-request-1", "routeKey": route_key, "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(), "timeEpoch": now.timestamp_millis()
        },
        "isBase64Encoded": false
    });
    if !params.is_empty() {
        e["queryStringParameters"] = Value::Object(params);
    }
    if !path_params.is_null() {
        e["pathParameters"] = path_params;
    }
    if let Some(b) = body {
        e["body"] = json!(b.to_string());
    }
    e
}

fn ws_event(route_key: &str, event_type: &str) -> Value {
    let now = Utc::now();
    json!({
        "headers": { "Host": "ws.bench.example", "Sec-WebSocket-Version": "13" },
        "isBase64Encoded": false,
        "requestContext": {
            "routeKey": route_key, "eventType": event_type, "extendedRequestId": "bench-ext-1",
            "requestTime": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(), "messageDirection": "IN",
            "stage": "prod", "connectedAt": now.timestamp_millis(), "requestTimeEpoch": now.timestamp_millis(),
            "identity": { "sourceIp": "127.0.0.1" }, "requestId": "bench-request-1",
            "domainName": "ws.bench.example", "connectionId": "benchConn0001=", "apiId": "bench"
        }
    })
}

fn stream_event() -> Value {
    let payload = json!({"id": "ticket-1-created", "type": "ticket.created", "ticket": {"id": 1}})
        .to_string();
    json!({ "Records": [{
        "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/bench-notifications/stream/2026-01-01T00:00:00.000",
        "dynamodb": {
            "ApproximateCreationDateTime": Utc::now().timestamp(),
            "Keys": {"id": {"S": "ticket-1-created"}},
            "NewImage": {"id": {"S": "ticket-1-created"}, "feed": {"S": "notification"}, "payload": {"S": payload}},
            "SequenceNumber": "100000000000000000001", "SizeBytes": 200, "StreamViewType": "NEW_IMAGE"
        }
    }]})
}

/// An SQS batch from the fan-out queue with one delivery task, as the push enqueues it: a
/// notification for a live connection (posted through the management API) and for one that
/// has gone (410, so the worker deletes it from the connections table).
fn fanout_task_event(c: &mut Ctx) -> Value {
    c.fanout_tasks += 1;
    let payload = json!({"id": FANOUT_NOTIFICATION, "type": "ticket.created", "ticket": {"id": 1}})
        .to_string();
    let plan = Plan {
        notifications: vec![Payload::from(payload.into_bytes())],
        deliveries: [FANOUT_LIVE, "gone-bench-000"]
            .map(|c| Delivery { connection: c.into(), notifications: vec![0] })
            .into(),
    };
    let task = tasks(&plan, &Sharding { shards: 1, ..Sharding::default() }).remove(0);
    let group = task.group();
    let body = serde_json::to_string(&task).unwrap_or_default();
    let id = uuid::Uuid::new_v4().to_string();
    json!({ "Records": [{
        "messageId": id, "receiptHandle": format!("bench-receipt-{id}"), "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1", "MessageGroupId": group,
            "MessageDeduplicationId": id, "SentTimestamp": Utc::now().timestamp_millis().to_string()
        },
        "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-fanout.fifo"
    }]})
}

fn status_is(v: &Value, code: i64) -> bool {
    v["statusCode"].as_i64() == Some(code)
}

fn subjects() -> Vec<Subject> {
    vec![
        Subject {
            name: "hello-lambda",
            network: false,
            event: |_| json!({"hello": "world"}),
            check: |v| v["hello"] == "world",
        },
        Subject {
            name: "post-ticket",
            network: true,
            event: |_| {
                let body = json!({"title": "cold start bench", "description": "Created by cold_start_bench."});
                http_event("POST", "POST /tickets", "/tickets", &[], Value::Null, Some(body))
            },
            check: |v| status_is(v, 201),
        },
        Subject {
            name: "get-ticket",
            network: true,
            event: |c| {
                let id = c.ticket_id.to_string();
                let path = format!("/tickets/{id}");
                http_event("GET", "GET /tickets/{id}", &path, &[], json!({ "id": id }), None)
            },
            check: |v| status_is(v, 200),
        },
        Subject {
            name: "list-tickets",
            network: true,
            event: |_| {
                http_event("GET", "GET /tickets", "/tickets", &[("limit", "20")], Value::Null, None)
            },
            check: |v| status_is(v, 200),
        },
        Subject {
            name: "list-notifications",
            network: true,
            event: |_| {
                http_event(
                    "GET",
                    "GET /notifications",
                    "/notifications",
                    &[("limit", "20")],
                    Value::Null,
                    None,
                )
            },
            check: |v| status_is(v, 200),
        },
        Subject {
            name: "ws-connect",
            network: true,
            event: |_| ws_event("$connect", "CONNECT"),
            check: |v| status_is(v, 200),
        },
        Subject {
            name: "ws-default",
            network: true,
            event: |_| {
                // A keep-alive ping on a young connection: `pong` without a store read (only a
                // connection near its maximum age reads the notifications table).
                let mut e = ws_event("$default", "MESSAGE");
                e["body"] = json!(r#"{"action":"ping"}"#);
                e
            },
            check: |v| status_is(v, 200),
        },
        Subject {
            name: "ws-disconnect",
            network: true,
            event: |_| ws_event("$disconnect", "DISCONNECT"),
            check: |v| status_is(v, 200),
        },
        Subject {
            name: "push-notifications",
            network: true,
            event: |_| stream_event(),
            check: |v| v["batchItemFailures"].as_array().is_some_and(Vec::is_empty),
        },
        Subject {
            name: "authorizer",
            network: true,
            event: |c| authorizer_event(&c.api_key),
            check: |v| v["isAuthorized"] == true,
        },
        Subject {
            name: "rt-sync",
            network: true,
            event: |_| schedule_event(),
            check: |v| v.is_object() && !v["outcome"].is_null(),
        },
        Subject {
            name: "rt-webhook",
            network: true,
            event: webhook_event,
            check: |v| status_is(v, 200),
        },
        Subject {
            name: "board",
            network: false,
            event: |_| http_event("GET", "GET /", "/", &[], Value::Null, None),
            check: |v| {
                status_is(v, 200) && v["body"].as_str().is_some_and(|b| b.starts_with("<!doctype"))
            },
        },
        Subject {
            name: "push-worker",
            network: true,
            event: fanout_task_event,
            check: |v| v["batchItemFailures"].as_array().is_some_and(Vec::is_empty),
        },
    ]
}

/// `--env KEY=VALUE` options (repeatable): more environment for every binary, for
/// experiments such as `--env RUST_LOG=debug`.
fn extra_env() -> Vec<(String, String)> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .filter(|w| w[0] == "--env")
        .filter_map(|w| w[1].split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// CPU time used so far by every thread of `pid` (`/proc/<pid>/task/*/schedstat`, ns).
fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        .sum();
    Duration::from_nanos(nanos)
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak RSS (`VmHWM`) and, at this moment, the part of RSS that is mapped file pages (the
/// binary's code and data it touched), the anonymous part (heap and stacks), and threads.
fn memory_kb(pid: u32) -> Option<(u64, u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_kb(&status, "VmHWM:")?,
        status_kb(&status, "RssFile:")?,
        status_kb(&status, "RssAnon:")?,
        status_kb(&status, "Threads:")?,
    ))
}

/// Minor page faults of the whole process so far (`/proc/<pid>/stat`, field 10).
fn minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name.split_whitespace().nth(7).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Starts `bin` with `env`, hands it `events` one after the other, and measures it: the
/// start-up, the memory once it answered the first, and each event's latency (from the
/// `/next` that handed it out to its response).
async fn measure(
    state: &Shared,
    bin: &Path,
    env: &[(String, String)],
    events: Vec<Value>,
    log: &Path,
) -> Result<(Run, Vec<Answer>), String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let wanted = events.len();
    {
        let mut st = lock(state);
        st.events = events.into();
        st.tx = Some(tx);
    }
    let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id().ok_or("no pid")?;
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        let mut init = None;
        let mut run = None;
        let mut handed_out = None;
        let mut answers = Vec::new();
        loop {
            tokio::select! {
                seen = rx.recv() => match seen {
                    Some(Seen::Next(at)) => {
                        if init.is_none() {
                            init = Some((at - started, cpu_time(pid)));
                        }
                        handed_out = Some((at, cpu_time(pid), minor_faults(pid)));
                    }
                    Some(Seen::Response(body, at)) => {
                        let (init, init_cpu) = init.ok_or("answered before asking for an event")?;
                        let (from, cpu0, faults0) = handed_out.take().ok_or("answered an event it was not given")?;
                        let (cpu, faults) = (cpu_time(pid).saturating_sub(cpu0), minor_faults(pid).saturating_sub(faults0));
                        if run.is_none() {
                            let (peak, file, anon, threads) = memory_kb(pid).ok_or("no VmHWM")?;
                            run = Some(Run { init, init_cpu, peak_rss_kb: peak, file_rss_kb: file, anon_rss_kb: anon, threads });
                        }
                        let value: Value = serde_json::from_str(&body).map_err(|e| format!("response not JSON: {e}"))?;
                        answers.push(Answer { latency: at - from, cpu, faults, value });
                        if answers.len() == wanted {
                            return Ok((run.ok_or("no run")?, answers));
                        }
                    }
                    Some(Seen::Error(body)) => return Err(format!("reported an error: {body}")),
                    None => return Err("runtime API gone".to_owned()),
                },
                status = child.wait() => return Err(format!("exited early: {status:?}")),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no answer within 30 s".to_owned()));
    let _ = child.kill().await;
    lock(state).tx = None;
    outcome.map_err(|e| format!("{}: {e} (log: {})", bin.display(), log.display()))
}

/// Judges every answer and notes the ticket `post-ticket` created, for `get-ticket`.
fn check(s: &Subject, answers: &[Answer], ctx: &mut Ctx) {
    for Answer { value: answer, .. } in answers {
        assert!((s.check)(answer), "{}: unexpected answer {answer}", s.name);
        if s.name == "post-ticket" {
            let body: Value =
                serde_json::from_str(answer["body"].as_str().unwrap_or("{}")).unwrap_or_default();
            ctx.ticket_id = body["id"].as_u64().expect("post-ticket answered a ticket id");
        }
    }
}

/// Sends an RT REST 2.0 request with the token and reads its JSON answer.
async fn rt_json(request: reqwest::RequestBuilder) -> Value {
    request
        .header("Authorization", format!("token {}", require_env("RT_TOKEN")))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("RT answers")
        .json()
        .await
        .expect("RT's answer is JSON")
}

/// An id RT gives as a number or as a string.
fn rt_id(id: &Value) -> u64 {
    id.as_u64().or_else(|| id.as_str().and_then(|s| s.parse().ok())).expect("RT names an id")
}

/// A ticket made straight in RT (REST 2.0), so the webhook has a transaction to name even
/// when `post-ticket` is not measured (`--only`).
async fn seed_ticket(rt: &reqwest::Client, rt_url: &str) -> u64 {
    let url = format!("{}/REST/2.0/ticket", rt_url.trim_end_matches('/'));
    let body =
        json!({"Queue": "General", "Subject": "cold start bench", "Content": "webhook target"});
    rt_id(&rt_json(rt.post(url).json(&body)).await["id"])
}

/// The id of `ticket`'s first transaction (its creation), from RT's REST 2.0 history.
async fn first_transaction(rt: &reqwest::Client, rt_url: &str, ticket: u64) -> u64 {
    let url = format!("{}/REST/2.0/ticket/{ticket}/history", rt_url.trim_end_matches('/'));
    rt_id(&rt_json(rt.get(url)).await["items"][0]["id"])
}

#[tokio::main]
async fn main() {
    let runs: usize = arg("--runs", 7);
    let bin_dir = PathBuf::from(arg("--bin-dir", "target/release".to_owned()));
    let log_dir = std::env::temp_dir().join("rt-relay-cold-start");
    std::fs::create_dir_all(&log_dir).expect("log dir");

    // Tables, a few live connections for the push function, and its @connections server.
    let (client, tables) = fresh_tables("coldstart").await;
    let store = DynamoStore::new(client.clone(), tables.clone());
    let now = Utc::now();
    for i in 0..100 {
        let c = Connection {
            id: format!("bench-{i:03}"),
            connected_at: now,
            expires_at: now + chrono::Duration::hours(3),
        };
        store.add(&c).await.expect("add connection");
    }
    let connections = ConnectionsServer::start().await;
    // push-worker's fan-out queue (FIFO, as the template's): it re-enqueues there what it
    // could not finish.
    let sqs = wiring::sqs(&wiring::sdk_config().expect("SDK configuration"));
    let queue_name =
        format!("coldstart-{}-fanout.fifo", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let queue_url = sqs
        .create_queue()
        .queue_name(queue_name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create the fan-out queue in moto")
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    // The key the authorizer is asked about, and the webhook's signing secret.
    let api_key = mint_key(&client, &tables, "cold start bench", &[Scope::TicketsRead]).await;
    let webhook_secret = format!("cold-start-bench-{}", uuid::Uuid::new_v4().simple());
    let state: Shared = Arc::default();
    let runtime_api = start_runtime_api(state.clone()).await;

    let rt_url = require_env("RT_URL");
    let common: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]bench".into()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_DEFAULT_REGION", require_env("AWS_REGION")),
        ("RUST_LOG", "info".into()),
        // Start-up rows measure the process's own work: no warm-up calls (see the TLS rows).
        ("WARMUP_TIMEOUT_MS", "0".into()),
        ("LANG", "C.UTF-8".into()),
        ("TZ", ":UTC".into()),
        ("TICKETS_TABLE", tables.tickets.clone()),
        ("NOTIFICATIONS_TABLE", tables.notifications.clone()),
        ("CONNECTIONS_TABLE", tables.connections.clone()),
        ("IDEMPOTENCY_TABLE", tables.idempotency.clone()),
        ("API_KEYS_TABLE", tables.api_keys.clone().expect("fresh tables have an API keys table")),
        ("WEBHOOK_SECRET", webhook_secret.clone()),
        ("WS_MANAGEMENT_ENDPOINT", connections.url.to_string()),
        ("PUSH_QUEUE_URL", queue_url.clone()),
        ("BOARD_WEBSOCKET_URL", "wss://ws.bench.example/prod".into()),
    ]
    .into_iter()
    .chain(service_vars())
    .map(|(k, v)| (k.to_owned(), v))
    .chain(extra_env())
    .collect();

    // `--only a,b`: measure just these functions (and the baseline), e.g. to compare profiles.
    let only: String = arg("--only", String::new());
    let subjects: Vec<Subject> = subjects()
        .into_iter()
        .filter(|s| {
            only.is_empty() || s.name == "hello-lambda" || only.split(',').any(|o| o == s.name)
        })
        .collect();
    for s in &subjects {
        let bin = bin_dir.join(s.name);
        assert!(
            bin.is_file(),
            "{} is not built: run scripts/bench.sh (or cargo build --release)",
            bin.display()
        );
    }
    // The same services behind loopback TLS fronts with a throw-away CA, which the functions
    // trust through EXTRA_CA_FILE: the first request after a cold start pays real TCP and TLS
    // handshakes unless the init warm-up opened the connections.
    let ca = TlsCa::new();
    let ca_file = ca.pem_file();
    let moto_tls = ca.proxy(&require_env("AWS_ENDPOINT_URL")).await;
    let rt_tls = ca.proxy(&rt_url).await;
    let over_tls = |warm_up: bool| -> Vec<(String, String)> {
        let mut env = common.clone();
        env.retain(|(k, _)| {
            !matches!(k.as_str(), "AWS_ENDPOINT_URL" | "RT_API_URL" | "WARMUP_TIMEOUT_MS")
        });
        env.push(("AWS_ENDPOINT_URL".into(), moto_tls.url()));
        env.push(("RT_API_URL".into(), format!("{}/REST/2.0/", rt_tls.url())));
        env.push(("EXTRA_CA_FILE".into(), ca_file.to_string_lossy().into_owned()));
        env.push(("WARMUP_TIMEOUT_MS".into(), if warm_up { "1000" } else { "0" }.into()));
        env
    };
    let mut ctx = Ctx { api_key, webhook_secret, ..Ctx::default() };
    let rt = reqwest::Client::new();
    ctx.ticket_id = seed_ticket(&rt, &rt_url).await;
    ctx.transaction_id = first_transaction(&rt, &rt_url, ctx.ticket_id).await;
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); subjects.len()];
    // Per subject: first request, warm request and init, with warm-up and without; for the
    // baseline, its first and second event on plain HTTP.
    let mut tls_on: Vec<Vec<Sample>> = vec![Vec::new(); subjects.len()];
    let mut tls_off: Vec<Vec<Sample>> = vec![Vec::new(); subjects.len()];
    let mut hello_pairs: Vec<Sample> = Vec::new();
    // The same for the other functions that call no service (`board`): their first and
    // second event, plain and local.
    let mut local_pairs: Vec<Vec<Sample>> = vec![Vec::new(); subjects.len()];
    // Round 0 warms the page cache (a cold Lambda reads its binary from a warm local disk
    // too) and RT's and moto's caches; it is not counted.
    for round in 0..=runs {
        for (i, s) in subjects.iter().enumerate() {
            let log = log_dir.join(format!("{}.log", s.name));
            let bin = bin_dir.join(s.name);
            let named = |mut env: Vec<(String, String)>| {
                env.push(("AWS_LAMBDA_FUNCTION_NAME".into(), s.name.into()));
                env
            };
            // Start-up and footprint: plain HTTP to the services, warm-up off, so init is
            // the process's own start-up work.
            // The baseline gets a second event: its first/warm gap is lambda_runtime's own.
            let mut events = vec![(s.event)(&mut ctx)];
            if !s.network {
                events.push((s.event)(&mut ctx));
            }
            let (run, answers) = measure(&state, &bin, &named(common.clone()), events, &log)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            check(s, &answers, &mut ctx);
            if round > 0 {
                results[i].push(run);
                if !s.network {
                    let pair = Sample::of(&answers, run.init);
                    if i == 0 {
                        hello_pairs.push(pair);
                    } else {
                        local_pairs[i].push(pair);
                    }
                }
            }
            if !s.network {
                continue;
            }
            for warm_up in [true, false] {
                let events = vec![(s.event)(&mut ctx), (s.event)(&mut ctx)];
                let (run, answers) = measure(&state, &bin, &named(over_tls(warm_up)), events, &log)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                check(s, &answers, &mut ctx);
                if round > 0 {
                    let sample = Sample::of(&answers, run.init);
                    if warm_up {
                        tls_on[i].push(sample)
                    } else {
                        tls_off[i].push(sample)
                    }
                }
            }
            if s.name == "post-ticket" {
                // The webhook names a transaction of the ticket the last create made.
                ctx.transaction_id = first_transaction(&rt, &rt_url, ctx.ticket_id).await;
            }
        }
        eprintln!("cold_start_bench: round {round}/{runs}");
    }
    // Every fan-out task reached its live connection through the management API.
    let fanned = connections
        .received(FANOUT_LIVE)
        .iter()
        .filter(|m| m.contains(FANOUT_NOTIFICATION))
        .count();
    assert_eq!(fanned, ctx.fanout_tasks, "push-worker's posts to {FANOUT_LIVE}");

    let size = |name: &str| std::fs::metadata(bin_dir.join(name)).map(|m| m.len()).unwrap_or(0);
    let init = |r: &[Run]| median(&r.iter().map(|x| x.init).collect::<Vec<_>>());
    let init_cpu = |r: &[Run]| median(&r.iter().map(|x| x.init_cpu).collect::<Vec<_>>());
    let kb = |r: &[Run], f: fn(&Run) -> u64| {
        let mut v: Vec<u64> = r.iter().map(f).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let rss = |r: &[Run]| kb(r, |x| x.peak_rss_kb);
    let file_rss = |r: &[Run]| kb(r, |x| x.file_rss_kb);
    let anon_rss = |r: &[Run]| kb(r, |x| x.anon_rss_kb);
    let threads = |r: &[Run]| kb(r, |x| x.threads);
    let (hello_init, hello_size, hello_rss) =
        (init(&results[0]), size("hello-lambda"), rss(&results[0]));
    let hello_file = file_rss(&results[0]);
    let hello_anon = anon_rss(&results[0]);
    // 4a, 4b, … 4z, then 4za, 4zb, …
    let mut n = 0u8;
    let mut id = || {
        let s = if n < 26 {
            format!("4{}", (b'a' + n) as char)
        } else {
            format!("4z{}", (b'a' + n - 26) as char)
        };
        n += 1;
        s
    };
    for (s, r) in subjects.iter().zip(&results).skip(1) {
        let i = init(r);
        row(
            &id(),
            &format!("{}: init (exec → first /next, warm-up off) / hello", s.name),
            i.as_secs_f64() / hello_init.as_secs_f64(),
            Target::AtMost(1.5),
            &format!(
                "{:.2} ms / {:.2} ms (median of {runs}); CPU used by then {:.2} / {:.2} ms",
                ms(i),
                ms(hello_init),
                ms(init_cpu(r)),
                ms(init_cpu(&results[0]))
            ),
        );
    }
    for s in subjects.iter().skip(1) {
        let b = size(s.name);
        row(
            &id(),
            &format!("{}: release binary size / hello", s.name),
            b as f64 / hello_size as f64,
            Target::AtMost(2.0),
            &format!("{:.2} MiB / {:.2} MiB", b as f64 / 1048576.0, hello_size as f64 / 1048576.0),
        );
    }
    for (s, r) in subjects.iter().zip(&results).skip(1) {
        let k = rss(r);
        row(
            &id(),
            &format!("{}: peak RSS handling one event / hello", s.name),
            k as f64 / hello_rss as f64,
            Target::AtMost(1.5),
            &format!(
                "{:.1} MiB / {:.1} MiB (VmHWM, median of {runs}); of which file-backed (binary pages) {:.1} / {:.1} MiB, anonymous (heap, stacks) {:.1} / {:.1} MiB; threads {} / {}",
                k as f64 / 1024.0,
                hello_rss as f64 / 1024.0,
                file_rss(r) as f64 / 1024.0,
                hello_file as f64 / 1024.0,
                anon_rss(r) as f64 / 1024.0,
                hello_anon as f64 / 1024.0,
                threads(r),
                threads(&results[0])
            ),
        );
    }
    let med =
        |v: &[Sample], f: fn(&Sample) -> Duration| median(&v.iter().map(f).collect::<Vec<_>>());
    let med_n = |v: &[Sample], f: fn(&Sample) -> u64| {
        let mut n: Vec<u64> = v.iter().map(f).collect();
        n.sort_unstable();
        n[n.len() / 2]
    };
    // What the process itself spent on its first and on its warm request: CPU of all its
    // threads and minor page faults (code and data pages touched the first time).
    let spent = |v: &[Sample]| {
        format!(
            "in-process CPU {:.2} / {:.2} ms, minor page faults {} / {}",
            ms(med(v, |x| x.first_cpu)),
            ms(med(v, |x| x.warm_cpu)),
            med_n(v, |x| x.first_faults),
            med_n(v, |x| x.warm_faults)
        )
    };
    if !hello_pairs.is_empty() {
        let (first, warm) = (med(&hello_pairs, |x| x.first), med(&hello_pairs, |x| x.warm));
        row(
            &id(),
            "hello-lambda: first event / second event (plain HTTP; lambda_runtime's own first-use cost)",
            first.as_secs_f64() / warm.as_secs_f64(),
            Target::Info,
            &format!(
                "{:.2} ms / {:.2} ms (median of {runs}); {}",
                ms(first),
                ms(warm),
                spent(&hello_pairs)
            ),
        );
    }
    // The functions that call no service: first and warm request on plain loopback.
    let hello_first = med(&hello_pairs, |x| x.first);
    for (s, pairs) in subjects.iter().zip(&local_pairs).skip(1).filter(|(s, _)| !s.network) {
        let (first, warm) = (med(pairs, |x| x.first), med(pairs, |x| x.warm));
        let figure = format!(
            "{}: first request after a cold start / warm request (calls no service)",
            s.name
        );
        let seen = format!(
            "{:.2} ms / {:.2} ms (median of {runs}); {}; hello-lambda's first event {:.2} ms",
            ms(first),
            ms(warm),
            spent(pairs),
            ms(hello_first)
        );
        row(&id(), &figure, first.as_secs_f64() / warm.as_secs_f64(), Target::AtMost(1.5), &seen);
    }
    for ((s, on), off) in subjects.iter().zip(&tls_on).zip(&tls_off) {
        if !s.network {
            continue;
        }
        let (first, warm, init_on) =
            (med(on, |x| x.first), med(on, |x| x.warm), med(on, |x| x.init));
        let (first_off, warm_off, init_off) =
            (med(off, |x| x.first), med(off, |x| x.warm), med(off, |x| x.init));
        row(
            &id(),
            &format!("{}: first request after a cold start / warm request (TLS, warm-up on)", s.name),
            first.as_secs_f64() / warm.as_secs_f64(),
            Target::AtMost(1.5),
            &format!(
                "{:.2} ms / {:.2} ms (median of {runs}); {}; without warm-up {:.2} ms / {:.2} ms ({:.2}x); init with warm-up {:.2} ms, without {:.2} ms",
                ms(first),
                ms(warm),
                spent(on),
                ms(first_off),
                ms(warm_off),
                first_off.as_secs_f64() / warm_off.as_secs_f64(),
                ms(init_on),
                ms(init_off)
            ),
        );
    }
    let _ = std::fs::remove_file(&ca_file);
    let _ = sqs.delete_queue().queue_url(&queue_url).send().await;
    delete_tables(&client, &tables).await;
}
