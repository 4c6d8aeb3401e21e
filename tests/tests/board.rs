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
//! `UPDATE_BOARD_SCREENSHOTS=1`). Every wait is on something the page shows, bounded.

use std::{path::PathBuf, time::Duration};

use rt_relay_shared::{
    auth::{dynamodb::DynamoApiKeys, ApiKeyStore, Scope},
    config::Tables,
    model::{Notification, Ticket},
    store::{
        dynamodb::{client_from_env, DynamoStore},
        schema::create_tables,
        TicketStore,
    },
};
use rt_relay_tests::{
    browser::Browser,
    gateway_process::{GatewayProcess, ProcessSettings},
    rt_actions::RtActor,
    services::unique_prefix,
    stack::{authorized_client, mint_key, wait_for},
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
    // GIVEN the gateway binary on fixed loopback ports over its own tables, and a key
    let prefix = unique_prefix("board");
    let dynamodb = client_from_env().await;
    let tables = Tables::with_prefix(&prefix);
    create_tables(&dynamodb, &tables).await.expect("create the board test's tables");
    // The key's one queue is the board test's own, so other tests' RT tickets (which the
    // sync also reads) are neither listed nor pushed to it.
    let rt = RtActor::new();
    rt.ensure_queue(QUEUE).await;
    let key = mint_key(&dynamodb, &tables, "board", &Scope::ALL).await;
    let key_id = key.split('_').nth(1).expect("a key rtr_<id>_<secret>");
    let keys = DynamoApiKeys::new(dynamodb.clone(), tables.api_keys.clone().expect("keys table"));
    assert!(keys.set_queues(key_id, &[QUEUE.into()]).await.expect("set the key's queue"));
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
        store.record_created(&ticket, &created, None).await.expect("record an earlier ticket");
    }
    let (http_port, ws_port) = (free_port(), free_port());
    let gateway = GatewayProcess::start(&settings(&prefix, http_port, ws_port)).await;
    let base = gateway.http_url.clone();
    assert_eq!(base, format!("http://127.0.0.1:{http_port}"));
    let api = authorized_client(&key);

    // WHEN a person opens the board and gives the key (typed, Tab, Enter)
    let browser = Browser::launch().await;
    browser.viewport(1280, 900, false).await;
    browser.navigate(&format!("{base}/")).await;
    browser.wait_for("the key form", SHOWN, "document.documentElement.dataset.ready === 'true' && !document.getElementById('key-section').hidden").await;
    browser.focus("#api-key").await;
    browser.type_text(&key).await;
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
    let second: Value = api
        .post(format!("{base}/tickets"))
        .json(&json!({"title": format!("{title} (while away)")}))
        .send()
        .await
        .expect("create while the board is away")
        .json()
        .await
        .expect("create JSON");
    let second_id = second["id"].as_u64().expect("the second ticket's id");
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
    let third: Value = api
        .post(format!("{base}/tickets"))
        .json(&json!({"title": format!("{title} (after the handover)")}))
        .send()
        .await
        .expect("create after the handover")
        .json()
        .await
        .expect("create JSON");
    let third_id = third["id"].as_u64().expect("the third ticket's id");
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
    for name in [&tables.tickets, &tables.notifications, &tables.connections, &tables.idempotency]
        .into_iter()
        .chain(tables.api_keys.as_ref())
    {
        let _ = dynamodb.delete_table().table_name(name).send().await;
    }
}
