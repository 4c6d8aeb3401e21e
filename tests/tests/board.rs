//! The web board (`board/`) in a real headless Chromium against the real gateway binary,
//! RT and moto: a person's session, driven by keyboard input through the DevTools protocol
//! (`rt_relay_tests::browser`).
//!
//! The board is opened with a key; a ticket created through its form appears without a
//! reload (and a double submit creates one ticket); a status change made in RT (RT's own
//! REST API, picked up by the gateway's sync) updates the row; the gateway is killed, so the
//! indicator says "reconnecting", and restarted on the same HTTP port with its WebSocket
//! listener elsewhere while a status change and a new ticket happen, then restarted on the
//! same ports: the board reconnects and shows "resumed, N missed events" with both events
//! applied; an invalid title gets the API's field error beside the field; the status filter
//! narrows the list. Screenshots at desktop and phone widths go to `target/tmp/board/`
//! (and to `docs/board-desktop.png`, `docs/board-phone.png` with
//! `UPDATE_BOARD_SCREENSHOTS=1`).
//!
//! A second session, with a key for two queues, filters by queue and by status and checks
//! what the page's WebSocket itself carried (the browser's network events): a `subscribe`
//! narrows the open socket, a handover's new socket is narrowed by its handshake URL, a
//! ticket of the other queue never reaches it, and a ticket leaving the watched status
//! still does (its row goes). Every wait is on something the page shows or the socket
//! received, bounded; "never reached" is proved by a later message on the same ordered
//! stream, never by waiting a while.

use std::{path::PathBuf, time::Duration};

use rt_relay_shared::{
    auth::{dynamodb::DynamoApiKeys, ApiKeyStore, Scope},
    config::Tables,
    events::{dynamodb::DynamoEvents, store::SyncCursorStore},
    model::{Notification, Ticket},
    store::{
        dynamodb::{client_from_env, DynamoStore},
        schema::create_tables,
        Creation, TicketStore,
    },
};
use rt_relay_tests::{
    browser::{Browser, WsMessage},
    gateway_process::{GatewayProcess, ProcessSettings},
    rt_actions::RtActor,
    services::{delete_tables, unique_prefix},
    stack::{authorized_client, create_ticket, mint_key, wait_for},
};
use serde_json::{json, Value};

/// The RT queue the test works in (created once in RT, kept).
const QUEUE: &str = "rt-relay-board";

/// Tickets recorded before the board is opened (a page is 20).
const HISTORY: u64 = 25;

/// Titles of those tickets.
const EARLIER: [&str; 5] = [
    "VPN drops every hour",
    "New laptop for the Lisbon office",
    "Printer on floor 2 offline",
    "Password reset for the wiki",
    "Invoice PDF does not open",
];

/// Bound on anything the page must show after an action (pushes, the sync, reconnects).
const SHOWN: Duration = Duration::from_secs(60);

/// The filtered session's queues (its own, so the first session's sync never lists them).
const WATCHED: &str = "rt-relay-board-watched";
const ELSEWHERE: &str = "rt-relay-board-elsewhere";

/// One browser at a time: two headless Chromiums at once crowd a 2-core machine.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn settings(prefix: &str, http_port: u16, ws_port: u16) -> ProcessSettings {
    let mut s = ProcessSettings::new(prefix);
    s.extra_env = vec![
        ("GATEWAY_HTTP_ADDR".into(), format!("127.0.0.1:{http_port}")),
        ("GATEWAY_WS_ADDR".into(), format!("127.0.0.1:{ws_port}")),
        // The RT sync brings RT's own changes (the status changes below) to the board.
        ("GATEWAY_SYNC_INTERVAL_MS".into(), "500".into()),
    ];
    s
}

/// The row of ticket `id` as `{status, title, event}`, or null.
fn row_js(id: u64) -> String {
    format!(
        "(() => {{ const r = document.querySelector('tr[data-ticket-id=\"{id}\"]'); if (!r) return null; \
         return {{status: r.dataset.status, title: r.querySelector('td.title').textContent, \
         event: r.querySelector('td.event').textContent}}; }})()"
    )
}

