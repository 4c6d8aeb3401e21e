//! Load, bounded in count and time: 500 real WebSocket clients on the local gateway
//! (in-process, over the real RT and moto) while 50 tickets are created concurrently
//! through the HTTP API. Every client must receive every ticket's notification (deduped by
//! notification id). The run prints delivered/expected, duplicates, and the push latency
//! percentiles; it asserts delivery, never timing.
//!
//! Push latency of one delivery = when the client received the notification minus when
//! its `POST /tickets` was SENT (so it covers RT's create, the DynamoDB transaction, the
//! stream poll and the fan-out). The same deliveries measured from when the POST's 201
//! was RECEIVED are printed too (negative when the push beat the HTTP answer).
//!
//! Sizes and bounds: `LOAD_CLIENTS` (default 500), `LOAD_TICKETS` (50); everything must be
//! delivered within `DELIVERY_BOUND` of the first POST.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures_util::{future::join_all, stream, StreamExt};
use rt_relay_tests::stack::Stack;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const DELIVERY_BOUND: Duration = Duration::from_secs(240);
const CONNECT_CONCURRENCY: usize = 50;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Milliseconds at the given percentile (nearest rank) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Prints a line of the run's figures straight to stderr, past the test harness's output
/// capture, so `make test` shows them even when the test passes.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// One client's receipts: notification id → when each copy arrived.
type Receipts = HashMap<String, Vec<Instant>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_receive_every_one_of_fifty_concurrent_tickets() {
    let clients = env_count("LOAD_CLIENTS", 500);
    let tickets = env_count("LOAD_TICKETS", 50);
    let mut stack = Stack::new("load").await;
    // 50 creates queue up on RT's SQLite write lock; give each room (the HTTP API's own
    // integration timeout is 30 s).
    stack.config.rt.timeout = Duration::from_secs(25);
    // Every client uses the stack's one key: lift its connection limit above the swarm.
    stack.config.max_connections_per_key = clients.max(1);
    let gateway = stack.start().await;
    let ws_url = stack.ws_url(&gateway);

    // Connect every client (bounded concurrency, as a reconnect storm would be throttled).
    let connect_started = Instant::now();
    let sockets: Vec<_> = stream::iter(0..clients)
        .map(|i| {
            let url = ws_url.clone();
            async move {
                let (socket, _) = tokio::time::timeout(
                    Duration::from_secs(30),
                    tokio_tungstenite::connect_async(url),
                )
                .await
                .unwrap_or_else(|_| panic!("client {i}: connect timed out"))
                .unwrap_or_else(|e| panic!("client {i}: connect failed: {e} (raise `ulimit -n`?)"));
                socket
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let connect_took = connect_started.elapsed();
    assert_eq!(gateway.connections().len(), clients, "every client is connected");

    // Each client reads until it holds `tickets` distinct notifications or the bound ends.
    let deadline = tokio::time::Instant::now() + DELIVERY_BOUND;
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let mut got: Receipts = HashMap::new();
                while got.len() < tickets {
                    match tokio::time::timeout_at(deadline, socket.next()).await {
                        Ok(Some(Ok(Message::Text(text)))) => {
                            let at = Instant::now();
                            if let Some(id) = serde_json::from_str::<Value>(text.as_str())
                                .ok()
                                .and_then(|v| v["id"].as_str().map(str::to_owned))
                            {
                                got.entry(id).or_default().push(at);
                            }
                        }
                        Ok(Some(Ok(_))) => {}
                        Ok(Some(Err(_)) | None) | Err(_) => break,
                    }
                }
                // Keep the socket open until every reader is done: a close now would
                // turn into 410s for the pushes still on their way to others.
                (got, socket)
            })
        })
        .collect();

    // Create the tickets concurrently through the HTTP API.
    let http = stack.http();
    let base = gateway.http_url();
    let posts_started = Instant::now();
    let posts = join_all((0..tickets).map(|i| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let sent = Instant::now();
            let key = format!("load-{i}-{}", uuid::Uuid::new_v4().simple());
            // A client retries a 5xx with the same Idempotency-Key, as the API asks: under
            // 50 concurrent creates RT's SQLite write lock can push one past the timeout,
            // and the retry then records the ticket RT made instead of a second one.
            let mut attempt = 0;
            let (status, body) = loop {
                attempt += 1;
                let resp = http
                    .post(format!("{base}/tickets"))
                    .header("idempotency-key", &key)
                    .json(
                        &json!({ "title": format!("load ticket {i}"), "description": "load test" }),
                    )
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("POST {i}: {e}"));
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                if status < 500 || attempt == 3 {
                    break (status, body);
                }
                eprintln!("load: POST {i} answered {status}; retrying with the same key");
            };
            let answered = Instant::now();
            assert_eq!(status, 201, "POST {i}: {body}");
            let id = body["id"].as_u64().unwrap_or_else(|| panic!("POST {i}: no id in {body}"));
            (format!("ticket-{id}-created"), sent, answered)
        }
    }))
    .await;
    let posts_took = posts_started.elapsed();
    let expected_ids: HashMap<String, (Instant, Instant)> =
        posts.into_iter().map(|(id, s, a)| (id, (s, a))).collect();
    assert_eq!(expected_ids.len(), tickets, "every POST created its own ticket");

    let mut delivered = 0usize;
    let mut duplicates = 0usize;
    let mut strays = 0usize;
    let mut from_sent = Vec::with_capacity(clients * tickets);
    let mut from_answer = Vec::with_capacity(clients * tickets);
    let mut incomplete = Vec::new();
    let mut sockets = Vec::with_capacity(clients);
    for (i, reader) in readers.into_iter().enumerate() {
        let (got, socket) = reader.await.expect("reader task");
        sockets.push(socket);
        let mut missing = 0;
        for (id, (sent, answered)) in &expected_ids {
            match got.get(id).and_then(|copies| copies.first()) {
                Some(at) => {
                    delivered += 1;
                    from_sent.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
                    let signed = if *at >= *answered {
                        at.duration_since(*answered).as_secs_f64()
                    } else {
                        -answered.duration_since(*at).as_secs_f64()
                    };
                    from_answer.push(signed * 1000.0);
                }
                None => missing += 1,
            }
        }
        duplicates += got.values().map(|c| c.len().saturating_sub(1)).sum::<usize>();
        strays += got.keys().filter(|id| !expected_ids.contains_key(*id)).count();
        if missing > 0 {
            incomplete.push((i, missing));
        }
    }
    let all_delivered = posts_started.elapsed();
    from_sent.sort_by(f64::total_cmp);
    from_answer.sort_by(f64::total_cmp);
    let expected = clients * tickets;
    report(&format!("load: {clients} WebSocket clients connected in {connect_took:.2?}; {tickets} tickets created concurrently in {posts_took:.2?}"));
    report(&format!(
        "load: delivered/expected {delivered}/{expected}, duplicates {duplicates}, strays {strays}, all in {all_delivered:.2?} after the first POST"
    ));
    report(&format!(
        "load: push latency from POST sent: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&from_sent, 50.0),
        percentile(&from_sent, 99.0),
        from_sent.last().copied().unwrap_or(f64::NAN)
    ));
    report(&format!(
        "load: push latency from the 201 received: p50 {:.0} ms, p99 {:.0} ms",
        percentile(&from_answer, 50.0),
        percentile(&from_answer, 99.0)
    ));
    assert!(
        incomplete.is_empty(),
        "{} clients missed notifications within {DELIVERY_BOUND:?} (client, missing): {:?}",
        incomplete.len(),
        &incomplete[..incomplete.len().min(10)]
    );
    assert_eq!(delivered, expected);
    assert_eq!(strays, 0, "no notification other than this run's");

    drop(sockets);
    gateway.shutdown().await;
    stack.clean_up().await;
}
