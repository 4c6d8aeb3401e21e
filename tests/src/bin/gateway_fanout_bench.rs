//! Fan-out benchmark through the local gateway (part 3 of `make bench`): one notification
//! to 1,000 and to 10,000 live WebSocket clients. The push function's code
//! (`PushNotifications::handle` on a stream batch, connections paged from DynamoDB on moto,
//! posts through the AWS SDK to the gateway's `@connections`, as the gateway's stream
//! poller runs it) is timed until the LAST client has the message, with the default
//! bounded concurrency against one post at a time, interleaved, and the clients that never
//! got it are counted.
//!
//! The clients are real `tokio-tungstenite` WebSockets in a child process (this binary with
//! `--swarm`): 10,000 clients and the gateway's 10,000 server sockets would not fit one
//! process's open-file limit here. Both processes stamp times with the system clock.
//!
//! Loopback has no network round trip, so concurrency can only overlap CPU work on the
//! machine's cores; `--latency-ms` (default 10) adds a stand-in for the API Gateway
//! round trip before each post for a second, modelled comparison at the largest size.
//!
//! ```text
//! cargo run --release -p rt-relay-tests --bin gateway_fanout_bench -- [--sizes 1000,10000] [--rounds 3] [--latency-ms 10]
//! ```
//! with RT and moto env set. Prints rows of the combined table.

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use futures_util::StreamExt;
use rt_relay_gateway::{Functions, Gateway, RunningGateway, ServerOptions};
use rt_relay_shared::{
    config::RtApi,
    fanout::{ApiGatewayPoster, ConnectionPoster, PostError},
    handlers::push::{PushNotifications, DEFAULT_CONCURRENCY},
    store::{dynamodb::DynamoStore, Connection, ConnectionStore, PageAfter, StoreError},
    usecases::push::Fanout,
};
use rt_relay_tests::{
    bench::{arg, ms, row, DynamoMeter, Target},
    rt::{rt_client, rt_config, token_auth},
    services::{delete_tables, dynamo, fresh_tables},
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, ChildStdout},
    sync::Semaphore,
};
use tokio_tungstenite::tungstenite::{protocol::WebSocketConfig, Message};

/// The push function's post timeout (as `PushNotifications::from_env` sets it).
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the last client may take after the push returned before the rest count as lost.
const DELIVERY_GRACE: Duration = Duration::from_secs(20);

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

// ----- the client swarm (child process) -----

/// What the swarm has received of the notification it was told to expect.
#[derive(Debug, Default)]
struct Tally {
    expected: Mutex<String>,
    received: AtomicUsize,
    duplicates: AtomicUsize,
    last_unix_nanos: AtomicU64,
}

