//! Tenant safety (issue 14) against the real services: what one API key may see and do,
//! and what it cannot do to another's data.

use std::time::Duration as StdDuration;

use reqwest::StatusCode;
use rt_relay_gateway::Gateway;
use rt_relay_shared::{
    auth::{ApiKeyStore, Scope},
    store::{dynamodb::DynamoStore, ConnectionOwner, ConnectionStore, PageAfter, Recipient},
};
use rt_relay_tests::{
    services::{delete_tables, fresh_tables, open_connection, unique},
    stack::{
        authorized_client, get_json, handshake_status, wait_for, ws_url_with_key, Running, Stack,
        WsClient,
    },
};
use rt_relay_tools::{
    keys::{run, Command, RevokeArgs},
    sockets::ManagedSockets,
    Outcome,
};
use serde_json::{json, Value};

/// The public id of a whole key.
fn id_of(key: &str) -> &str {
    key.split('_').nth(1).expect("a key rtr_<id>_<secret>")
}

/// A key with `scopes` limited to `queues` (empty: the relay's default queue).
async fn key_with(stack: &Stack, scopes: &[Scope], queues: &[&str]) -> String {
    let key = stack.mint_key(scopes).await;
    let queues: Vec<String> = queues.iter().map(|q| q.to_string()).collect();
    assert!(stack.keys().set_queues(id_of(&key), &queues).await.expect("set queues"));
    key
}

/// POSTs a ticket; the status and the JSON answer.
async fn create(
    http: &reqwest::Client,
    base: &str,
    body: &Value,
    idempotency_key: Option<&str>,
) -> (StatusCode, Value, bool) {
    let mut req = http.post(format!("{base}/tickets")).json(body);
    if let Some(k) = idempotency_key {
        req = req.header("idempotency-key", k);
    }
    let resp = req.send().await.expect("POST /tickets");
    let status = resp.status();
    let replayed = resp.headers().contains_key("idempotent-replayed");
    (status, resp.json().await.unwrap_or(Value::Null), replayed)
}

/// Two API keys sending the same `Idempotency-Key` and body create two tickets; each
/// key's retry replays its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keys_with_the_same_idempotency_key_and_body_create_two_tickets() {
    let Running { stack, gateway, http: a, base } = Stack::running("ten-idem").await;
    let b = authorized_client(&key_with(&stack, &[Scope::TicketsWrite], &[]).await);
    let body = json!({ "title": unique("same key"), "description": "same body" });
    let (sa, ta, _) = create(&a, &base, &body, Some("1")).await;
    let (sb, tb, replayed_b) = create(&b, &base, &body, Some("1")).await;
    assert_eq!((sa, sb), (StatusCode::CREATED, StatusCode::CREATED), "{ta} {tb}");
    assert!(!replayed_b, "B got A's stored answer");
    assert_ne!(ta["id"], tb["id"], "one ticket for two clients");
    let (_, again, replayed) = create(&b, &base, &body, Some("1")).await;
    assert!(replayed);
    assert_eq!(again["id"], tb["id"]);
    stack.finish(gateway).await;
}

