//! Create-overhead benchmark (part 1 of `make bench`): `POST /tickets` through the local
//! stack (the gateway's HTTP API, `lambda_http`'s adapter, `PostTicket`, RT and DynamoDB on
//! moto) against a direct RT REST 2.0 create, interleaved, p50 and p95.
//!
//! moto is far slower than DynamoDB, so the time spent inside DynamoDB calls is measured
//! apart (the stack's `DynamoStore`, built here and handed to the gateway, counts it), and
//! the stack's own overhead is `stack - time in DynamoDB - RT direct`. The time the stack
//! spends in RT calls (the create, and the read-back of RT's fields) is measured too, to
//! show where the overhead goes.
//!
//! ```text
//! cargo run --release -p rt-relay-tests --bin create_bench -- [--creates 50]
//! ```
//! with RT and moto env set. Prints rows of the combined table.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use rt_relay_gateway::{Functions, Gateway, ServerOptions};
use rt_relay_shared::{
    config::RtApi,
    rt::{RtClient, RtCreate, RtError, RtPage, RtQuery, RtTicket},
    store::dynamodb::DynamoStore,
};
use rt_relay_tests::{
    bench::{arg, ms, percentile, row, DynamoMeter, Target},
    rt::{rt_base_url, rt_client, rt_config, rt_env, token_auth},
    services::{delete_tables, fresh_tables},
};
use serde_json::json;

/// The real RT client, counting the time spent in it.
#[derive(Debug)]
struct TimedRt {
    inner: Arc<dyn RtClient>,
    nanos: AtomicU64,
}

impl TimedRt {
    async fn time<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        let start = Instant::now();
        let out = fut.await;
        self.nanos.fetch_add(
            u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        out
    }