impl Tally {
    fn expecting(&self) -> String {
        self.expected.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `--swarm <ws_url> <clients> <connect_concurrency>`: connects the clients, then obeys
/// `expect <id>` on stdin and answers `done <id> <received> <duplicates> <last_unix_ns>`.
async fn swarm(url: String, n: usize, connect_concurrency: usize) {
    let tally = Arc::new(Tally::default());
    let all_in = Arc::new(tokio::sync::Notify::new());
    let permits = Arc::new(Semaphore::new(connect_concurrency));
    let (connected_tx, mut connected_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    for _ in 0..n {
        let (url, tally, all_in, permits, connected_tx) =
            (url.clone(), tally.clone(), all_in.clone(), permits.clone(), connected_tx.clone());
        tokio::spawn(async move {
            let permit = permits.acquire_owned().await.expect("semaphore");
            let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
            let socket = tokio::time::timeout(
                Duration::from_secs(60),
                tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true),
            )
            .await;
            drop(permit);
            let mut socket = match socket {
                Ok(Ok((s, _))) => s,
                Ok(Err(e)) => {
                    eprintln!("swarm: connect failed: {e}");
                    let _ = connected_tx.send(false);
                    return;
                }
                Err(_) => {
                    eprintln!("swarm: connect timed out");
                    let _ = connected_tx.send(false);
                    return;
                }
            };
            let _ = connected_tx.send(true);
            let mut last_id = String::new();
            while let Some(Ok(msg)) = socket.next().await {
                let Message::Text(text) = msg else { continue };
                let at = unix_nanos();
                let id = serde_json::from_str::<Value>(text.as_str())
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                if id == last_id {
                    tally.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if id == tally.expecting() {
                    tally.last_unix_nanos.fetch_max(at, Ordering::Relaxed);
                    if tally.received.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        all_in.notify_one();
                    }
                }
                last_id = id;
            }
        });
    }
    drop(connected_tx);
    let (mut ok, mut failed) = (0usize, 0usize);
    // Each client reports once; the tasks live on (reading), so count rather than wait for
    // the channel to close.
    while ok + failed < n {
        let Some(up) = connected_rx.recv().await else {
            break;
        };
        if up {
            ok += 1;
        } else {
            failed += 1;
        }
        if (ok + failed) % 2000 == 0 {
            eprintln!("swarm: {ok} connected, {failed} failed");
        }
    }
    println!("connected {ok} {failed}");
    // Commands arrive on stdin, read on a plain thread (tokio's stdin needs a feature the
    // functions do not use, and features are unified across the workspace build).
    let (cmd_tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if cmd_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = commands.recv().await {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("expect"), Some(id)) => {
                *tally.expected.lock().unwrap_or_else(|p| p.into_inner()) = id.to_owned();
                tally.received.store(0, Ordering::Relaxed);
                tally.duplicates.store(0, Ordering::Relaxed);
                tally.last_unix_nanos.store(0, Ordering::Relaxed);
                println!("ready {id}");
            }
            (Some("wait"), Some(ms)) => {
                let deadline =
                    tokio::time::Instant::now() + Duration::from_millis(ms.parse().unwrap_or(0));
                // Re-check after every wake-up: a permit left by an earlier round (whose
                // messages all arrived before its `wait`) must not end this wait early.
                while tally.received.load(Ordering::Relaxed) < n {
                    if tokio::time::timeout_at(deadline, all_in.notified()).await.is_err() {
                        break;
                    }
                }
                println!(
                    "done {} {} {} {}",
                    tally.expecting(),
                    tally.received.load(Ordering::Relaxed),
                    tally.duplicates.load(Ordering::Relaxed),
                    tally.last_unix_nanos.load(Ordering::Relaxed)
                );
            }
            _ => eprintln!("swarm: unknown command {line:?}"),
        }
    }
}

// ----- the driver (parent process) -----

/// The child process holding the clients.
struct Swarm {
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Swarm {
    async fn start(ws_url: &str, n: usize) -> Swarm {
        let exe = std::env::current_exe().expect("own path");
        let mut child = tokio::process::Command::new(exe)
            .args(["--swarm", ws_url, &n.to_string(), "200"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the client swarm");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut swarm = Swarm { child, stdin, stdout };
        let line = swarm.line(Duration::from_secs(300)).await;
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.first(), Some(&"connected"), "swarm said {line:?}");
        assert_eq!(
            words.get(1).and_then(|w| w.parse::<usize>().ok()),
            Some(n),
            "not every client connected: {line:?}"
        );
        swarm
    }

    async fn line(&mut self, limit: Duration) -> String {
        tokio::time::timeout(limit, self.stdout.next_line())
            .await
            .expect("swarm answers in time")
            .expect("swarm stdout")
            .expect("swarm still running")
    }

    async fn send(&mut self, cmd: &str) {
        self.stdin.write_all(format!("{cmd}\n").as_bytes()).await.expect("swarm stdin");
        self.stdin.flush().await.expect("swarm stdin");
    }

    /// Tells the swarm which notification id to count.
    async fn expect(&mut self, id: &str) {
        self.send(&format!("expect {id}")).await;
        let line = self.line(Duration::from_secs(10)).await;
        assert_eq!(line, format!("ready {id}"));
    }

    /// Waits (bounded) for every client to have it: (received, duplicates, last receipt).
    async fn wait(&mut self, id: &str, limit: Duration) -> (usize, usize, u64) {
        self.send(&format!("wait {}", limit.as_millis())).await;
        loop {
            let line = self.line(limit + Duration::from_secs(10)).await;
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() == 5 && w[0] == "done" && w[1] == id {
                let num = |s: &str| s.parse::<u64>().expect("number");
                return (num(w[2]) as usize, num(w[3]) as usize, num(w[4]));
            }
        }
    }

    async fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.kill().await;
    }
}

/// The API Gateway Management API with a fixed extra round trip before each post: the
/// network time loopback does not have.
#[derive(Debug)]
struct DelayedPoster {
    inner: Arc<dyn ConnectionPoster>,
    delay: Duration,
}

#[async_trait]
impl ConnectionPoster for DelayedPoster {
    async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PostError> {
        tokio::time::sleep(self.delay).await;
        self.inner.post(connection_id, data).await
    }
}

/// One page of connection ids and the cursor of the next.
type ConnectionPage = (Vec<String>, Option<String>);

/// The connections table read once from moto and then served from memory: a stand-in for
/// DynamoDB's Scan, which answers a 500-item page in milliseconds where moto takes a few
/// hundred at 10,000 items. Everything else (SDK posts, the gateway, the sockets) is real.
#[derive(Debug)]
struct ReplayStore {
    inner: Arc<DynamoStore>,
    pages: Mutex<HashMap<Option<String>, ConnectionPage>>,
}

#[async_trait]
impl ConnectionStore for ReplayStore {
    async fn add(&self, c: &Connection) -> Result<(), StoreError> {
        self.inner.add(c).await
    }
    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.inner.remove(id).await
    }
    async fn page(&self, page: &PageAfter) -> Result<(Vec<String>, Option<String>), StoreError> {
        let key = page.after.clone();
        if let Some(got) = self.pages.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(got.clone());
        }
        let got = self.inner.page(page).await?;
        self.pages.lock().unwrap_or_else(|p| p.into_inner()).insert(key, got.clone());
        Ok(got)
    }
}