/// A key limited to one queue cannot create in another, read another's tickets by id or
/// in lists, and its WebSocket never receives another queue's notifications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_limited_key_sees_and_touches_only_its_queue() {
    // The stack's key may use every queue; the limited one only Support.
    let Running { stack, gateway, http: admin, base } = Stack::running("ten-queue").await;
    let limited_key = key_with(
        &stack,
        &[Scope::TicketsWrite, Scope::TicketsRead, Scope::NotificationsRead],
        &["Support"],
    )
    .await;
    let limited = authorized_client(&limited_key);
    let mut socket = WsClient::connect(&ws_url_with_key(&gateway.ws_url(), &limited_key)).await;

    let (s, general, _) =
        create(&admin, &base, &json!({ "title": unique("general"), "queue": "General" }), None)
            .await;
    assert_eq!(s, StatusCode::CREATED, "{general}");
    let (s, support, _) =
        create(&admin, &base, &json!({ "title": unique("support"), "queue": "Support" }), None)
            .await;
    assert_eq!(s, StatusCode::CREATED, "{support}");
    let (gid, sid) = (general["id"].as_u64().unwrap(), support["id"].as_u64().unwrap());

    // Create: only in its queue (and without a queue, in its only queue).
    let (s, refused, _) =
        create(&limited, &base, &json!({ "title": "t", "queue": "General" }), None).await;
    assert_eq!(
        (s, refused["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("queue_forbidden"))
    );
    let (s, own, _) = create(&limited, &base, &json!({ "title": unique("own") }), None).await;
    assert_eq!((s, own["queue"].as_str()), (StatusCode::CREATED, Some("Support")), "{own}");

    // Read by id: the other queue's ticket does not exist for this key.
    let get = |id: u64| limited.get(format!("{base}/tickets/{id}")).send();
    assert_eq!(get(gid).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(get(sid).await.unwrap().status(), StatusCode::OK);

    // Lists: its queue only; asking for another queue is refused.
    let page = get_json(&limited, &format!("{base}/tickets?limit=100")).await;
    let items = page["items"].as_array().expect("items");
    assert!(items.iter().any(|t| t["id"] == sid), "{page}");
    assert!(items.iter().all(|t| t["queue"] == "Support"), "{page}");
    let other = limited.get(format!("{base}/tickets?queue=General")).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let notes = get_json(&limited, &format!("{base}/notifications?limit=100")).await;
    let notes = notes["items"].as_array().expect("items");
    assert!(notes.iter().any(|n| n["ticket"]["id"] == sid));
    assert!(notes.iter().all(|n| n["ticket"]["queue"] == "Support"), "{notes:?}");

    // The push: Support's notification arrives; General's, pushed before it from the same
    // ordered stream, never did.
    assert!(socket.wait_for_ticket(sid, StdDuration::from_secs(30)).await.is_some());
    assert!(
        !socket.received.iter().any(|n| n["ticket"]["id"] == gid),
        "received another queue's notification: {:?}",
        socket.received
    );
    socket.close().await;
    stack.finish(gateway).await;
}

/// `requestor` makes RT mail an address: only a key with `tickets:requestor` may set it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_key_with_the_requestor_scope_can_set_requestor() {
    let Running { stack, gateway, http, base } = Stack::running("ten-req").await;
    let writer =
        authorized_client(&key_with(&stack, &[Scope::TicketsWrite, Scope::TicketsRead], &[]).await);
    let body = json!({ "title": unique("requestor"), "requestor": "someone@example.com" });
    let (s, refused, _) = create(&writer, &base, &body, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "requestor_forbidden");
    assert_eq!(refused["error"]["field"], "requestor");
    let (s, created, _) = create(&http, &base, &body, None).await;
    assert_eq!(
        (s, created["requestor"].as_str()),
        (StatusCode::CREATED, Some("someone@example.com"))
    );
    stack.finish(gateway).await;
}

/// A key at its connection limit is refused at `$connect` with 429; another key is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_connection_limit_is_refused_at_connect() {
    let stack = Stack::new("ten-limit").await;
    let mut config = stack.config.clone();
    config.max_connections_per_key = 2;
    let gateway = Gateway::start(config).await.expect("gateway");
    let key = key_with(&stack, &[Scope::NotificationsRead], &[]).await;
    let url = ws_url_with_key(&gateway.ws_url(), &key);
    let first = WsClient::connect(&url).await;
    let second = WsClient::connect(&url).await;
    assert_eq!(handshake_status(&url).await, 429, "a third connection of the same key");
    assert_eq!(handshake_status(&stack.ws_url(&gateway)).await, 101, "another key");
    first.close().await;
    // Once one closed ($disconnect forgot it), the key may connect again.
    wait_for("the closed connection to be forgotten", StdDuration::from_secs(10), || async {
        (stack.stored_connections().await.len() == 1).then_some(())
    })
    .await;
    let third = WsClient::connect(&url).await;
    second.close().await;
    third.close().await;
    stack.finish(gateway).await;
}

/// Revoking a key closes its open WebSockets through `@connections` DELETE; another key's
/// socket stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_closes_its_open_websockets() {
    let Running { stack, gateway, .. } = Stack::running("ten-revoke").await;
    let key = key_with(&stack, &[Scope::NotificationsRead], &[]).await;
    let url = ws_url_with_key(&gateway.ws_url(), &key);
    let mut a = WsClient::connect(&url).await;
    let mut b = WsClient::connect(&url).await;
    let mut other = WsClient::connect(&stack.ws_url(&gateway)).await;

    let sdk = rt_relay_shared::aws::sdk_config().expect("AWS configuration from the environment");
    let sockets = ManagedSockets::new(
        DynamoStore::new(stack.dynamodb.clone(), stack.tables().clone()),
        &sdk,
        &gateway.management_endpoint(),
    );
    let command = Command::Revoke(RevokeArgs {
        key_id: id_of(&key).to_owned(),
        management_endpoint: Some(gateway.management_endpoint()),
        connections_table: None,
    });
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = run(command, &stack.keys(), Some(&sockets), "keys", &mut out, &mut err)
        .await
        .expect("written");
    let said = String::from_utf8_lossy(&out);
    assert_eq!(outcome, Outcome::Success, "{said} {}", String::from_utf8_lossy(&err));
    assert!(said.contains("closed 2 open WebSocket"), "{said}");
    assert!(a.wait_closed_by_server(StdDuration::from_secs(10)).await, "socket a still open");
    assert!(b.wait_closed_by_server(StdDuration::from_secs(10)).await, "socket b still open");
    // The other key's socket is untouched: it still answers.
    other.send_text("ping").await;
    assert!(other.next_text(StdDuration::from_secs(10)).await.is_some());
    assert_eq!(handshake_status(&url).await, 401, "the revoked key cannot reconnect");
    other.close().await;
    stack.finish(gateway).await;
}

