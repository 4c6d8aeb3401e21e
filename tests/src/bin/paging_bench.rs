//! Paging benchmark (part 2 of `make bench`): the first page and a deep page (reached by
//! cursor) of `GET /tickets` and `GET /notifications` with 100 against 100,000 records,
//! seeded straight into fresh DynamoDB tables on moto.
//!
//! moto's Query time grows with the partition's size, so wall time against moto proves
//! nothing about the design. This measures what DynamoDB bills instead: items read per page
//! (`ScannedCount`, with `ConsumedCapacity` beside it) over the page size, and the
//! handler's own time per page (wall time of `handle` minus the time awaiting DynamoDB)
//! over interleaved samples. The ratio uses the fastest sample at each size: the figure is
//! ~0.1 ms of CPU work, and on a shared 2-core machine (moto's Python runs on the same
//! cores, busiest right after a Query over 100,000 items) preemption only ever adds to it.
//! The medians are printed beside it.
//!
//! ```text
//! cargo run --release -p rt-relay-tests --bin paging_bench -- [--large 100000] [--small 100] [--limit 20] [--samples 7]
//! ```
//! with moto running (env from `scripts/moto.sh env`). Prints rows of the combined table.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use futures_util::{stream, StreamExt};
use lambda_http::{Body, Request, RequestExt, Response};
use rt_relay_shared::{
    config::Tables,
    feed::FeedSettings,
    handlers::{notifications::ListNotifications, tickets::ListTickets, HttpHandler},
    store::dynamodb::{notification_item, ticket_item, DynamoStore, Item},
    wiring,
};
use rt_relay_tests::{
    bench::{arg, median, row, us, DynamoMeter, StoreMetrics, Target},
    services::{delete_tables, fresh_tables, sample_notification, sample_ticket},
};
use serde_json::Value;

/// DynamoDB's limit of items per BatchWriteItem call.
const BATCH: usize = 25;
/// BatchWriteItem calls in flight while seeding.
const SEED_CONCURRENCY: usize = 4;

/// One seeded table set and the handlers over it.
struct Dataset {
    size: u64,
    client: aws_sdk_dynamodb::Client,
    store: Arc<DynamoStore>,
    /// Meters the store's client: time awaiting DynamoDB, items read, capacity consumed.
    meter: DynamoMeter,
    tickets: ListTickets,
    notifications: ListNotifications,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum List {
    Tickets,
    Notifications,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Depth {
    First,
    Deep,
}

/// What one measured page cost.
struct Sample {
    own: Duration,
    db: StoreMetrics,
}

fn request(query: &[(&str, &str)]) -> Request {
    let q: HashMap<String, String> =
        query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    lambda_http::http::Request::builder()
        .method("GET")
        .uri("https://api.bench/tickets")
        .body(Body::Empty)
        .expect("request")
        .with_query_string_parameters(q)
}

fn json_of(resp: &Response<Body>) -> Value {
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    serde_json::from_slice(resp.body().as_ref()).expect("JSON body")
}

/// Writes `size` tickets and their notifications with BatchWriteItem (item shapes from
/// the store itself), a few calls in flight, retrying unprocessed items.
async fn seed(client: &aws_sdk_dynamodb::Client, tables: &Tables, size: u64) {
    let started = Instant::now();
    let mut requests: Vec<(String, Item)> = Vec::with_capacity(2 * size as usize);
    for id in 1..=size {
        let t = sample_ticket(id, if id % 2 == 0 { "open" } else { "new" }, "General");
        requests.push((
            tables.notifications.clone(),
            notification_item(&sample_notification(&t)).expect("notification item"),
        ));
        requests.push((tables.tickets.clone(), ticket_item(&t).expect("ticket item")));
    }
    let total = requests.len();
    let chunks: Vec<Vec<(String, Item)>> = requests.chunks(BATCH).map(<[_]>::to_vec).collect();
    let mut done = 0usize;
    let mut progress = stream::iter(chunks)
        .map(|chunk| async move {
            let n = chunk.len();
            let mut pending: HashMap<String, Vec<WriteRequest>> = HashMap::new();
            for (table, item) in chunk {
                let put = PutRequest::builder().set_item(Some(item)).build().expect("put request");
                pending
                    .entry(table)
                    .or_default()
                    .push(WriteRequest::builder().put_request(put).build());
            }
            for attempt in 0.. {
                assert!(attempt < 10, "BatchWriteItem kept leaving items unprocessed");
                let out = client
                    .batch_write_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .expect("BatchWriteItem");
                pending = out.unprocessed_items.unwrap_or_default();
                if pending.values().all(Vec::is_empty) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
            }
            n
        })
        .buffer_unordered(SEED_CONCURRENCY);
    let step = (total / 10).max(1);
    while let Some(n) = progress.next().await {
        let before = done / step;
        done += n;
        if done / step != before || done == total {
            eprintln!(
                "paging_bench: seeded {done}/{total} items ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

async fn dataset(size: u64) -> Dataset {
    let (client, tables) = fresh_tables(&format!("paging{size}")).await;
    seed(&client, &tables, size).await;
    let meter = DynamoMeter::default();
    let store = Arc::new(DynamoStore::new(meter.meter(&client), tables));
    Dataset {
        size,
        client,
        meter,
        tickets: wiring::list_tickets_over(store.clone()),
        notifications: wiring::list_notifications_over(store.clone(), FeedSettings::default()),
        store,
    }
}

/// Replaces the last-key part of a cursor the API issued with `key`: the cursor the page
/// before the deep one would have returned, without walking thousands of pages to it.
/// (At the small size the bench walks there and checks that both cursors give one page.)
fn cursor_at(issued: &str, key: Value) -> String {
    let bytes = URL_SAFE_NO_PAD.decode(issued).expect("cursor is base64url");
    let mut envelope: Value = serde_json::from_slice(&bytes).expect("cursor is JSON");
    envelope["k"] = key;
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&envelope).expect("JSON"))
}

/// An item's size as DynamoDB bills it: attribute names plus values (strings in UTF-8
/// bytes, numbers about one byte per two digits).
fn item_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    _ => 0,
                }
        })
        .sum()
}

