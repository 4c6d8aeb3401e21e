//! RT's own events through the whole local stack, with 20 real WebSocket clients: a ticket
//! created by e-mail (`rt-mailgate`), a ticket created through RT's REST API, a status
//! change, an owner change, a reply and a comment made in RT each reach every client exactly
//! once, through the webhook path (RT's scrip, sync off) and through the sync path (no
//! webhook for this relay); the lists agree with RT afterwards. Also: refused webhook calls
//! change nothing, and a ticket created through `POST /tickets` yields one notification.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is the test failing

use std::{collections::HashMap, time::Duration};

use chrono::Utc;
use rt_relay_gateway::RunningGateway;
use rt_relay_shared::{
    config::RtApi,
    events::{dynamodb::DynamoEvents, signature::sign, store::SyncCursorStore},
    rt::transactions_client_from_config,
    secret::Secret,
};
use rt_relay_tests::{
    rt::{rt_config, token_auth},
    rt_actions::{mail_new_ticket, new_webhook_secret, RtActor, WebhookTarget},
    stack::{create_ticket, get_json, wait_for, Stack, WsClient},
};
use serde_json::{json, Value};

const CLIENTS: usize = 20;
/// Bound on any one wait (the machine is shared and RT is slow under load).
const WAIT: Duration = Duration::from_secs(90);

/// What a notification is, for matching: type, ticket and changed field.
fn key(v: &Value) -> (String, u64, String) {
    (
        v["type"].as_str().unwrap_or_default().to_owned(),
        v["ticket"]["id"].as_u64().unwrap_or_default(),
        v["change"]["field"].as_str().unwrap_or_default().to_owned(),
    )
}

fn expect(kind: &str, ticket: u64, field: &str) -> (String, u64, String) {
    (kind.to_owned(), ticket, field.to_owned())
}