/// 30 tickets whose 64 KiB descriptions are characters JSON escapes: every list page stays
/// far under Lambda's 6 MB (items carry a 1 KiB excerpt); GET /tickets/{id} has it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_stay_under_lambdas_limit_with_large_descriptions() {
    let Running { stack, gateway, http, base } = Stack::running("ten-pages").await;
    // `"`, `\` and newline each become two bytes in JSON: 128 KiB escaped per ticket.
    let description = "\"\\\n".repeat(64 * 1024 / 3) + "x";
    assert!(description.len() <= 64 * 1024);
    let mut ids = Vec::new();
    for i in 0..30 {
        let body = json!({ "title": unique(&format!("big {i}")), "description": description });
        let (s, t, _) = create(&http, &base, &body, None).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        ids.push(t["id"].as_u64().unwrap());
    }
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut url = format!("{base}/tickets?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let resp = http.get(url).send().await.expect("GET /tickets");
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = resp.bytes().await.expect("page body");
        assert!(bytes.len() < 6_291_556, "a page of {} bytes", bytes.len());
        let page: Value = serde_json::from_slice(&bytes).expect("JSON page");
        for item in page["items"].as_array().expect("items") {
            assert!(item["description"].as_str().unwrap().len() <= 1024, "an excerpt");
            seen += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(url::form_urlencoded::byte_serialize(c.as_bytes()).collect()),
            None => break,
        }
    }
    assert!(seen >= 30);
    let full = get_json(&http, &format!("{base}/tickets/{}", ids[0])).await;
    assert_eq!(full["description"].as_str(), Some(description.as_str()));
    stack.finish(gateway).await;
}

/// Connections record the key they were admitted with: the `by-key` index counts and lists
/// one key's connections, and the push reads each connection's queue rights.
#[tokio::test]
async fn connections_record_their_api_key_and_are_found_by_it() {
    let (client, tables) = fresh_tables("tenancy-conn").await;
    let store = DynamoStore::new(client.clone(), tables.clone());
    let owner = |key: &str, queues: &str| ConnectionOwner {
        key_id: key.to_owned(),
        queues: queues.to_owned(),
    };
    store.add_owned(&open_connection("a1"), &owner("aaaa", r#"["A"]"#)).await.unwrap();
    store.add_owned(&open_connection("a2"), &owner("aaaa", r#"["A"]"#)).await.unwrap();
    store.add_owned(&open_connection("b1"), &owner("bbbb", r#"["*"]"#)).await.unwrap();
    store.add(&open_connection("legacy")).await.unwrap();

    assert_eq!(store.count_for_key("aaaa").await.unwrap(), 2);
    let mut ids = store.ids_for_key("aaaa").await.unwrap();
    ids.sort();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(store.count_for_key("cccc").await.unwrap(), 0);

    let mut all = Vec::new();
    let mut page = PageAfter::first(2);
    loop {
        let (recipients, next) = store.recipients(&page).await.unwrap();
        all.extend(recipients);
        match next {
            Some(n) => page.after = Some(n),
            None => break,
        }
    }
    all.sort_by(|x, y| x.id.cmp(&y.id));
    let expected = [
        Recipient {
            id: "a1".into(),
            queues: Some(r#"["A"]"#.into()),
            mark: Default::default(),
            filter: None,
        },
        Recipient {
            id: "a2".into(),
            queues: Some(r#"["A"]"#.into()),
            mark: Default::default(),
            filter: None,
        },
        Recipient {
            id: "b1".into(),
            queues: Some(r#"["*"]"#.into()),
            mark: Default::default(),
            filter: None,
        },
        Recipient { id: "legacy".into(), queues: None, mark: Default::default(), filter: None },
    ];
    assert_eq!(all, expected);

    store.remove("a1").await.unwrap();
    assert_eq!(store.ids_for_key("aaaa").await.unwrap(), ["a2"]);
    delete_tables(&client, &tables).await;
}