async fn notifications(http: &reqwest::Client, base: &str) -> Vec<Value> {
    let Ok(resp) = http.get(format!("{base}/notifications?limit=100")).send().await else {
        return Vec::new();
    };
    let body: Value = resp.json().await.unwrap_or_default();
    body["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_board_through_a_gateway_restart() {
    let _one = ONE_BROWSER.lock().await;
    // GIVEN the gateway binary on fixed loopback ports over its own tables, and a key
    // The key's one queue is the board test's own, so other tests' RT tickets (which the
    // sync also reads) are neither listed nor pushed to it.
    let rt = RtActor::new();
    rt.ensure_queue(QUEUE).await;
    let (dynamodb, tables, prefix, key) = session_tables("board", &[QUEUE]).await;
    // A history of more than one page, older than anything the test does, written as the
    // API would have recorded it.
    let store = DynamoStore::new(dynamodb.clone(), tables.clone());
    let now = chrono::Utc::now();
    for id in 1..=HISTORY {
        let at = now - chrono::Duration::minutes(i64::try_from(60 - id).unwrap_or(0));
        let ticket = Ticket {
            id,
            title: format!(
                "{} (earlier ticket {id})",
                EARLIER[usize::try_from(id).unwrap_or(0) % EARLIER.len()]
            ),
            description: "Recorded before the board was opened.".into(),
            status: ["new", "open", "resolved"][usize::try_from(id).unwrap_or(0) % 3].into(),
            queue: QUEUE.into(),
            requestor: None,
            created_at: at,
            updated_at: at,
            rt_url: format!("http://rt.invalid/Ticket/Display.html?id={id}"),
        };
        let created = Notification::ticket_created(&ticket, at);
        store
            .record_created(&Creation::new(&ticket, &created))
            .await
            .expect("record an earlier ticket");
    }
    let (http_port, ws_port) = (free_port(), free_port());
    let gateway = GatewayProcess::start(&settings(&prefix, http_port, ws_port)).await;
    let base = gateway.http_url.clone();
    assert_eq!(base, format!("http://127.0.0.1:{http_port}"));
    let api = authorized_client(&key);

    // WHEN a person opens the board and gives the key (typed, Tab, Enter)
    let browser = key_typed_into_the_board(&base, &key).await;
    // Tab reaches the form's button, and Enter on it opens the board.
    browser.press("Tab").await;
    assert_eq!(
        browser.eval("document.activeElement.textContent").await,
        json!("Open board"),
        "Tab moves from the key to the button"
    );
    browser.press("Enter").await;
    // THEN the board connects to the live feed, and the key is in session storage only
    browser
        .wait_for(
            "the connected indicator",
            SHOWN,
            "document.getElementById('connection').dataset.state === 'connected'",
        )
        .await;
    assert_eq!(
        browser.eval("[location.href, localStorage.length, sessionStorage.length]").await,
        json!([format!("{base}/"), 0, 1]),
        "the key is kept in session storage, never in the URL"
    );
    // Every form control is labelled for screen readers.
    assert_eq!(
        browser
            .eval("[...document.querySelectorAll('input, select, textarea')].filter(e => e.labels.length === 0).map(e => e.id)")
            .await,
        json!([])
    );
    // The list is one page, newest first; Load more (Enter on it) reads the next by cursor.
    let ids =
        "[...document.querySelectorAll('#ticket-rows tr')].map(r => Number(r.dataset.ticketId))";
    let first_page: Vec<u64> = ((HISTORY - 19)..=HISTORY).rev().collect();
    assert_eq!(browser.eval(ids).await, json!(first_page));
    browser.focus("#load-more").await;
    browser.press("Enter").await;
    let all: Vec<u64> = (1..=HISTORY).rev().collect();
    browser
        .wait_for(
            "the second page",
            SHOWN,
            &format!(
                "JSON.stringify({ids}) === {} && document.getElementById('load-more').hidden",
                json!(json!(all).to_string())
            ),
        )
        .await;
    assert_eq!(browser.eval("document.visibilityState").await, json!("visible"));
    browser.eval("window.boardTestMarker = 'no reload'").await;

    // WHEN a ticket is created through the form, submitted twice at once
    let title = format!("Board ticket {}", uuid::Uuid::new_v4().simple());
    browser.focus("#new-title").await;
    browser.type_text(&title).await;
    browser.focus("#new-description").await;
    browser.type_text("Created by the browser test.").await;
    browser
        .eval("(() => { const f = document.getElementById('create-form'); f.requestSubmit(); f.requestSubmit(); return true; })()")
        .await;
    // THEN its row appears without a reload, and only one ticket was created
    let created = browser
        .wait_for(
            "the created ticket's row",
            SHOWN,
            &format!(
                "(() => {{ const r = [...document.querySelectorAll('#ticket-rows tr')].find(r => r.querySelector('td.title').textContent === {}); return r ? Number(r.dataset.ticketId) : null; }})()",
                json!(title)
            ),
        )
        .await;
    let first_id = created.as_u64().expect("a ticket id");
    assert_eq!(browser.eval("window.boardTestMarker").await, json!("no reload"));
    let listed: Value = api
        .get(format!("{base}/tickets?limit=100"))
        .send()
        .await
        .expect("list tickets")
        .json()
        .await
        .expect("list JSON");
    let same_title = listed["items"]
        .as_array()
        .map_or(0, |items| items.iter().filter(|t| t["title"] == title).count());
    assert_eq!(same_title, 1, "a double submit creates one ticket");
    assert_eq!(browser.eval(&format!("{}.status", row_js(first_id))).await, json!("new"));

    // WHEN its status is changed in RT itself
    rt.update(first_id, json!({"Status": "open"})).await;
    // THEN the row updates in place, from the live feed
    browser
        .wait_for(
            "the row to show the status change made in RT",
            SHOWN,
            &format!("(() => {{ const r = {}; return r && r.status === 'open' && r.event.includes('new → open'); }})()", row_js(first_id)),
        )
        .await;
    assert_eq!(browser.eval("window.boardTestMarker").await, json!("no reload"));

    // WHEN the gateway is killed
    gateway.kill().await;
    // THEN the indicator says so
    browser
        .wait_for(
            "the reconnecting indicator",
            SHOWN,
            "document.getElementById('connection').dataset.state === 'reconnecting'",
        )
        .await;

    // WHEN, while the board cannot reach the WebSocket API, a status change happens in RT and
    // a ticket is created through the API (a gateway on the same HTTP port records both)
    let offline = GatewayProcess::start(&settings(&prefix, http_port, free_port())).await;
    rt.update(first_id, json!({"Status": "stalled"})).await;
    let away = json!({"title": format!("{title} (while away)")});
    let second_id = create_ticket(&api, &base, &away).await;
    wait_for("both missed notifications to be stored", SHOWN, || {
        let (api, base) = (api.clone(), base.clone());
        async move {
            let items = notifications(&api, &base).await;
            let stalled = items
                .iter()
                .any(|n| n["ticket"]["id"] == first_id && n["change"]["new"] == "stalled");
            let created = items.iter().any(|n| n["id"] == format!("ticket-{second_id}-created"));
            (stalled && created).then_some(())
        }
    })
    .await;
    assert_eq!(
        browser.eval("document.getElementById('connection').dataset.state").await,
        json!("reconnecting"),
        "the board has not reached a WebSocket API yet"
    );
    offline.stop().await;

    // AND the gateway comes back on its ports (telling sockets older than 2 s to reconnect)
    let mut back = settings(&prefix, http_port, ws_port);
    back.extra_env.push(("WS_RECONNECT_AFTER_SECS".into(), "2".into()));
    let restored = GatewayProcess::start(&back).await;
    // THEN the board resumes, counting the missed events, and applies them
    let resumed = browser
        .wait_for(
            "the resumed indicator with the missed events",
            SHOWN,
            r"(() => { const c = document.getElementById('connection'); const m = /Resumed, (\d+) missed event/.exec(c.textContent); return c.dataset.state === 'resumed' && m && Number(m[1]) >= 2 ? c.textContent : null; })()",
        )
        .await;
    // Exactly the two events of its own queue were missed.
    assert_eq!(resumed, json!("Resumed, 2 missed events"));
    browser
        .wait_for(
            "the missed status change and the missed ticket",
            SHOWN,
            &format!(
                "(() => {{ const a = {}; const b = {}; return a && a.status === 'stalled' && b !== null; }})()",
                row_js(first_id),
                row_js(second_id)
            ),
        )
        .await;
    eprintln!("board: {}", resumed.as_str().unwrap_or(""));

    // AND the screenshots, at desktop and phone widths
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("board");
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let update_docs = std::env::var("UPDATE_BOARD_SCREENSHOTS").is_ok_and(|v| v == "1");
    for (name, width, height, mobile) in
        [("board-desktop.png", 1280, 900, false), ("board-phone.png", 390, 844, true)]
    {
        browser.viewport(width, height, mobile).await;
        // Readable at this width: nothing wider than the viewport.
        browser
            .wait_for(
                &format!("the page to fit {width} px"),
                SHOWN,
                "document.documentElement.scrollWidth <= window.innerWidth",
            )
            .await;
        // The list, under the sticky header with the indicator.
        browser.eval("document.getElementById('list-section').scrollIntoView()").await;
        let mut paths = vec![out.join(name)];
        if update_docs {
            paths.push(docs.join(name));
        }
        browser.screenshot(&paths).await;
        eprintln!("board: screenshot {}", paths[0].display());
    }
    browser.viewport(1280, 900, false).await;

    // WHEN an invalid title (white space only) is submitted
    browser.focus("#new-title").await;
    browser.type_text("   ").await;
    browser.press("Enter").await;
    // THEN the API's field error is shown beside the title, which is marked invalid
    let error = browser
        .wait_for(
            "the title's field error",
            SHOWN,
            "(() => { const i = document.getElementById('new-title'); const e = document.getElementById('title-error'); return i.getAttribute('aria-invalid') === 'true' && e.textContent; })()",
        )
        .await;
    assert!(error.as_str().is_some_and(|e| !e.is_empty()), "{error}");
    assert_eq!(browser.eval("document.activeElement.id").await, json!("new-title"));

    // WHEN the socket is older than the API keeps sockets, and the board pings (as it does
    // every 5 minutes, and when its tab is shown again)
    browser
        .wait_for(
            "a reconnect handover after a ping",
            SHOWN,
            "(() => { document.dispatchEvent(new Event('visibilitychange')); return document.getElementById('connection').textContent === 'Resumed, 0 missed events'; })()",
        )
        .await;
    // THEN the next socket carries the live feed: a new ticket appears once
    let after = json!({"title": format!("{title} (after the handover)")});
    let third_id = create_ticket(&api, &base, &after).await;
    browser.wait_for("the ticket created after the handover", SHOWN, &row_js(third_id)).await;
    assert_eq!(
        browser
            .eval(&format!("document.querySelectorAll('tr[data-ticket-id=\"{third_id}\"]').length"))
            .await,
        json!(1)
    );

    // WHEN the list is filtered by status
    browser.eval("document.getElementById('filter-status').value = 'stalled'").await;
    browser.focus("#filter-queue").await;
    browser.press("Enter").await;
    // THEN only stalled tickets are listed
    browser
        .wait_for(
            "only stalled tickets",
            SHOWN,
            &format!(
                "(() => {{ const rows = [...document.querySelectorAll('#ticket-rows tr')]; return {} !== null && {} === null && {} === null && rows.every(r => r.dataset.status === 'stalled'); }})()",
                row_js(first_id),
                row_js(second_id),
                row_js(third_id)
            ),
        )
        .await;

    let errors = browser.page_errors();
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
    drop(browser);
    restored.stop().await;
    delete_tables(&dynamodb, &tables).await;
}

/// A browser showing the board at `base` with `key` typed into its key form.
async fn key_typed_into_the_board(base: &str, key: &str) -> Browser {
    let browser = Browser::launch().await;
    browser.viewport(1280, 900, false).await;
    browser.navigate(&format!("{base}/")).await;
    browser.wait_for("the key form", SHOWN, "document.documentElement.dataset.ready === 'true' && !document.getElementById('key-section').hidden").await;
    browser.focus("#api-key").await;
    browser.type_text(key).await;
    browser
}

/// Tables for one session, and a key for `queues` with every scope.
async fn session_tables(
    name: &str,
    queues: &[&str],
) -> (aws_sdk_dynamodb::Client, Tables, String, String) {
    let prefix = unique_prefix(name);
    let dynamodb = client_from_env().await;
    let tables = Tables::with_prefix(&prefix);
    create_tables(&dynamodb, &tables).await.expect("create the board test's tables");
    let key = mint_key(&dynamodb, &tables, name, &Scope::ALL).await;
    let key_id = key.split('_').nth(1).expect("a key rtr_<id>_<secret>");
    let keys = DynamoApiKeys::new(dynamodb.clone(), tables.api_keys.clone().expect("keys table"));
    let queues: Vec<String> = queues.iter().map(|q| (*q).to_owned()).collect();
    assert!(keys.set_queues(key_id, &queues).await.expect("set the key's queues"));
    (dynamodb, tables, prefix, key)
}

async fn post_ticket_in(api: &reqwest::Client, base: &str, title: &str, queue: &str) -> u64 {
    create_ticket(api, base, &json!({"title": title, "queue": queue})).await
}

/// The notifications the page's WebSockets received about ticket `id`, in order.
fn received_about(messages: &[WsMessage], id: u64) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| !m.sent && m.message["ticket"]["id"] == id)
        .map(|m| m.message.clone())
        .collect()
}

