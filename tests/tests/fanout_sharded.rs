//! The sharded push end to end, bounded in count and time: 2,000 real WebSocket clients on
//! the local gateway, one batch of three notifications planned over the real connections
//! table (moto) and cut into tasks on a real FIFO queue (moto's SQS), four shards, worker
//! invocations run by the gateway's SQS event source posting through the real
//! `@connections`. The workers are made to fail (every 7th connection's first post fails)
//! and to run out of time mid-slice (150 ms per invocation, 5 ms per post, 10 at once):
//! their remainders go back on the queue, and every client still gets every notification
//! exactly once, in feed order.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use futures_util::{stream, StreamExt};
use rt_relay_gateway::sqs::{ensure_queues, FanoutSettings, SqsSource};
use rt_relay_shared::auth::{ApiKeyStore, Scope};
use rt_relay_shared::{
    fanout::{ConnectionPoster, PostError, QueueError, SqsTaskQueue, TaskQueue},
    store::dynamodb::DynamoStore,
    usecases::push::{
        shard::{ResumeTask, Task},
        worker::PushWorker,
        Deliverer, Fanout, Payload, Sharding,
    },
    wiring,
};
use rt_relay_tests::stack::{ws_url_with_key, Stack};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Error, Message};

const CLIENTS: usize = 2_000;
/// The clients connect with ten API keys, 200 each (`MAX_CONNECTIONS_PER_KEY` is 200).
const KEYS: usize = 10;
const NOTIFICATIONS: usize = 3;
/// Time per worker invocation and per post, and posts in flight per invocation: a task of
/// 250 connections needs at least 250 x 3 x 5 ms / 10 = 375 ms, so every task is cut off.
const WORKER_MS: u64 = 150;
const POST_DELAY: Duration = Duration::from_millis(5);
const POSTING: usize = 10;
/// Handshakes in flight at once.
const CONNECTING: usize = 20;
/// Bounds, several times what this machine took when busy (docs/PERFORMANCE.md).
const CONNECT_BOUND: Duration = Duration::from_secs(300);
const DELIVERY_BOUND: Duration = Duration::from_secs(300);
const DRAIN_BOUND: Duration = Duration::from_secs(60);

/// Waits `delay` per post; the first post to each connection in `fail_once` fails. Records
/// every post that reached its connection, by connection and notification id.
#[derive(Debug)]
struct FlakyPoster {
    inner: Arc<dyn ConnectionPoster>,
    delay: Duration,
    fail_once: Mutex<HashSet<String>>,
    failed: AtomicUsize,
    posted: Mutex<HashMap<(String, String), usize>>,
}

#[async_trait]
impl ConnectionPoster for FlakyPoster {
    async fn post(&self, id: &str, data: &[u8]) -> Result<(), PostError> {
        tokio::time::sleep(self.delay).await;
        if self.fail_once.lock().unwrap_or_else(|p| p.into_inner()).remove(id) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(PostError::Failed("injected".into()));
        }
        self.inner.post(id, data).await?;
        let notification = notification_id(data).unwrap_or_default();
        *self
            .posted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((id.to_owned(), notification))
            .or_default() += 1;
        Ok(())
    }
}

/// Records what the workers put back on the queue.
#[derive(Debug)]
struct CountingQueue {
    inner: SqsTaskQueue,
    remainders: Mutex<Vec<Task>>,
}

#[async_trait]
impl TaskQueue for CountingQueue {
    async fn enqueue(&self, tasks: &[Task]) -> Result<(), QueueError> {
        self.inner.enqueue(tasks).await?;
        self.remainders.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(tasks);
        Ok(())
    }

    async fn enqueue_resume(&self, task: &ResumeTask) -> Result<(), QueueError> {
        self.inner.enqueue_resume(task).await
    }
}

fn notification_id(data: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(data).ok()?["id"].as_str().map(str::to_owned)
}

/// The soft open-file limit (`Max open files` in /proc/self/limits).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