/// One timed push.
#[derive(Debug, Clone, Copy)]
struct Push {
    /// Push start to the last client's receipt.
    to_last: Duration,
    /// Time the push spent awaiting DynamoDB (the connections Scan pages).
    db: Duration,
    lost: usize,
    duplicates: usize,
}

fn stream_batch(payload: &str, seq: u64) -> aws_lambda_events::dynamodb::Event {
    serde_json::from_value(json!({ "Records": [{
        "eventID": format!("bench-{seq}"), "eventName": "INSERT", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"id": {"S": "bench"}},
            "NewImage": {"id": {"S": "bench"}, "payload": {"S": payload}},
            "SequenceNumber": format!("{seq:021}"), "SizeBytes": 100, "StreamViewType": "NEW_IMAGE"
        }
    }]}))
    .expect("Lambda DynamoDB event shape")
}

struct Bench {
    store: Arc<DynamoStore>,
    meter: DynamoMeter,
    gateway: RunningGateway,
    swarm: Swarm,
    n: usize,
    seq: u64,
}

impl Bench {
    async fn start(n: usize) -> Bench {
        let (client, tables) = fresh_tables(&format!("fanout{n}")).await;
        let meter = DynamoMeter::default();
        let store = Arc::new(DynamoStore::new(meter.meter(&client), tables));
        let rt = rt_client(&rt_config(RtApi::Rest2, token_auth()));
        let functions =
            Functions::new(rt, store.clone(), "General".into(), Duration::from_secs(10));
        // The push is driven here rather than by the stream poller, so both concurrency
        // settings run against the same clients in one run.
        let gateway = Gateway::start_with(ServerOptions::loopback(), functions, None)
            .await
            .expect("gateway starts");
        let started = Instant::now();
        let swarm = Swarm::start(&gateway.ws_url(), n).await;
        eprintln!(
            "gateway_fanout_bench: {n} clients connected in {:.1} s ({} live in the gateway)",
            started.elapsed().as_secs_f64(),
            gateway.connections().len()
        );
        Bench { store, meter, gateway, swarm, n, seq: 0 }
    }

