//! The sharded fan-out, side by side for several shard counts in one run: `--connections`
//! (100,000) connections registered in the store directly (no sockets), one notification
//! pushed past the shard threshold, tasks of 500 connections on a real FIFO queue (moto's
//! SQS, `AWS_ENDPOINT_URL`), the gateway's SQS event source running one receiver per shard,
//! and the workers posting through the real AWS SDK to a local `@connections` stand-in that
//! answers each post after `--latency-ms` (20), as API Gateway's round trip would. Prints,
//! per shard count, the time from the push until the last connection has its notification
//! and the posts per second. Bounded: each run stops after `--limit-secs` (600).
//!
//! The connections live in the in-memory store: the plan step (one read of the
//! connections table) is the same for every shard count, and moto's Scan over 100,000 items
//! would measure moto. Run with `eval "$(bash scripts/moto.sh env)"` exported.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use rt_relay_gateway::sqs::{ensure_queues, FanoutSettings, SqsSource};
use rt_relay_shared::{
    fanout::{ApiGatewayPoster, ConnectionPoster, SqsTaskQueue},
    store::{memory::MemoryStore, Connection, ConnectionStore},
    usecases::push::{worker::PushWorker, Fanout, Payload, Sharding, DEFAULT_CONCURRENCY},
    wiring,
};
use rt_relay_tests::connections_server::ConnectionsServer;

/// The command line: `--name value` pairs, each with a default.
struct Args {
    connections: usize,
    shards: Vec<u32>,
    latency_ms: u64,
    task_connections: usize,
    limit_secs: u64,
}

impl Args {
    fn parse() -> Self {
        let argv: Vec<String> = std::env::args().collect();
        let get = |name: &str, default: &str| -> String {
            argv.iter()
                .position(|a| a == name)
                .and_then(|i| argv.get(i + 1).cloned())
                .unwrap_or_else(|| default.to_owned())
        };
        let num = |name: &str, default: &str| -> u64 {
            get(name, default).parse().unwrap_or_else(|_| panic!("{name} takes a number"))
        };
        Self {
            connections: num("--connections", "100000") as usize,
            shards: get("--shards", "1,4,16")
                .split(',')
                .map(|s| s.trim().parse().expect("--shards takes numbers"))
                .collect(),
            latency_ms: num("--latency-ms", "20"),
            task_connections: num("--task-connections", "500") as usize,
            limit_secs: num("--limit-secs", "600"),
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let store = Arc::new(MemoryStore::new());
    let now = Utc::now();
    for i in 0..args.connections {
        let c = Connection { id: format!("bench-{i:07}"), connected_at: now, expires_at: now };
        store.add(&c).await.expect("register a connection");
    }
    let sdk = wiring::sdk_config().expect("SDK configuration (AWS_ENDPOINT_URL: moto)");
    let sqs = wiring::sqs(&sdk);
    let prefix = format!("bench-{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    println!(
        "| shards | connections | tasks | time to the last connection | posts/s | per-post latency |"
    );
    println!("|---|---|---|---|---|---|");
    for &shards in &args.shards {
        let server =
            ConnectionsServer::start_with_latency(Duration::from_millis(args.latency_ms)).await;
        let poster: Arc<dyn ConnectionPoster> =
            Arc::new(ApiGatewayPoster::new(&sdk, &server.url, wiring::POST_TIMEOUT));
        let settings = FanoutSettings {
            sharding: Sharding {
                over: 0,
                shards,
                task_connections: args.task_connections,
                ..Sharding::default()
            },
            queue_name: format!("{prefix}{shards}.fifo"),
            dlq_name: format!("{prefix}{shards}-dlq.fifo"),
            batch_size: 1,
            visibility: Duration::from_secs(360),
            max_receive_count: 5,
            worker_time: Duration::from_secs(54),
        };
        let url = ensure_queues(&sqs, &settings).await.expect("create the queue in moto");
        let queue = Arc::new(SqsTaskQueue::new(sqs.clone(), url.clone()));
        let fanout = Fanout::new(store.clone(), poster).with_concurrency(DEFAULT_CONCURRENCY);
        let worker = PushWorker::new(fanout.deliverer().clone(), queue.clone());
        let fanout = fanout.with_sharding(settings.sharding, queue);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let source = tokio::spawn(
            SqsSource::new(sqs.clone(), url, worker.into(), settings.clone()).run(stopped),
        );
        let payload = Payload::from(&br#"{"id":"bench","type":"ticket.created"}"#[..]);
        let started = std::time::Instant::now();
        let outcome = fanout.push_batch(vec![payload]).await.expect("plan and enqueue");
        let limit = started + Duration::from_secs(args.limit_secs);
        while server.receivers() < args.connections && std::time::Instant::now() < limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        let reached = server.receivers();
        let _ = stop.send(true);
        let _ = source.await;
        let note = if reached < args.connections {
            format!(" (only {reached} reached within {} s)", args.limit_secs)
        } else {
            String::new()
        };
        println!(
            "| {shards} | {} | {} | {:.2} s{note} | {:.0} | {} ms |",
            args.connections,
            outcome.tasks,
            took.as_secs_f64(),
            server.posts() as f64 / took.as_secs_f64(),
            args.latency_ms
        );
    }
}