    fn spent(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

#[async_trait]
impl RtClient for TimedRt {
    async fn create(&self, ticket: &RtCreate) -> Result<u64, RtError> {
        self.time(self.inner.create(ticket)).await
    }
    async fn get(&self, id: u64) -> Result<RtTicket, RtError> {
        self.time(self.inner.get(id)).await
    }
    async fn description(&self, id: u64) -> Result<String, RtError> {
        self.time(self.inner.description(id)).await
    }
    async fn list(&self, query: &RtQuery, page: u32, per_page: u32) -> Result<RtPage, RtError> {
        self.time(self.inner.list(query, page, per_page)).await
    }
    fn ticket_url(&self, id: u64) -> String {
        self.inner.ticket_url(id)
    }
}

/// One create through the stack: total, and the parts spent in DynamoDB and RT calls.
#[derive(Debug, Clone, Copy)]
struct StackSample {
    total: Duration,
    db: Duration,
    rt: Duration,
}

#[tokio::main]
async fn main() {
    let creates: usize = arg("--creates", 50);
    let warm_up = 3;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    let (client, tables) = fresh_tables("createbench").await;
    let meter = DynamoMeter::default();
    let store = Arc::new(DynamoStore::new(meter.meter(&client), tables.clone()));
    let rt = Arc::new(TimedRt {
        inner: rt_client(&rt_config(RtApi::Rest2, token_auth())),
        nanos: AtomicU64::new(0),
    });
    let functions =
        Functions::new(rt.clone(), store.clone(), "General".into(), Duration::from_secs(10));
    // No stream poller: its polling of moto would only add noise to these timings.
    let gateway = Gateway::start_with(ServerOptions::loopback(), functions, None)
        .await
        .expect("gateway starts");
    let stack_url = format!("{}/tickets", gateway.http_url());
    let direct_url = format!("{}REST/2.0/ticket", rt_base_url());
    let token = rt_env("RT_TOKEN");
    // Two clients, each keeping its connection alive, as a real client and RT's own would.
    let stack_http =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let direct_http =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");

    let via_stack = |i: usize| {
        let (http, url, meter, rt, run) = (&stack_http, &stack_url, &meter, &rt, &run);
        async move {
            let body = json!({ "title": format!("bench {run} stack #{i}"), "description": "Created through the local stack.\nSecond line." });
            let (db0, rt0) = (meter.metrics().db_nanos, rt.spent());
            let started = Instant::now();
            let resp = http.post(url).json(&body).send().await.expect("POST /tickets");
            let status = resp.status();
            let text = resp.text().await.expect("body");
            let total = started.elapsed();
            if status != 201 {
                // A busy shared RT can time out; the pair is dropped and counted, not fatal.
                eprintln!("create_bench: POST /tickets answered {status}: {text}");
                return None;
            }
            let db = Duration::from_nanos(meter.metrics().db_nanos - db0);
            Some(StackSample { total, db, rt: rt.spent() - rt0 })
        }
    };
    let direct = |i: usize| {
        let (http, url, token, run) = (&direct_http, &direct_url, &token, &run);
        async move {
            let body = json!({
                "Queue": "General", "Subject": format!("bench {run} direct #{i}"),
                "Content": "Created directly in RT.\nSecond line.", "ContentType": "text/plain"
            });
            let started = Instant::now();
            let resp = http
                .post(url)
                .header("Authorization", format!("token {token}"))
                .json(&body)
                .send()
                .await
                .expect("RT POST");
            let status = resp.status();
            resp.bytes().await.expect("RT body");
            let took = started.elapsed();
            if status != 201 {
                eprintln!("create_bench: RT answered {status}");
                return None;
            }
            Some(took)
        }
    };
    for i in 0..warm_up {
        via_stack(i).await;
        direct(i).await;
    }
    let (mut stack, mut rt_direct, mut failed) = (Vec::new(), Vec::new(), 0usize);
    for i in 0..creates {
        // Alternate which goes first, so neither always runs right after the other.
        let (s, d) = if i % 2 == 0 {
            let s = via_stack(i).await;
            (s, direct(i).await)
        } else {
            let d = direct(i).await;
            (via_stack(i).await, d)
        };
        match s {
            Some(s) => stack.push(s),
            None => failed += 1,
        }
        match d {
            Some(d) => rt_direct.push(d),
            None => failed += 1,
        }
        if (i + 1) % 10 == 0 {
            eprintln!("create_bench: {}/{creates} pairs", i + 1);
        }
    }
    gateway.shutdown().await;
    delete_tables(&client, &tables).await;

    let pick = |f: fn(&StackSample) -> Duration| stack.iter().map(f).collect::<Vec<_>>();
    let totals = pick(|s| s.total);
    let without_db = pick(|s| s.total.saturating_sub(s.db));
    let without_db_rt = pick(|s| s.total.saturating_sub(s.db + s.rt));
    let db = pick(|s| s.db);
    let in_rt = pick(|s| s.rt);
    for (id, p, name) in [("1a", 0.5, "p50"), ("1b", 0.95, "p95")] {
        let (st, di) = (percentile(&totals, p), percentile(&rt_direct, p));
        let (no_db, own) = (percentile(&without_db, p), percentile(&without_db_rt, p));
        let overhead = no_db.as_secs_f64() - di.as_secs_f64();
        row(
            id,
            &format!("POST /tickets {name}: stack own overhead (stack - DynamoDB - RT direct) / RT direct p50"),
            overhead / percentile(&rt_direct, 0.5).as_secs_f64(),
            Target::AtMost(0.05),
            &format!(
                "{:.1} ms = {:.1} ms stack without DynamoDB - {:.1} ms RT direct; of it the stack's own RT calls (create + read-back) take {:.1} ms beyond RT direct, gateway + handler {:.2} ms ({name}, n = {}; {failed} answers other than 201 left out)",
                overhead * 1e3,
                ms(no_db),
                ms(di),
                ms(percentile(&in_rt, p)) - ms(di),
                ms(own),
                stack.len(),
            ),
        );
        row(
            &format!("{id}'"),
            &format!("POST /tickets {name}: raw ratio stack (moto included) / RT direct"),
            st.as_secs_f64() / di.as_secs_f64(),
            Target::Info,
            &format!(
                "{:.1} ms / {:.1} ms; time in DynamoDB calls (moto) {:.1} ms {name}",
                ms(st),
                ms(di),
                ms(percentile(&db, p))
            ),
        );
    }
}