    /// The push function as the gateway's poller builds it: the SDK poster pointed at the
    /// gateway's `@connections`, optionally behind a stand-in round trip.
    async fn pusher(
        &self,
        concurrency: usize,
        latency: Duration,
        connections: Arc<dyn ConnectionStore>,
    ) -> PushNotifications {
        let endpoint = url::Url::parse(&self.gateway.management_endpoint()).expect("endpoint URL");
        let real: Arc<dyn ConnectionPoster> = Arc::new(ApiGatewayPoster::new(
            &rt_relay_shared::wiring::sdk_config().expect("AWS SDK configuration"),
            &endpoint,
            POST_TIMEOUT,
        ));
        let poster = if latency.is_zero() {
            real
        } else {
            Arc::new(DelayedPoster { inner: real, delay: latency })
        };
        Fanout::new(connections, poster).with_concurrency(concurrency).into()
    }

    async fn push(&mut self, push: &PushNotifications, tag: &str) -> Push {
        self.seq += 1;
        let id = format!("bench-{}-{tag}-{}", self.n, self.seq);
        self.swarm.expect(&id).await;
        let payload = json!({ "id": id, "type": "ticket.created", "ticket": { "id": self.seq, "title": "fan-out bench" } });
        let batch = stream_batch(&payload.to_string(), self.seq);
        let db0 = self.meter.metrics().db_nanos;
        let t0 = unix_nanos();
        let resp = push.handle(batch).await;
        let db = Duration::from_nanos(self.meter.metrics().db_nanos - db0);
        assert!(resp.batch_item_failures.is_empty(), "the push reported failures");
        let (received, duplicates, last) = self.swarm.wait(&id, DELIVERY_GRACE).await;
        let to_last = Duration::from_nanos(last.saturating_sub(t0));
        Push { to_last, db, lost: self.n - received, duplicates }
    }

    async fn stop(self) {
        self.swarm.stop().await;
        let t = self.store.tables().clone();
        self.gateway.shutdown().await;
        delete_tables(&dynamo().await, &t).await;
    }
}