/// Makes the six RT changes, then a last comment (the sentinel), and checks every client got
/// each change exactly once; then that the lists agree with RT.
async fn rt_changes_reach_every_client_once(stack: &Stack, http: &str, clients: &mut [WsClient]) {
    let actor = RtActor::new();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mailed =
        mail_new_ticket("customer@example.com", &format!("printer on fire {tag}"), "help").await;
    let made = actor.create("General", &format!("made in RT {tag}"), "by an agent").await;
    actor.update(made, json!({"Status": "open"})).await;
    actor.update(made, json!({"Owner": "root"})).await;
    actor.reply(made, "We are on it").await;
    actor.comment(made, "internal: call the vendor").await;
    let wanted = vec![
        expect("ticket.created", mailed, ""),
        expect("ticket.created", made, ""),
        expect("ticket.status_changed", made, "status"),
        expect("ticket.updated", made, "owner"),
        expect("ticket.replied", made, ""),
        expect("ticket.commented", made, ""),
    ];
    // The sentinel: once it arrived, everything before it was pushed (one stream, in order).
    actor.comment(mailed, &format!("sentinel {tag}")).await;
    for (i, client) in clients.iter_mut().enumerate() {
        let sentinel = client
            .wait_for_message(WAIT, |v| {
                v["type"] == "ticket.commented"
                    && v["ticket"]["id"] == mailed
                    && v["excerpt"].as_str().is_some_and(|e| e.contains(&tag))
            })
            .await;
        assert!(sentinel.is_some(), "client {i} never got the sentinel");
        let mut seen: HashMap<(String, u64, String), usize> = HashMap::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for v in &client.received {
            *seen.entry(key(v)).or_default() += 1;
            *ids.entry(v["id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        }
        for w in &wanted {
            assert_eq!(seen.get(w), Some(&1), "client {i}: {w:?} received {:?} times", seen.get(w));
        }
        assert!(ids.values().all(|n| *n == 1), "client {i}: a notification id came twice");
    }
    let reply = clients[0].received.iter().find(|v| key(v) == wanted[4]).unwrap();
    assert_eq!(reply["excerpt"], "We are on it");
    assert_eq!(reply["actor"], "root");
    assert!(reply["rt_transaction_id"].as_u64().is_some());
    assert_eq!(reply["ticket"]["status"], "open");
    assert_eq!(reply["ticket"]["owner"], "root");

    // The lists agree with RT.
    let rt_made = actor.ticket(made).await;
    let tickets = get_json(&stack.http(), &format!("{http}/tickets?limit=100")).await;
    let listed =
        |id: u64| tickets["items"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned();
    let made_listed = listed(made).expect("the RT-made ticket is listed");
    assert_eq!(made_listed["status"], rt_made["Status"]);
    assert_eq!(made_listed["title"], rt_made["Subject"]);
    assert_eq!(made_listed["description"], "by an agent");
    let mailed_listed = listed(mailed).expect("the mailed ticket is listed");
    assert_eq!(mailed_listed["requestor"], "customer@example.com");
    let open = get_json(&stack.http(), &format!("{http}/tickets?status=open&limit=100")).await;
    assert!(open["items"].as_array().unwrap().iter().any(|t| t["id"] == made));
    let notes = get_json(&stack.http(), &format!("{http}/notifications?limit=100")).await;
    let stored: Vec<(String, u64, String)> =
        notes["items"].as_array().unwrap().iter().map(key).collect();
    for w in &wanted {
        assert_eq!(stored.iter().filter(|s| *s == w).count(), 1, "stored {w:?}");
    }
    let replies =
        get_json(&stack.http(), &format!("{http}/notifications?type=ticket.replied")).await;
    let replies = replies["items"].as_array().unwrap();
    assert!(replies.iter().all(|n| n["type"] == "ticket.replied"));
    assert!(replies.iter().any(|n| n["ticket"]["id"] == made));
}

/// Connects the clients, runs the changes, and tears the stack down.
async fn run_with_clients(stack: &Stack, gateway: RunningGateway) {
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(WsClient::connect(&stack.ws_url(&gateway)).await);
    }
    rt_changes_reach_every_client_once(stack, &gateway.http_url(), &mut clients).await;
    for c in clients {
        c.close().await;
    }
    stack.finish(gateway).await;
}

#[tokio::test]
async fn rt_changes_reach_twenty_clients_once_through_the_webhook() {
    let secret = new_webhook_secret();
    let stack = Stack::with_vars("ev-webhook", &[("WEBHOOK_SECRET", secret.clone())]).await;
    let gateway = stack.start().await;
    let _target = WebhookTarget::register(&format!("{}/webhooks/rt", gateway.http_url()), &secret);
    run_with_clients(&stack, gateway).await;
}

#[tokio::test]
async fn rt_changes_reach_twenty_clients_once_through_the_sync() {
    let stack = Stack::with_vars("ev-sync", &[("GATEWAY_SYNC_INTERVAL_MS", "500".into())]).await;
    let gateway = stack.start().await;
    // The first run positions the cursor at RT's newest transaction: wait for it, so the
    // changes below come after it.
    let events = DynamoEvents::new(stack.dynamodb.clone(), stack.tables().clone());
    wait_for("the sync's first run", WAIT, || {
        let events = &events;
        async move { events.position().await.ok().flatten() }
    })
    .await;
    run_with_clients(&stack, gateway).await;
}

#[tokio::test]
async fn refused_webhook_calls_change_nothing() {
    let secret = new_webhook_secret();
    let stack = Stack::with_vars("ev-refused", &[("WEBHOOK_SECRET", secret.clone())]).await;
    let gateway = stack.start().await;
    let url = format!("{}/webhooks/rt", gateway.http_url());
    // A real transaction: the Create of a ticket made in RT now.
    let rt = transactions_client_from_config(&rt_config(RtApi::Rest2, token_auth())).unwrap();
    let before = rt.latest_transaction().await.unwrap().unwrap();
    let ticket = RtActor::new().create("General", "webhook refusals", "x").await;
    let create_txn = wait_for("RT's Create transaction", WAIT, || {
        let rt = &rt;
        async move {
            let page = rt.transactions_after(before, 100).await.unwrap();
            page.transactions
                .iter()
                .find(|t| t.ticket_id == ticket && t.kind == "Create")
                .map(|t| t.id)
        }
    })
    .await;
    let body = format!(r#"{{"ticket_id":{ticket},"transaction_id":{create_txn}}}"#);
    let now = Utc::now().timestamp();
    let key = Secret::new(secret.clone());
    let post = |ts: Option<String>, sig: Option<String>, body: String| {
        let url = url.clone();
        async move {
            let mut req = reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .body(body);
            if let Some(ts) = ts {
                req = req.header("x-rt-relay-timestamp", ts);
            }
            if let Some(sig) = sig {
                req = req.header("x-rt-relay-signature", sig);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let ts = Some(now.to_string());
    let wrong = sign(&Secret::new(new_webhook_secret()), now, body.as_bytes());
    let stale_ts = now - 301;
    let cases = [
        ("unsigned", None, None, 401, "invalid_signature"),
        ("wrongly signed", ts.clone(), Some(wrong), 401, "invalid_signature"),
        (
            "stale",
            Some(stale_ts.to_string()),
            Some(sign(&key, stale_ts, body.as_bytes())),
            401,
            "stale_signature",
        ),
    ];
    let http = gateway.http_url();
    let stored = |stack: &Stack, http: String| {
        let client = stack.http();
        async move {
            let notes = get_json(&client, &format!("{http}/notifications?limit=100")).await;
            let tickets = get_json(&client, &format!("{http}/tickets?limit=100")).await;
            (notes["items"].as_array().unwrap().len(), tickets["items"].as_array().unwrap().len())
        }
    };
    for (what, ts, sig, status, code) in cases {
        let (got, answer) = post(ts, sig, body.clone()).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{what}");
        assert_eq!(stored(&stack, http.clone()).await, (0, 0), "{what} changed nothing");
    }
    // A valid call for a transaction RT does not have: 404, nothing recorded.
    let ghost = format!(r#"{{"ticket_id":{ticket},"transaction_id":999999999}}"#);
    let (got, answer) =
        post(ts.clone(), Some(sign(&key, now, ghost.as_bytes())), ghost.clone()).await;
    assert_eq!((got, answer["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(stored(&stack, http.clone()).await, (0, 0));
    // The valid call records; its replay is refused and changes nothing.
    let signature = Some(sign(&key, now, body.as_bytes()));
    let (got, answer) = post(ts.clone(), signature.clone(), body.clone()).await;
    assert_eq!((got, answer["stored"].as_u64()), (200, Some(1)), "{answer}");
    assert_eq!(stored(&stack, http.clone()).await, (1, 1));
    let (got, answer) = post(ts, signature, body).await;
    assert_eq!((got, answer["error"]["code"].as_str()), (409, Some("replayed")));
    assert_eq!(stored(&stack, http).await, (1, 1));
    stack.finish(gateway).await;
}

#[tokio::test]
async fn a_ticket_created_through_post_yields_one_notification_on_every_path() {
    // Both paths on: the webhook and the sync both see RT's Create of the POSTed ticket.
    let secret = new_webhook_secret();
    let stack = Stack::with_vars(
        "ev-post-once",
        &[("WEBHOOK_SECRET", secret.clone()), ("GATEWAY_SYNC_INTERVAL_MS", "500".into())],
    )
    .await;
    let gateway = stack.start().await;
    let http = gateway.http_url();
    let _target = WebhookTarget::register(&format!("{http}/webhooks/rt"), &secret);
    let mut client = WsClient::connect(&stack.ws_url(&gateway)).await;
    let body = json!({"title": "posted once", "description": "through the API"});
    let id = create_ticket(&stack.http(), &http, &body).await;
    // A later change in RT: once it has arrived, both paths have seen the Create.
    RtActor::new().comment(id, "after the create").await;
    let commented = client
        .wait_for_message(WAIT, |v| v["type"] == "ticket.commented" && v["ticket"]["id"] == id)
        .await;
    assert!(commented.is_some(), "the comment never arrived");
    let created_pushes = client
        .received
        .iter()
        .filter(|v| v["type"] == "ticket.created" && v["ticket"]["id"] == id)
        .count();
    assert_eq!(created_pushes, 1);
    let notes =
        get_json(&stack.http(), &format!("{http}/notifications?type=ticket.created&limit=100"))
            .await;
    let stored =
        notes["items"].as_array().unwrap().iter().filter(|n| n["ticket"]["id"] == id).count();
    assert_eq!(stored, 1);
    client.close().await;
    stack.finish(gateway).await;
}