/// The queue's visible and in-flight message counts.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes");
    let get = |name: QueueAttributeName| {
        out.attributes().and_then(|a| a.get(&name)).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX)
    };
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_clients_get_every_notification_once_through_four_shards() {
    // 2,000 client sockets and their 2,000 server ends live in this process.
    let need = 2 * CLIENTS as u64 + 500;
    let limit = open_file_limit().unwrap_or(0);
    assert!(
        limit >= need,
        "this test holds {need} open files and the limit is {limit}: run it through \
         scripts/test.sh (which raises it) or after `ulimit -n 65536`"
    );
    let mut stack = Stack::new("sharded").await;
    stack.config.max_connections_per_key = CLIENTS / KEYS;
    let gateway = stack.start().await;
    let mut urls = Vec::new();
    for _ in 0..KEYS {
        let key = stack.mint_key(&Scope::ALL).await;
        let id = key.split('_').nth(1).expect("a key rtr_<id>_<secret>").to_owned();
        assert!(stack.keys().set_queues(&id, &["*".into()]).await.expect("set the key's queues"));
        urls.push(ws_url_with_key(&gateway.ws_url(), &key));
    }

    // GIVEN 2,000 connected clients, each reporting every notification id it receives
    let started = Instant::now();
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(usize, String)>();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let connected = tokio::time::timeout(
        CONNECT_BOUND,
        stream::iter(0..CLIENTS)
            .map(|i| {
                let url = urls[i % KEYS].clone();
                let seen_tx = seen_tx.clone();
                let refused = refused.clone();
                let done = done.clone();
                let retried = retried.clone();
                async move {
                    // A 5xx handshake is tried again, as a client would (at most 3 tries):
                    // on a saturated moto the `$connect` authorizer can pass its 10 s bound.
                    let mut result = tokio_tungstenite::connect_async(url.as_str()).await;
                    for _ in 1..3 {
                        match &result {
                            Err(Error::Http(r)) if r.status().is_server_error() => {
                                retried.fetch_add(1, Ordering::SeqCst);
                                result = tokio_tungstenite::connect_async(url.as_str()).await;
                            }
                            _ => break,
                        }
                    }
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if n % 500 == 0 {
                        eprintln!(
                            "fanout_sharded: {n} handshakes after {:.1} s",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    let (mut socket, _) = match result {
                        Ok(s) => s,
                        Err(e) => {
                            refused
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("{i}: {e}"));
                            return;
                        }
                    };
                    tokio::spawn(async move {
                        while let Some(Ok(message)) = socket.next().await {
                            if let Message::Text(text) = message {
                                let id = notification_id(text.as_bytes())
                                    .unwrap_or_else(|| format!("not a notification: {text}"));
                                let _ = seen_tx.send((i, id));
                            }
                        }
                    });
                }
            })
            .buffer_unordered(CONNECTING)
            .collect::<Vec<()>>(),
    )
    .await;
    drop(seen_tx);
    let connect_time = started.elapsed();
    let refused = std::mem::take(&mut *refused.lock().unwrap_or_else(|p| p.into_inner()));
    eprintln!(
        "fanout_sharded: {CLIENTS} connects over {KEYS} keys, {CONNECTING} at once: {:.1} s, {} 5xx tried again, {} refused",
        connect_time.as_secs_f64(),
        retried.load(Ordering::SeqCst),
        refused.len()
    );
    assert!(connected.is_ok(), "{CLIENTS} clients did not connect within {CONNECT_BOUND:?}");
    assert!(refused.is_empty(), "handshakes refused: {:?}", &refused[..refused.len().min(10)]);
    assert_eq!(gateway.connections().len(), CLIENTS);

    // The fan-out queue for this test (its own names), and the workers' event source.
    let settings = FanoutSettings {
        sharding: Sharding { over: 100, shards: 4, task_connections: 250, ..Sharding::default() },
        queue_name: format!("{}t-fanout.fifo", stack.tables().connections),
        dlq_name: format!("{}t-fanout-dlq.fifo", stack.tables().connections),
        batch_size: 1,
        visibility: Duration::from_secs(30),
        max_receive_count: 5,
        worker_time: Duration::from_millis(WORKER_MS),
    };
    let sdk = wiring::sdk_config().expect("SDK configuration");
    let sqs = wiring::sqs(&sdk);
    let queue_url = ensure_queues(&sqs, &settings).await.expect("create the queues in moto");
    let store = Arc::new(DynamoStore::new(stack.dynamodb.clone(), stack.tables().clone()));
    let endpoint = url::Url::parse(&gateway.management_endpoint()).expect("endpoint URL");
    let real = wiring::poster(&sdk, &endpoint);
    let connection_ids = gateway.connections().ids();
    let fail_once: HashSet<String> = connection_ids.iter().step_by(7).cloned().collect();
    let flaky = Arc::new(FlakyPoster {
        inner: real.clone(),
        delay: POST_DELAY,
        fail_once: Mutex::new(fail_once.clone()),
        failed: AtomicUsize::new(0),
        posted: Mutex::new(HashMap::new()),
    });
    let requeue = Arc::new(CountingQueue {
        inner: SqsTaskQueue::new(sqs.clone(), queue_url.clone()),
        remainders: Mutex::new(Vec::new()),
    });
    let worker =
        PushWorker::new(Deliverer::new(store.clone(), flaky.clone(), POSTING), requeue.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let source = tokio::spawn(
        SqsSource::new(sqs.clone(), queue_url.clone(), worker.into(), settings.clone())
            .run(stopped),
    );

    // WHEN one batch of three notifications is pushed past the shard threshold
    let ids: Vec<String> =
        (0..NOTIFICATIONS).map(|i| format!("sharded-{i}-{}", uuid::Uuid::new_v4())).collect();
    let payloads: Vec<Payload> = ids
        .iter()
        .map(|id| {
            Payload::from(
                serde_json::json!({ "id": id, "type": "ticket.created" }).to_string().into_bytes(),
            )
        })
        .collect();
    let pushed = Instant::now();
    let fanout = Fanout::new(store.clone(), real).with_sharding(
        settings.sharding,
        Arc::new(SqsTaskQueue::new(sqs.clone(), queue_url.clone())),
    );
    let outcome = fanout.push_batch(payloads).await.expect("plan the batch");
    assert_eq!(outcome.first_failed, None, "every task enqueued");
    assert!(outcome.tasks >= CLIENTS / 250, "sliced into tasks: {}", outcome.tasks);
    assert_eq!(outcome.stats.delivered, 0, "the push itself posts nothing past the threshold");

    // THEN every client reports the three (waiting on their reports, within the bound)
    let mut got: Vec<Vec<String>> = vec![Vec::new(); CLIENTS];
    let mut complete = 0;
    let mut full_delivery = [None; NOTIFICATIONS];
    let mut with = vec![0usize; NOTIFICATIONS];
    let deadline = tokio::time::Instant::now() + DELIVERY_BOUND;
    while complete < CLIENTS {
        let Ok(Some((client, id))) = tokio::time::timeout_at(deadline, seen.recv()).await else {
            break;
        };
        if let Some(k) = ids.iter().position(|x| *x == id) {
            if !got[client].contains(&id) {
                with[k] += 1;
                if with[k] == CLIENTS {
                    full_delivery[k] = Some(pushed.elapsed());
                }
            }
        }
        got[client].push(id);
        if got[client].iter().collect::<HashSet<_>>().len() == NOTIFICATIONS
            && got[client].len() == NOTIFICATIONS
        {
            complete += 1;
        }
    }
    let delivery_time = pushed.elapsed();
    if complete < CLIENTS {
        let mut histogram = HashMap::<usize, usize>::new();
        for g in &got {
            *histogram.entry(g.len()).or_default() += 1;
        }
        let (visible, in_flight) = queue_depth(&sqs, &queue_url).await;
        panic!(
            "after {:.1} s {complete} of {CLIENTS} clients had all {NOTIFICATIONS}; clients by \
             messages received: {histogram:?}; per notification: {with:?}; queue: {visible} \
             visible, {in_flight} in flight; {} injected failures, {} remainders re-enqueued",
            delivery_time.as_secs_f64(),
            flaky.failed.load(Ordering::SeqCst),
            requeue.remainders.lock().unwrap_or_else(|p| p.into_inner()).len(),
        );
    }
    eprintln!(
        "fanout_sharded: {} tasks over 4 shards; every client had all {NOTIFICATIONS} after {:.1} s (notification k at every client: {:?})",
        outcome.tasks,
        delivery_time.as_secs_f64(),
        full_delivery.iter().map(|t| t.map(|d| format!("{:.1} s", d.as_secs_f64()))).collect::<Vec<_>>()
    );

    // AND once the workers have drained the queue (nothing left to post), every connection
    // was posted each notification exactly once, and each client holds them in feed order
    let drain_deadline = Instant::now() + DRAIN_BOUND;
    loop {
        let depth = queue_depth(&sqs, &queue_url).await;
        if depth == (0, 0) {
            break;
        }
        assert!(Instant::now() < drain_deadline, "the queue still holds {depth:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    let _ = source.await;
    let posted = std::mem::take(&mut *flaky.posted.lock().unwrap_or_else(|p| p.into_inner()));
    for c in &connection_ids {
        for id in &ids {
            assert_eq!(posted.get(&(c.clone(), id.clone())), Some(&1), "posts of {id} to {c}");
        }
    }
    assert_eq!(posted.values().sum::<usize>(), CLIENTS * NOTIFICATIONS, "no other post");
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g, &ids, "client {i}: each notification once, in feed order");
    }

    // AND the workers really failed and ran out of time mid-slice, and their remainders ran
    let failed = flaky.failed.load(Ordering::SeqCst);
    assert_eq!(failed, fail_once.len(), "each injected failure happened");
    let remainders =
        std::mem::take(&mut *requeue.remainders.lock().unwrap_or_else(|p| p.into_inner()));
    // Per re-enqueued connection, how many notifications each of its remainders still had.
    let mut requeued: HashMap<&str, Vec<usize>> = HashMap::new();
    for task in &remainders {
        for d in &task.deliveries {
            let left = d.n.as_ref().map_or(task.notifications.len(), Vec::len);
            requeued.entry(d.c.as_str()).or_default().push(left);
        }
    }
    for c in &fail_once {
        assert!(requeued.contains_key(c.as_str()), "{c}'s failed post went back on the queue");
    }
    let cut_off = requeued.keys().filter(|c| !fail_once.contains(**c)).count();
    let mid_connection =
        requeued.values().filter(|lefts| lefts.iter().any(|&n| n < NOTIFICATIONS)).count();
    eprintln!(
        "fanout_sharded: {} remainders re-enqueued ({failed} injected post failures; {cut_off} connections cut off by the deadline, {mid_connection} connections cut off between two of their posts; highest attempt {})",
        remainders.len(),
        remainders.iter().map(|t| t.attempt).max().unwrap_or(0)
    );
    assert!(cut_off > 0, "the {WORKER_MS} ms deadline cut slices short");

    // The connections table goes before the shutdown closes the 2,000 sockets: their
    // `$disconnect` then fails fast on the missing table. Otherwise each is a
    // TransactWriteItems, for which moto copies the whole table per item, and the 2,000 of
    // them kept moto busy well after this test ended: the next test binary's ListTables
    // passed the SDK's 5 s stall limit (seen twice in `make test` on a8f448d and fa5a168).
    let connections = &stack.tables().connections;
    let _ = stack.dynamodb.delete_table().table_name(connections).send().await;
    gateway.shutdown().await;
    stack.clean_up().await;
}