fn med(v: &[Push], f: fn(&Push) -> Duration) -> Duration {
    let mut d: Vec<Duration> = v.iter().map(f).collect();
    d.sort();
    d[d.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--swarm") {
        let n = args.get(3).and_then(|a| a.parse().ok()).expect("client count");
        let c = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(200);
        swarm(args[2].clone(), n, c).await;
        return;
    }
    let sizes: Vec<usize> = arg("--sizes", "1000,10000".to_owned())
        .split(',')
        .map(|s| s.trim().parse().expect("--sizes: numbers"))
        .collect();
    let rounds: usize = arg("--rounds", 3);
    let latency = Duration::from_millis(arg("--latency-ms", 10));
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let mut letter = b'a';
    let mut next_id = || {
        let s = format!("3{}", letter as char);
        letter += 1;
        s
    };
    let mut lost_total = 0usize;
    let mut dup_total = 0usize;
    let mut pushes = 0usize;
    for &n in &sizes {
        let mut bench = Bench::start(n).await;
        let moto: Arc<dyn ConnectionStore> = bench.store.clone();
        let replay: Arc<dyn ConnectionStore> =
            Arc::new(ReplayStore { inner: bench.store.clone(), pages: Mutex::default() });
        let modes = [
            ("bounded", bench.pusher(DEFAULT_CONCURRENCY, Duration::ZERO, moto.clone()).await),
            ("serial", bench.pusher(1, Duration::ZERO, moto.clone()).await),
            (
                "bounded-replay",
                bench.pusher(DEFAULT_CONCURRENCY, Duration::ZERO, replay.clone()).await,
            ),
            ("serial-replay", bench.pusher(1, Duration::ZERO, replay.clone()).await),
        ];
        // Warm-up: connection pools, moto's scan path, and the replayed connection list.
        bench.push(&modes[0].1, "warm").await;
        bench.push(&modes[2].1, "warm").await;
        let mut results: HashMap<&str, Vec<Push>> = HashMap::new();
        for round in 0..rounds {
            // Rotate the order so no mode always runs right after the same one.
            for k in 0..modes.len() {
                let (tag, push) = &modes[(round + k) % modes.len()];
                let p = bench.push(push, tag).await;
                eprintln!(
                    "gateway_fanout_bench: {n} clients, {tag}: last client after {:.0} ms, lost {}",
                    ms(p.to_last),
                    p.lost
                );
                results.entry(tag).or_default().push(p);
            }
        }
        let mut modelled = None;
        if n == largest && !latency.is_zero() {
            let bounded_l = bench.pusher(DEFAULT_CONCURRENCY, latency, replay.clone()).await;
            let serial_l = bench.pusher(1, latency, replay.clone()).await;
            let b = bench.push(&bounded_l, "bounded-latency").await;
            eprintln!(
                "gateway_fanout_bench: {n} clients, bounded with {latency:?} per post: {:.0} ms",
                ms(b.to_last)
            );
            let s = bench.push(&serial_l, "serial-latency").await;
            eprintln!(
                "gateway_fanout_bench: {n} clients, serial with {latency:?} per post: {:.0} ms",
                ms(s.to_last)
            );
            modelled = Some((b, s));
        }
        bench.stop().await;

        for p in results.values().flatten().chain(modelled.iter().flat_map(|(x, y)| [x, y])) {
            lost_total += p.lost;
            dup_total += p.duplicates;
            pushes += 1;
        }
        let target = if n == largest { Target::AtLeast(30.0) } else { Target::Info };
        for (bounded, serial, how) in [
            ("bounded", "serial", "connections paged from moto"),
            ("bounded-replay", "serial-replay", "connection list replayed from memory"),
        ] {
            let (b, s) = (&results[bounded], &results[serial]);
            let (bt, st) = (med(b, |p| p.to_last), med(s, |p| p.to_last));
            let (bdb, sdb) = (med(b, |p| p.db), med(s, |p| p.db));
            row(
                &next_id(),
                &format!("fan-out to {n} clients, loopback, {how}: one-at-a-time / bounded ({DEFAULT_CONCURRENCY}), until the last client has it"),
                st.as_secs_f64() / bt.as_secs_f64(),
                if bounded == "bounded" { target } else { Target::Info },
                &format!(
                    "{:.0} ms / {:.0} ms (median of {rounds}); awaiting moto's Scan pages {:.0} / {:.0} ms",
                    ms(st),
                    ms(bt),
                    ms(sdb),
                    ms(bdb)
                ),
            );
        }
        if let Some((b, s)) = modelled {
            row(
                &next_id(),
                &format!(
                    "fan-out to {n} clients, {} ms stand-in API Gateway round trip per post, connection list replayed: one-at-a-time / bounded",
                    latency.as_millis()
                ),
                s.to_last.as_secs_f64() / b.to_last.as_secs_f64(),
                target,
                &format!("{:.0} ms / {:.0} ms (one run each)", ms(s.to_last), ms(b.to_last)),
            );
        }
    }
    println!(
        "| {} | fan-out: clients that never got a notification, over all {pushes} pushes | {lost_total} | = 0 | {} | duplicates received: {dup_total} |",
        next_id(),
        if lost_total == 0 { "yes" } else { "**no**" }
    );
}
