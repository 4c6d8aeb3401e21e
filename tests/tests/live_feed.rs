//! The live feed (issue 11) end to end, through the local gateway over the real RT and moto:
//! catching up over HTTP with `since` (oldest first, exactly the notifications after the
//! position the key's queues allow, 410 `position_expired` for a lost one), the WebSocket keep-alive (`ping` →
//! `pong`), and subscriptions (by queue on connect, by type with `subscribe`, by status
//! either way). Every wait is bounded and waits for the event itself.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rt_relay_shared::auth::{ApiKeyStore, Scope};
use rt_relay_shared::events::{dynamodb::DynamoEvents, store::SyncCursorStore};
use rt_relay_tests::stack::{
    authorized_client, create_ticket, handshake_status, status_of, wait_for, Running, Stack,
    WsClient,
};
use serde_json::{json, Value};

/// Bound on a notification becoming readable through `since` (the 5 s settle horizon plus
/// the stack's own time).
const CATCH_UP_WAIT: Duration = Duration::from_secs(30);

async fn post_ticket(http: &reqwest::Client, base: &str, title: &str) -> u64 {
    post_ticket_in(http, base, title, "General").await
}

async fn post_ticket_in(http: &reqwest::Client, base: &str, title: &str, queue: &str) -> u64 {
    let body = json!({ "title": title, "description": "live feed test", "queue": queue });
    create_ticket(http, base, &body).await
}