/// What an eventually consistent Query reading `items` items of `bytes` each would consume
/// on DynamoDB: half a unit per started 4 KB of the total (moto reports a flat figure).
fn billed_rcu(items: u64, bytes: usize) -> f64 {
    (items as usize * bytes).div_ceil(4096) as f64 * 0.5
}

fn attr_s(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

impl Dataset {
    async fn page(&self, list: List, query: &[(&str, &str)]) -> (Value, Sample) {
        let req = request(query);
        let before = self.meter.metrics();
        let started = Instant::now();
        let resp = match list {
            List::Tickets => self.tickets.handle(req).await,
            List::Notifications => self.notifications.handle(req).await,
        };
        let wall = started.elapsed();
        let db = self.meter.metrics().since(&before);
        let own = wall.saturating_sub(Duration::from_nanos(db.db_nanos));
        (json_of(&resp), Sample { own, db })
    }

    /// The cursor for the second-to-last page: after the item with id `2 * limit + 1`.
    async fn deep_cursor(&self, list: List, limit: u32) -> String {
        let lim = limit.to_string();
        let (first, _) = self.page(list, &[("limit", &lim)]).await;
        let issued = first["next_cursor"].as_str().expect("a first page with more after it");
        let ticket = sample_ticket(2 * u64::from(limit) + 1, "new", "General");
        let key = match list {
            List::Tickets => serde_json::json!({ "id": ticket.id }),
            List::Notifications => {
                let item =
                    notification_item(&sample_notification(&ticket)).expect("notification item");
                serde_json::json!({ "seq": attr_s(&item, "seq"), "id": attr_s(&item, "id") })
            }
        };
        cursor_at(issued, key)
    }

    /// Walks page by page to the deep page and checks the crafted cursor reads the same page.
    async fn check_deep_cursor(&self, list: List, limit: u32, crafted: &str) {
        let lim = limit.to_string();
        let pages_before = (self.size - 2 * u64::from(limit)) / u64::from(limit);
        let mut cursor: Option<String> = None;
        for _ in 0..pages_before {
            let mut q = vec![("limit", lim.as_str())];
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let (page, _) = self.page(list, &q).await;
            cursor = page["next_cursor"].as_str().map(str::to_owned);
        }
        let walked = cursor.expect("a cursor before the deep page");
        let (a, _) = self.page(list, &[("limit", &lim), ("cursor", &walked)]).await;
        let (b, _) = self.page(list, &[("limit", &lim), ("cursor", crafted)]).await;
        assert_eq!(a["items"], b["items"], "crafted deep cursor must read the walked page");
        assert!(a["next_cursor"].is_string(), "the deep page has a page after it");
    }
}

#[tokio::main]
async fn main() {
    let small: u64 = arg("--small", 100);
    let large: u64 = arg("--large", 100_000);
    let limit: u32 = arg("--limit", 20);
    let samples: usize = arg("--samples", 7);
    assert!(small >= 3 * u64::from(limit) && large > small, "sizes must leave a deep page");
    let started = Instant::now();
    let sets = [dataset(small).await, dataset(large).await];
    eprintln!("paging_bench: seeded in {:.0} s; measuring", started.elapsed().as_secs_f64());

    let lists = [List::Tickets, List::Notifications];
    let mut cursors = HashMap::new();
    for set in &sets {
        for list in lists {
            let c = set.deep_cursor(list, limit).await;
            if set.size == small {
                set.check_deep_cursor(list, limit, &c).await;
            }
            cursors.insert((set.size, list), c);
        }
    }
    let lim = limit.to_string();
    let mut results: HashMap<(u64, List, Depth), Vec<Sample>> = HashMap::new();
    // Interleaved: every round reads every page at both sizes, so drift hits all alike.
    for round in 0..=samples {
        for set in &sets {
            for list in lists {
                for depth in [Depth::First, Depth::Deep] {
                    let mut q = vec![("limit", lim.as_str())];
                    if depth == Depth::Deep {
                        q.push(("cursor", &cursors[&(set.size, list)]));
                    }
                    let (page, sample) = set.page(list, &q).await;
                    assert_eq!(page["items"].as_array().map(Vec::len), Some(limit as usize));
                    assert!(page["next_cursor"].is_string());
                    if round > 0 {
                        // Round 0 warms caches and connections.
                        results.entry((set.size, list, depth)).or_default().push(sample);
                    }
                }
            }
        }
        eprintln!(
            "paging_bench: round {round}/{samples} ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }

    let mut letter = b'a';
    let mut next_id = || {
        let id = format!("2{}", letter as char);
        letter += 1;
        id
    };
    let path = |list| match list {
        List::Tickets => "GET /tickets",
        List::Notifications => "GET /notifications",
    };
    for list in lists {
        for depth in [Depth::First, Depth::Deep] {
            let page = match depth {
                Depth::First => "first page",
                Depth::Deep => "deep page (cursor)",
            };
            let stats = |size| {
                let s = &results[&(size, list, depth)];
                let worst_items = s.iter().map(|x| x.db.items_scanned).max().unwrap_or(0);
                let rcu = s.iter().map(|x| x.db.read_capacity_units).fold(0.0, f64::max);
                let own: Vec<Duration> = s.iter().map(|x| x.own).collect();
                let fastest = own.iter().min().copied().unwrap_or_default();
                (worst_items, rcu, (fastest, median(&own)))
            };
            let (items_s, rcu_s, (own_s, med_s)) = stats(small);
            let (items_l, rcu_l, (own_l, med_l)) = stats(large);
            let sample = sample_ticket(large, "new", "General");
            let bytes = match list {
                List::Tickets => item_bytes(&ticket_item(&sample).expect("ticket item")),
                List::Notifications => item_bytes(
                    &notification_item(&sample_notification(&sample)).expect("notification item"),
                ),
            };
            let worst = items_s.max(items_l) as f64 / f64::from(limit);
            row(
                &next_id(),
                &format!("{} {page}: items read / page size (worst of {small} and {large} records)", path(list)),
                worst,
                Target::AtMost((f64::from(limit) + 1.0) / f64::from(limit)),
                &format!(
                    "ScannedCount {items_s} at {small}, {items_l} at {large} (page size {limit}); ConsumedCapacity (moto) {rcu_s} / {rcu_l} RCU; DynamoDB would bill {} RCU ({items_l} items of ~{bytes} B)",
                    billed_rcu(items_l, bytes)
                ),
            );
            row(
                &next_id(),
                &format!(
                    "{} {page}: handler own time, {large} / {small} records",
                    path(list)
                ),
                own_l.as_secs_f64() / own_s.as_secs_f64(),
                Target::AtMost(1.3),
                &format!(
                    "{:.0} µs / {:.0} µs (fastest of {samples}; medians {:.0} / {:.0} µs), store calls excluded",
                    us(own_l),
                    us(own_s),
                    us(med_l),
                    us(med_s)
                ),
            );
        }
    }
    for set in &sets {
        delete_tables(&set.client, set.store.tables()).await;
    }
    eprintln!("paging_bench: done in {:.0} s", started.elapsed().as_secs_f64());
}
