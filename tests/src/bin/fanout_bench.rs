//! Fan-out benchmark: time to push one notification to N connections (default 1,000)
//! through the real push handler (connections paged from DynamoDB on moto, posts through
//! the AWS SDK to a local `@connections` server), one post at a time against the bounded
//! concurrency, interleaved in one run. Prints a table; asserts nothing about time.
//!
//! `cargo run --release -p rt-relay-tests --bin fanout_bench -- [connections] [rounds] [latency_ms]`
//! where `latency_ms` (default 0) delays each `@connections` answer, standing in for the
//! round trip to API Gateway that loopback does not have.
//! with moto running (`scripts/moto.sh start`, env from `scripts/moto.sh env`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use rt_relay_shared::{
    fanout::ApiGatewayPoster,
    handlers::push::{PushNotifications, DEFAULT_CONCURRENCY},
    store::{dynamodb::DynamoStore, Connection, ConnectionStore},
    usecases::push::Fanout,
};
use rt_relay_tests::{connections_server::ConnectionsServer, services::fresh_tables};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let latency_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let (client, tables) = fresh_tables("fanout-bench").await;
    let store = Arc::new(DynamoStore::new(client, tables));
    let now = Utc::now();
    for i in 0..n {
        let c = Connection {
            id: format!("c{i:06}"),
            connected_at: now,
            expires_at: now + chrono::Duration::hours(3),
        };
        store.add(&c).await.expect("add connection");
    }
    let server = ConnectionsServer::start_with_latency(Duration::from_millis(latency_ms)).await;
    let poster = Arc::new(ApiGatewayPoster::new(
        &rt_relay_shared::wiring::sdk_config().expect("AWS SDK configuration"),
        &server.url,
        Duration::from_secs(10),
    ));
    let serial =
        PushNotifications::from(Fanout::new(store.clone(), poster.clone()).with_concurrency(1));
    let bounded = PushNotifications::from(Fanout::new(store.clone(), poster));
    let payload = br#"{"id":"bench","type":"ticket.created"}"#;

    let (mut t_serial, mut t_bounded) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (push, times) in [(&serial, &mut t_serial), (&bounded, &mut t_bounded)] {
            let start = Instant::now();
            let stats = push.fan_out(payload).await.expect("fan-out");
            times.push(start.elapsed());
            assert_eq!(stats.delivered, n, "every connection must receive it");
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (s, b) = (median(&mut t_serial), median(&mut t_bounded));
    println!("fan-out of one notification to {n} connections, {latency_ms} ms per post added, median of {rounds} interleaved rounds");
    println!("| mode | concurrency | time (ms) |");
    println!("|---|---|---|");
    println!("| one at a time | 1 | {:.0} |", s.as_secs_f64() * 1e3);
    println!("| bounded | {DEFAULT_CONCURRENCY} | {:.0} |", b.as_secs_f64() * 1e3);
    println!(
        "speed-up: {:.1}x; posts answered: {}",
        s.as_secs_f64() / b.as_secs_f64(),
        server.posts()
    );
}