/// Every page of `GET /notifications?since=<since>`, oldest first.
async fn read_since(http: &reqwest::Client, base: &str, since: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        // Ids and cursors are URL-safe (ids: letters, digits, '-'; cursors: base64url).
        let mut url = format!("{base}/notifications?since={since}&limit=3");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let req = http.get(url);
        let resp = req.send().await.expect("GET /notifications?since");
        assert_eq!(resp.status(), StatusCode::OK, "GET /notifications?since={since}");
        let page: Value = resp.json().await.expect("page JSON");
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_clients_catch_up_after_a_position_oldest_first_and_lost_positions_are_410() {
    let Running { stack, gateway, http, base } = Stack::running("feed-since").await;

    let first = post_ticket(&http, &base, "since: the last one seen").await;
    let mut missed = Vec::new();
    for i in 0..4 {
        missed.push(post_ticket(&http, &base, &format!("since: missed {i}")).await);
    }
    missed.push(post_ticket_in(&http, &base, "since: missed in Support", "Support").await);
    let since = format!("ticket-{first}-created");
    let want = missed.len();
    // GIVEN a client whose last notification was `first` WHEN it reads after it THEN it gets
    // exactly the five it missed, oldest first, once they are settled.
    let got = wait_for("the five missed notifications after the position", CATCH_UP_WAIT, || {
        let (http, base, since) = (&http, &base, &since);
        async move {
            let items = read_since(http, base, since).await;
            (items.len() >= want).then_some(items)
        }
    })
    .await;
    let ids: Vec<u64> = got.iter().map(|n| n["ticket"]["id"].as_u64().unwrap_or(0)).collect();
    assert_eq!(ids, missed, "exactly the missed ones, in feed order");
    assert!(got.iter().all(|n| n["type"] == "ticket.created"));

    // A key that may read only Support catches up on Support's notification only.
    let limited_key = stack.mint_key(&[Scope::NotificationsRead]).await;
    let limited_id = limited_key.split('_').nth(1).expect("a key rtr_<id>_<secret>");
    assert!(stack.keys().set_queues(limited_id, &["Support".into()]).await.expect("set queues"));
    let limited = read_since(&authorized_client(&limited_key), &base, &since).await;
    let ids: Vec<u64> = limited.iter().map(|n| n["ticket"]["id"].as_u64().unwrap_or(0)).collect();
    assert_eq!(ids, missed[4..], "only the queue the key may read");

    // A position nobody has (or beyond retention) is a clear 410, not an empty page.
    let lost = http.get(format!("{base}/notifications?since=ticket-999999999-created"));
    let (status, body) = status_of(lost).await;
    assert_eq!(status, StatusCode::GONE.as_u16());
    let body: Value = serde_json::from_str(&body).expect("error JSON");
    assert_eq!(body["error"]["code"], "position_expired", "{body}");

    // `since` cannot be mixed with `type`.
    let mixed = http.get(format!("{base}/notifications?since={since}&type=ticket.created"));
    assert_eq!(status_of(mixed).await.0, StatusCode::BAD_REQUEST.as_u16());

    stack.finish(gateway).await;
}

/// The next message that is not a pushed notification (the answer to a client message).
async fn control_message(client: &mut WsClient) -> Value {
    loop {
        let text = client.next_text(Duration::from_secs(10)).await.expect("an answer in 10 s");
        let msg: Value = serde_json::from_str(&text).expect("JSON message");
        if msg.get("ticket").is_none() {
            return msg;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_pong() {
    let Running { stack, gateway, .. } = Stack::running("feed-ping").await;
    let mut client = WsClient::connect(&stack.ws_url(&gateway)).await;
    client.send_text(r#"{"action":"ping"}"#).await;
    let answer = client.next_text(Duration::from_secs(10)).await.expect("an answer to ping");
    assert_eq!(serde_json::from_str::<Value>(&answer).ok(), Some(json!({ "type": "pong" })));
    client.close().await;
    stack.finish(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_connection_is_told_to_reconnect_and_its_position_misses_nothing() {
    let mut stack = Stack::new("feed-reconnect").await;
    // Ages and horizons scaled down so the test does not wait two hours.
    stack.config.feed.reconnect_after = Duration::from_secs(2);
    stack.config.feed.settle = Duration::from_millis(200);
    let Running { stack, gateway, http, base } = stack.run().await;

    let before = post_ticket(&http, &base, "reconnect: before the connection").await;
    let before_note = format!("ticket-{before}-created");
    let before_at = wait_for("the first notification's time", CATCH_UP_WAIT, || {
        let (http, base) = (&http, &base);
        async move {
            let page: Value =
                http.get(format!("{base}/notifications")).send().await.ok()?.json().await.ok()?;
            let at = page["items"].as_array()?.first()?["created_at"].as_str()?.to_owned();
            chrono::DateTime::parse_from_rfc3339(&at).ok()
        }
    })
    .await;
    // The connection must start after that notification has settled.
    wait_for("the settle horizon to pass", Duration::from_secs(5), || async {
        (chrono::Utc::now() > before_at + chrono::Duration::milliseconds(400)).then_some(())
    })
    .await;
    let mut client = WsClient::connect(&stack.ws_url(&gateway)).await;
    let during = post_ticket(&http, &base, "reconnect: while connected").await;

    // GIVEN the connection passes its age limit WHEN it pings THEN it is told to reconnect,
    // with the position of the last notification from before it started.
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        assert!(Instant::now() < deadline, "no reconnect answer to ping within 20 s");
        client.send_text(r#"{"action":"ping"}"#).await;
        let reply = control_message(&mut client).await;
        if reply["type"] == "reconnect" {
            break reply;
        }
        assert_eq!(reply["type"], "pong", "{reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(answer["reason"], "max_age");
    assert_eq!(answer["since"], before_note.as_str(), "{answer}");
    client.close().await;

    // WHEN a ticket is created while it is away and it resumes from the given position
    // THEN it gets everything since its connection started: nothing is missed.
    let away = post_ticket(&http, &base, "reconnect: while away").await;
    let got = wait_for("the catch-up after the reconnect position", CATCH_UP_WAIT, || {
        let (http, base, since) = (&http, &base, &before_note);
        async move {
            let items = read_since(http, base, since).await;
            (items.len() >= 2).then_some(items)
        }
    })
    .await;
    let ids: Vec<u64> = got.iter().map(|n| n["ticket"]["id"].as_u64().unwrap_or(0)).collect();
    assert_eq!(ids, [during, away]);

    // The same over the WebSocket: reconnecting with the given position replays both, in
    // order, then goes live.
    let url = format!("{}&since={before_note}", stack.ws_url(&gateway));
    let mut again = WsClient::connect(&url).await;
    let live = post_ticket(&http, &base, "reconnect: live after the resume").await;
    let got = notifications_until(&mut again, live).await;
    assert_eq!(got, [during, away, live], "nothing missed, nothing twice, in order");
    again.close().await;

    stack.finish(gateway).await;
}

/// The ticket ids of every notification received until `last`'s (bounded), in order; any
/// control message on the way fails the test.
async fn notifications_until(client: &mut WsClient, last: u64) -> Vec<u64> {
    client
        .wait_for_message(Duration::from_secs(60), |v| v["ticket"]["id"] == last)
        .await
        .unwrap_or_else(|| panic!("ticket {last} never arrived; got {:?}", client.received));
    client
        .received
        .iter()
        .map(|n| {
            assert_eq!(n["type"], "ticket.created", "unexpected message {n}");
            n["ticket"]["id"].as_u64().unwrap_or(0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_with_since_gets_exactly_what_it_missed_in_order_then_live() {
    let mut stack = Stack::new("feed-resume").await;
    stack.config.feed.settle = Duration::from_millis(1_000);
    let Running { stack, gateway, http, base } = stack.run().await;

    // GIVEN a client that received ticket `seen` and went away
    let mut client = WsClient::connect(&stack.ws_url(&gateway)).await;
    let seen = post_ticket(&http, &base, "resume: seen").await;
    assert!(client.wait_for_ticket(seen, Duration::from_secs(30)).await.is_some());
    client.close().await;
    // WHEN 10 tickets are created meanwhile and it reconnects with `since`
    let mut missed = Vec::new();
    for i in 0..10 {
        missed.push(post_ticket(&http, &base, &format!("resume: missed {i}")).await);
    }
    let url = format!("{}&since=ticket-{seen}-created", stack.ws_url(&gateway));
    let mut client = WsClient::connect(&url).await;
    // (one created while the replay runs: it lands in the replay, the held set or live)
    let seam = post_ticket(&http, &base, "resume: at the seam").await;
    let live = post_ticket(&http, &base, "resume: live").await;
    // THEN it gets exactly those 10 in order, then the live ones, each once.
    let got = notifications_until(&mut client, live).await;
    let mut want = missed.clone();
    want.extend([seam, live]);
    assert_eq!(got, want);
    client.close().await;

    // A position beyond retention (or unknown): `resync` first, then live.
    let url = format!("{}&since=ticket-999999999-created", stack.ws_url(&gateway));
    let mut lost = WsClient::connect(&url).await;
    let first = lost.next_text(Duration::from_secs(30)).await.expect("a first message");
    assert_eq!(
        serde_json::from_str::<Value>(&first).ok(),
        Some(json!({
            "type": "resync", "since": "ticket-999999999-created", "reason": "position_expired"
        }))
    );
    let after = post_ticket(&http, &base, "resume: after a resync").await;
    assert_eq!(notifications_until(&mut lost, after).await, [after]);
    lost.close().await;

    stack.finish(gateway).await;
}

/// The resume runs only through the fan-out queue (a task for the push worker, as on AWS):
/// a gateway started without the queue has no other way to resume, and refuses `since` with
/// 400 while it still admits the same client without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fanout_queue_the_gateway_refuses_since_it_has_no_other_resume() {
    use rt_relay_gateway::{Functions, Gateway, ServerOptions, StreamSource};
    use rt_relay_shared::store::{
        dynamodb::DynamoStore,
        schema::{create_tables, notifications_stream_arn},
    };
    let stack = Stack::new("feed-noqueue").await;
    create_tables(&stack.dynamodb, stack.tables()).await.expect("create tables");
    let stream_arn =
        notifications_stream_arn(&stack.dynamodb, stack.tables()).await.expect("stream ARN");
    let store =
        std::sync::Arc::new(DynamoStore::new(stack.dynamodb.clone(), stack.tables().clone()));
    let rt = rt_relay_tests::rt::rt_client(&stack.config.rt);
    let functions = Functions::new(rt, store, "General".into(), stack.config.rt.timeout)
        .with_api_keys(std::sync::Arc::new(stack.keys()));
    let source = StreamSource { stream_arn, settings: stack.config.stream.clone() };
    let options = ServerOptions::loopback();
    assert!(options.fanout.is_none());
    let gateway = Gateway::start_with(options, functions, Some(source)).await.expect("gateway");
    let ws = stack.ws_url(&gateway);
    assert_eq!(handshake_status(&format!("{ws}&since=ticket-1-created")).await, 400);
    assert_eq!(handshake_status(&ws).await, 101, "the same client without since is admitted");
    stack.finish(gateway).await;
}

/// The sync's first run positions its cursor at RT's newest transaction: waits for it, so
/// RT changes made after this come after it.
async fn wait_for_first_sync(stack: &Stack) {
    let events = DynamoEvents::new(stack.dynamodb.clone(), stack.tables().clone());
    wait_for("the sync's first run", Duration::from_secs(60), || {
        let events = &events;
        async move { events.position().await.ok().flatten() }
    })
    .await;
}

/// `(type, ticket id)` of every notification `client` received about `ours`, in order.
fn about(client: &WsClient, ours: &[u64]) -> Vec<(String, u64)> {
    client
        .received
        .iter()
        .filter_map(|n| {
            let id = n["ticket"]["id"].as_u64()?;
            ours.contains(&id).then(|| (n["type"].as_str().unwrap_or_default().to_owned(), id))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_subscriptions_each_receive_exactly_what_they_match() {
    // The sync turns RT's status changes into ticket.status_changed.
    let stack = Stack::with_vars("feed-subs", &[("GATEWAY_SYNC_INTERVAL_MS", "500".into())]).await;
    let Running { stack, gateway, http, base } = stack.run().await;
    let actor = rt_relay_tests::rt_actions::RtActor::new();
    actor.ensure_queue("Support").await;
    wait_for_first_sync(&stack).await;

    // Bad filters are refused at $connect with a clear 400.
    let ws = stack.ws_url(&gateway);
    assert_eq!(handshake_status(&format!("{ws}&type=ticket.exploded")).await, 400);
    assert_eq!(handshake_status(&format!("{ws}&ticket=abc")).await, 400);

    // GIVEN one queue (on connect), one event type (by a subscribe message), everything
    let mut support = WsClient::connect(&format!("{ws}&queue=Support")).await;
    let mut status = WsClient::connect(&ws).await;
    status.send_text(r#"{"action":"subscribe","type":["nope"]}"#).await;
    let refused = control_message(&mut status).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "invalid_subscription", "{refused}");
    assert_eq!(refused["field"], "type", "{refused}");
    status.send_text(r#"{"action":"subscribe","type":["ticket.status_changed"]}"#).await;
    let subscribed = control_message(&mut status).await;
    assert_eq!(
        subscribed,
        json!({"type": "subscribed", "subscription": {
            "queue": [], "type": ["ticket.status_changed"], "ticket": []
        }})
    );
    let mut everything = WsClient::connect(&ws).await;

    // WHEN tickets are created in two queues and their status changes in RT
    let general = post_ticket_in(&http, &base, "subs: General", "General").await;
    let supported = post_ticket_in(&http, &base, "subs: Support", "Support").await;
    actor.update(general, json!({"Status": "open"})).await;
    actor.update(supported, json!({"Status": "open"})).await;
    // The sentinel, which every subscription matches: once it arrived, everything before
    // it was pushed (one stream, in order).
    actor.update(supported, json!({"Status": "stalled"})).await;
    let ours = [general, supported];
    let is_sentinel = |v: &Value| {
        v["type"] == "ticket.status_changed"
            && v["ticket"]["id"] == supported
            && v["change"]["new"] == "stalled"
    };
    for (name, client) in
        [("support", &mut support), ("status", &mut status), ("everything", &mut everything)]
    {
        let got = client.wait_for_message(Duration::from_secs(90), is_sentinel).await;
        assert!(got.is_some(), "{name} never got the sentinel; got {:?}", client.received);
    }

    // THEN each got exactly what it matches, in order (other tests' RT changes may reach the
    // sync too: they count only where they match the filter).
    let created = |id| ("ticket.created".to_owned(), id);
    let changed = |id| ("ticket.status_changed".to_owned(), id);
    assert_eq!(
        about(&support, &ours),
        [created(supported), changed(supported), changed(supported)]
    );
    assert!(support.received.iter().all(|n| n["ticket"]["queue"] == "Support"));
    assert_eq!(about(&status, &ours), [changed(general), changed(supported), changed(supported)]);
    assert!(status.received.iter().all(|n| n["type"] == "ticket.status_changed"));
    assert_eq!(
        about(&everything, &ours),
        [
            created(general),
            created(supported),
            changed(general),
            changed(supported),
            changed(supported)
        ]
    );

    for client in [support, status, everything] {
        client.close().await;
    }
    stack.finish(gateway).await;
}

/// Waits until a `ticket.status_changed` of ticket `id` to `new` is stored (so its ticket
/// summary was read before any later change).
async fn wait_until_stored(http: &reqwest::Client, base: &str, id: u64, new: &str) {
    wait_for(&format!("ticket {id}'s change to {new} to be stored"), CATCH_UP_WAIT, || async {
        let page: Value = http
            .get(format!("{base}/notifications?limit=50"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        page["items"]
            .as_array()?
            .iter()
            .any(|n| n["ticket"]["id"] == id && n["change"]["new"] == new)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_subscription_hears_tickets_entering_and_leaving_the_status() {
    let stack =
        Stack::with_vars("feed-status", &[("GATEWAY_SYNC_INTERVAL_MS", "500".into())]).await;
    let Running { stack, gateway, http, base } = stack.run().await;
    let actor = rt_relay_tests::rt_actions::RtActor::new();
    wait_for_first_sync(&stack).await;

    // A status that is no name (blank, a control character, over 64 characters) is refused.
    let ws = stack.ws_url(&gateway);
    for bad in ["%20", "a%07b", &"s".repeat(65)] {
        assert_eq!(handshake_status(&format!("{ws}&status={bad}")).await, 400, "{bad}");
    }

    // GIVEN a client watching `open` (on connect, with a second status that never occurs:
    // repeated parameters all count, not only the last) and one watching `resolved`
    // (subscribe)
    let mut open = WsClient::connect(&format!("{ws}&status=open&status=never-used")).await;
    let mut resolved = WsClient::connect(&ws).await;
    resolved.send_text(r#"{"action":"subscribe","status":[" resolved "]}"#).await;
    assert_eq!(
        control_message(&mut resolved).await,
        json!({"type": "subscribed", "subscription": {
            "queue": [], "type": [], "ticket": [], "status": ["resolved"]
        }})
    );

    // WHEN two tickets are created (new), one is opened, the other stalled, and the first
    // resolved (each change stored before the next, so each summary says its own status)
    let a = post_ticket(&http, &base, "status subs: opened, then resolved").await;
    let b = post_ticket(&http, &base, "status subs: stalled").await;
    actor.update(a, json!({"Status": "open"})).await;
    wait_until_stored(&http, &base, a, "open").await;
    actor.update(b, json!({"Status": "stalled"})).await;
    wait_until_stored(&http, &base, b, "stalled").await;
    // The sentinel, which both match (it leaves `open`, it enters `resolved`): once it
    // arrived, everything before it was pushed (one stream, in order).
    actor.update(a, json!({"Status": "resolved"})).await;
    let is_sentinel = |v: &Value| v["ticket"]["id"] == a && v["change"]["new"] == "resolved";
    for (name, client) in [("open", &mut open), ("resolved", &mut resolved)] {
        let got = client.wait_for_message(Duration::from_secs(90), is_sentinel).await;
        assert!(got.is_some(), "{name} never got the sentinel; got {:?}", client.received);
    }

    // THEN `open` heard the first ticket enter and leave `open`, nothing of its creation
    // (new) nor of the other (new, then stalled); `resolved` heard only it entering `resolved`
    let changed = |id| ("ticket.status_changed".to_owned(), id);
    assert_eq!(about(&open, &[a, b]), [changed(a), changed(a)]);
    assert_eq!(about(&resolved, &[a, b]), [changed(a)]);
    let touches = |n: &Value, status: &str| {
        n["ticket"]["status"] == status
            || n["change"]["old"] == status
            || n["change"]["new"] == status
    };
    assert!(open.received.iter().all(|n| touches(n, "open")), "{:?}", open.received);
    assert!(resolved.received.iter().all(|n| touches(n, "resolved")), "{:?}", resolved.received);

    for client in [open, resolved] {
        client.close().await;
    }
    stack.finish(gateway).await;
}
