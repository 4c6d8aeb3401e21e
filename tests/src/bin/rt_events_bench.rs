//! RT events benchmark, over the real RT, moto and the local gateway:
//!
//! 1. delay from an RT action (a comment made through RT's REST API) to the WebSocket
//!    message, through the webhook path (RT's scrip, sync off) and through the sync path
//!    (no webhook for this relay, the gateway's sync every 2 s as `make dev` runs it):
//!    p50/p95/max over `RT_EVENTS_BENCH_EVENTS` events (default 50) each, measured from the
//!    moment RT answered the action and from the moment it was sent;
//! 2. how far the sync falls behind a burst of `RT_EVENTS_BENCH_BURST` RT transactions
//!    (default 1,000: subject + priority changes, two transactions each, 8 at a time), run
//!    every 2 s with the function's default bounds: the largest `behind` and `lag_seconds`
//!    any run reported, and how long after the burst's last transaction it had caught up
//!    (`RT_EVENTS_BENCH_BURST=0` skips it).
//!
//! `cargo run --release -p rt-relay-tests --bin rt_events_bench` with RT and moto running
//! (`scripts/rt.sh start`, `scripts/moto.sh start`, their env exported).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{stream, StreamExt};
use rt_relay_shared::{
    config::RtApi,
    events::{
        dynamodb::DynamoEvents,
        ingest::Ingest,
        sync::{Sync, SyncSettings},
    },
    rt::transactions_client_from_config,
};
use rt_relay_tests::{
    bench::percentile,
    rt::{rt_config, token_auth},
    rt_actions::{new_webhook_secret, RtActor, WebhookTarget},
    services::fresh_tables,
    stack::{Stack, WsClient},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

fn count(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Comments `n` times on a fresh ticket and times each comment to its WebSocket message.
async fn delays(stack: &Stack, ws: &str, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let actor = RtActor::new();
    let mut client = WsClient::connect(ws).await;
    let ticket = actor.create("General", "events bench", "bench").await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let _ = stack;
    let (mut from_answer, mut from_send) = (Vec::new(), Vec::new());
    for i in 0..n {
        let text = format!("bench {i} {tag}");
        let sent = Instant::now();
        actor.comment(ticket, &text).await;
        let answered = Instant::now();
        let got = client
            .wait_for_message(WAIT, |v| v["excerpt"].as_str() == Some(text.as_str()))
            .await
            .unwrap_or_else(|| panic!("event {i} never arrived"));
        let _ = got;
        let arrived = Instant::now();
        from_answer.push(arrived - answered);
        from_send.push(arrived - sent);
        client.received.clear();
    }
    client.close().await;
    (from_answer, from_send)
}

fn report(path: &str, (from_answer, from_send): &(Vec<Duration>, Vec<Duration>)) {
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    println!(
        "| {path} | {} | {} | {} | {} | {} | {} |",
        from_answer.len(),
        ms(percentile(from_answer, 0.5)),
        ms(percentile(from_answer, 0.95)),
        ms(max(from_answer)),
        ms(percentile(from_send, 0.5)),
        ms(percentile(from_send, 0.95)),
    );
}

async fn burst(transactions: usize) {
    let (client, tables) = fresh_tables("bench-burst").await;
    let rt = transactions_client_from_config(&rt_config(RtApi::Rest2, token_auth()))
        .unwrap_or_else(|e| panic!("RT: {e}"));
    let events = Arc::new(DynamoEvents::new(client, tables));
    let sync = Arc::new(Sync::new(
        rt.clone(),
        Ingest::new(rt, events.clone()),
        events,
        SyncSettings::default(),
    ));
    sync.run().await.unwrap_or_else(|e| panic!("first sync run: {e}"));
    let actor = RtActor::new();
    let mut tickets = Vec::new();
    for i in 0..10 {
        tickets.push(actor.create("General", &format!("burst {i}"), "burst").await);
    }
    let started = Instant::now();
    let changes = transactions / 2;
    let producer = tokio::spawn(async move {
        stream::iter(0..changes)
            .for_each_concurrent(8, |i| {
                let (actor, ticket) = (actor.clone(), tickets[i % tickets.len()]);
                async move {
                    let body = json!({"Subject": format!("burst change {i}"), "Priority": i % 90});
                    actor.update(ticket, body).await;
                }
            })
            .await;
        Instant::now()
    });
    let (mut max_behind, mut max_lag, mut runs) = (0u64, 0i64, 0usize);
    let mut burst_done: Option<Instant> = None;
    let caught_up = loop {
        let report = sync.run().await.unwrap_or_else(|e| panic!("sync run: {e}"));
        runs += 1;
        max_behind = max_behind.max(report.behind);
        max_lag = max_lag.max(report.lag_seconds);
        println!(
            "  run {runs:>3} at {:>5.1} s: {:>4} transactions, behind {:>4}, lag {:>3} s",
            started.elapsed().as_secs_f64(),
            report.transactions,
            report.behind,
            report.lag_seconds
        );
        if burst_done.is_none() && producer.is_finished() {
            burst_done = Some(Instant::now());
        }
        if let (Some(done), 0) = (burst_done, report.behind) {
            if report.transactions == 0 || Instant::now() > done {
                break Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let last_txn = producer.await.unwrap_or_else(|e| panic!("producer: {e}"));
    println!(
        "\n| burst | RT transactions | burst took | sync runs | max behind | max lag | caught up after the burst's end |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {transactions} | {} | {:.1} s | {runs} | {max_behind} | {max_lag} s | {:.1} s |",
        transactions,
        (last_txn - started).as_secs_f64(),
        caught_up.saturating_duration_since(last_txn).as_secs_f64(),
    );
}

#[tokio::main]
async fn main() {
    let n = count("RT_EVENTS_BENCH_EVENTS", 50);
    let burst_size = count("RT_EVENTS_BENCH_BURST", 1000);

    let secret = new_webhook_secret();
    let stack = Stack::with_vars("bench-webhook", &[("WEBHOOK_SECRET", secret.clone())]).await;
    let gateway = stack.start().await;
    let target = WebhookTarget::register(&format!("{}/webhooks/rt", gateway.http_url()), &secret);
    let webhook = delays(&stack, &stack.ws_url(&gateway), n).await;
    drop(target);
    gateway.shutdown().await;
    stack.clean_up().await;

    let stack =
        Stack::with_vars("bench-sync", &[("GATEWAY_SYNC_INTERVAL_MS", "2000".into())]).await;
    let gateway = stack.start().await;
    // Let the first run position the cursor before the first action.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sync = delays(&stack, &stack.ws_url(&gateway), n).await;
    gateway.shutdown().await;
    stack.clean_up().await;

    println!("\n| path | events | p50 from RT's answer | p95 | max | p50 from sending the action | p95 |");
    println!("|---|---|---|---|---|---|---|");
    report("webhook (scrip)", &webhook);
    report("sync (every 2 s)", &sync);
    if burst_size > 0 {
        println!(
            "\nburst of {burst_size} RT transactions, sync every 2 s (page 100, 20 pages, 40 s per run):"
        );
        burst(burst_size).await;
    }
}