/// Waits until a socket received a message `pred` accepts; all messages so far.
async fn wait_for_received(
    browser: &Browser,
    what: &str,
    pred: impl Fn(&WsMessage) -> bool,
) -> Vec<WsMessage> {
    wait_for(what, SHOWN, || {
        let messages = browser.websocket_messages();
        let seen = messages.iter().any(|m| !m.sent && pred(m));
        std::future::ready(seen.then_some(messages))
    })
    .await
}

/// Applies the page's filter form (the status chosen, then Enter in the queue field) and
/// waits until the relay confirmed the socket's new subscription, which the page shows.
async fn apply_filters(browser: &Browser, status: &str, shown: &str, subscription: &Value) {
    browser
        .eval(&format!("document.getElementById('filter-status').value = {}", json!(status)))
        .await;
    browser.focus("#filter-queue").await;
    browser.press("Enter").await;
    browser
        .wait_for(
            &format!("the page to show the live feed narrowed to {shown:?}"),
            SHOWN,
            &format!(
                "document.getElementById('list-caption').dataset.liveFilter === {}",
                json!(shown)
            ),
        )
        .await;
    let want = json!({"type": "subscribed", "subscription": subscription});
    wait_for_received(browser, &format!("the answer {want}"), |m| m.message == want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_board_narrows_its_websocket_by_queue_and_status() {
    let _one = ONE_BROWSER.lock().await;
    // GIVEN a key for two queues and the gateway (its sync brings RT's status changes; a
    // socket older than 2 s is told to reconnect when it pings)
    let rt = RtActor::new();
    rt.ensure_queue(WATCHED).await;
    rt.ensure_queue(ELSEWHERE).await;
    let (dynamodb, tables, prefix, key) =
        session_tables("board-filter", &[WATCHED, ELSEWHERE]).await;
    let mut gateway_settings = settings(&prefix, free_port(), free_port());
    gateway_settings.extra_env.push(("WS_RECONNECT_AFTER_SECS".into(), "2".into()));
    let gateway = GatewayProcess::start(&gateway_settings).await;
    let base = gateway.http_url.clone();
    let api = authorized_client(&key);
    // The sync's first run places its cursor at RT's newest transaction: the RT changes
    // below must come after it.
    let events = DynamoEvents::new(dynamodb.clone(), tables.clone());
    wait_for("the sync's first run", SHOWN, || {
        let events = &events;
        async move { events.position().await.ok().flatten() }
    })
    .await;

    // WHEN a person opens the board with it
    let browser = key_typed_into_the_board(&base, &key).await;
    browser.press("Enter").await;
    // THEN the live feed connects unfiltered, and the list asks for a queue (the API lists
    // one queue at a time for a key with several), marking the queue filter
    browser
        .wait_for(
            "the connected indicator and the list's request for a queue",
            SHOWN,
            "document.getElementById('connection').dataset.state === 'connected' && document.getElementById('list-error').textContent.includes('several queues')",
        )
        .await;
    assert_eq!(
        browser.eval("document.getElementById('filter-queue').getAttribute('aria-invalid')").await,
        json!("true")
    );
    let sockets = browser.websockets();
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    let first_socket = reqwest::Url::parse(&sockets[0].1).expect("a socket URL");
    assert!(
        !first_socket.query_pairs().any(|(k, _)| k == "queue" || k == "status"),
        "no filter yet: {first_socket}"
    );

    // WHEN the person names the watched queue in the filter (typed, Enter)
    browser.focus("#filter-queue").await;
    browser.type_text(WATCHED).await;
    // THEN the list loads and the open socket is narrowed to it by `subscribe`
    apply_filters(
        &browser,
        "",
        &format!("queue {WATCHED}"),
        &json!({"queue": [WATCHED], "type": [], "ticket": []}),
    )
    .await;
    assert_eq!(browser.eval("document.getElementById('list-error').textContent").await, json!(""));
    assert_eq!(browser.websockets().len(), 1, "the same socket, narrowed");

    // WHEN a ticket is created in the other queue, then one in the watched queue
    let elsewhere = post_ticket_in(&api, &base, "Board filter: elsewhere", ELSEWHERE).await;
    let watched = post_ticket_in(&api, &base, "Board filter: watched", WATCHED).await;
    // THEN the watched one appears live; the other never reached the socket (the two were
    // pushed in that order on one stream, so it would have arrived first)
    browser.wait_for("the watched queue's new ticket", SHOWN, &row_js(watched)).await;
    let messages = wait_for_received(&browser, "the watched ticket's notification", |m| {
        m.message["id"] == format!("ticket-{watched}-created")
    })
    .await;
    assert_eq!(received_about(&messages, elsewhere), Vec::<Value>::new());
    assert_eq!(browser.eval(&row_js(elsewhere)).await, Value::Null);

    // WHEN the status filter is set to open as well
    apply_filters(
        &browser,
        "open",
        &format!("queue {WATCHED}; status open"),
        &json!({"queue": [WATCHED], "type": [], "ticket": [], "status": ["open"]}),
    )
    .await;
    // THEN the new ticket (status new) leaves the list
    assert_eq!(browser.eval(&row_js(watched)).await, Value::Null);

    // WHEN a ticket is created (new) and then opened in RT
    let ticket = post_ticket_in(&api, &base, "Board filter: opened later", WATCHED).await;
    rt.update(ticket, json!({"Status": "open"})).await;
    // THEN its row appears once it is open; its creation (status new) never reached the
    // socket, though it came first on the stream
    let row_status = |status: &str| {
        format!(
            "(() => {{ const r = {}; return r !== null && r.status === {}; }})()",
            row_js(ticket),
            json!(status)
        )
    };
    browser.wait_for("the opened ticket's row", SHOWN, &row_status("open")).await;
    let messages = wait_for_received(&browser, "the change to open", |m| {
        m.message["ticket"]["id"] == ticket && m.message["change"]["new"] == "open"
    })
    .await;
    let about: Vec<Value> =
        received_about(&messages, ticket).iter().map(|n| n["type"].clone()).collect();
    assert_eq!(about, [json!("ticket.status_changed")], "no ticket.created (status new)");

    // WHEN it is resolved in RT: it leaves the watched status
    rt.update(ticket, json!({"Status": "resolved"})).await;
    // THEN the socket still hears it, and the row goes
    browser
        .wait_for("the resolved ticket's row to go", SHOWN, &format!("{} === null", row_js(ticket)))
        .await;
    wait_for_received(&browser, "the change to resolved", |m| {
        m.message["ticket"]["id"] == ticket && m.message["change"]["new"] == "resolved"
    })
    .await;

    // WHEN it moves between two unwatched statuses (resolved to stalled; stored before the
    // next change, so its ticket reads stalled), then back to open
    rt.update(ticket, json!({"Status": "stalled"})).await;
    wait_for("the change to stalled to be stored", SHOWN, || {
        let (api, base) = (api.clone(), base.clone());
        async move {
            notifications(&api, &base)
                .await
                .iter()
                .any(|n| n["ticket"]["id"] == ticket && n["change"]["new"] == "stalled")
                .then_some(())
        }
    })
    .await;
    rt.update(ticket, json!({"Status": "open"})).await;
    // THEN only the change back to open reaches the socket, and the row is back
    browser.wait_for("the reopened ticket's row", SHOWN, &row_status("open")).await;
    let messages = wait_for_received(&browser, "the change back to open", |m| {
        m.message["ticket"]["id"] == ticket && m.message["change"]["old"] == "stalled"
    })
    .await;
    let changes: Vec<Value> =
        received_about(&messages, ticket).iter().map(|n| n["change"]["new"].clone()).collect();
    assert_eq!(
        changes,
        [json!("open"), json!("resolved"), json!("open")],
        "not the change to stalled"
    );

    // WHEN the socket is handed over (the board pings when its tab is shown again; the
    // socket is older than 2 s, so the relay answers `reconnect`)
    browser
        .wait_for(
            "the reconnect handover",
            SHOWN,
            "(() => { document.dispatchEvent(new Event('visibilitychange')); return document.getElementById('connection').dataset.state === 'resumed'; })()",
        )
        .await;
    // THEN the new socket's handshake carries both filters, and it is sent no `subscribe`
    let sockets = browser.websockets();
    assert_eq!(sockets.len(), 2, "{sockets:?}");
    let (new_socket, url) = sockets[1].clone();
    let url = reqwest::Url::parse(&url).expect("a socket URL");
    let filters: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k == "queue" || k == "status")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(
        filters,
        [("queue".to_owned(), WATCHED.to_owned()), ("status".to_owned(), "open".to_owned())],
        "{url}"
    );
    assert!(url.query_pairs().any(|(k, _)| k == "since"), "it resumes: {url}");
    // WHEN a ticket of the other queue is opened in RT (it matches the status, not the
    // queue), then the watched ticket is resolved
    let other = post_ticket_in(&api, &base, "Board filter: opened elsewhere", ELSEWHERE).await;
    rt.update(other, json!({"Status": "open"})).await;
    rt.update(ticket, json!({"Status": "resolved"})).await;
    // THEN the new socket hears the watched ticket leave open (its row goes), and never the
    // other queue's ticket
    let messages = wait_for_received(&browser, "the second change to resolved", |m| {
        m.socket == new_socket
            && m.message["ticket"]["id"] == ticket
            && m.message["change"]["new"] == "resolved"
    })
    .await;
    browser
        .wait_for(
            "the resolved ticket's row to go again",
            SHOWN,
            &format!("{} === null", row_js(ticket)),
        )
        .await;
    assert_eq!(received_about(&messages, other), Vec::<Value>::new());
    let sent_on_new: Vec<Value> = messages
        .iter()
        .filter(|m| m.sent && m.socket == new_socket && m.message["action"] == "subscribe")
        .map(|m| m.message.clone())
        .collect();
    assert_eq!(sent_on_new, Vec::<Value>::new(), "the handshake alone narrowed it");
    assert_eq!(
        browser.eval("document.getElementById('connection').textContent").await,
        json!("Resumed, 0 missed events")
    );

    let errors = browser.page_errors();
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
    drop(browser);
    gateway.stop().await;
    delete_tables(&dynamodb, &tables).await;
}
