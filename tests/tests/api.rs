//! The API handlers against the real RT and DynamoDB on moto: every route's success and
//! error paths, idempotency under concurrency, and failures that must leave nothing
//! half-written.

use std::{collections::HashMap, sync::Arc, time::Duration};

use lambda_http::{Body, Request, RequestExt, Response};
use rt_relay_shared::{
    config::RtConfig,
    handlers::{
        notifications::ListNotifications,
        tickets::{GetTicket, ListTickets, PostTicket},
        HttpHandler,
    },
    rt::{client_from_config, RtClient, RtQuery},
    store::{dynamodb::DynamoStore, PageRequest, TicketQuery, TicketStore},
    usecases::create_ticket::{CreateTicket, IdempotencyTiming},
    wiring,
};
use rt_relay_tests::{
    fault_proxy::{Fault, FaultProxy, Match},
    rt::highest_rt_id,
    services::{fresh_tables, record_sample, require_env, unique},
};
use serde_json::{json, Value};

fn rt_config(api_url: String) -> RtConfig {
    let token = require_env("RT_TOKEN");
    RtConfig::from_lookup(&|k| match k {
        "RT_API_URL" => Some(api_url.clone()),
        "RT_TOKEN" => Some(token.clone()),
        "RT_TIMEOUT_MS" => Some("2000".into()),
        _ => None,
    })
    .expect("RT config")
}

fn real_rt() -> Arc<dyn RtClient> {
    client_from_config(&rt_config(format!("{}/REST/2.0/", require_env("RT_URL"))))
        .expect("REST 2.0 client")
}

struct Api {
    store: Arc<DynamoStore>,
    rt: Arc<dyn RtClient>,
    post: PostTicket,
    get: GetTicket,
    list: ListTickets,
    notes: ListNotifications,
}

async fn api(tag: &str) -> Api {
    api_with(tag, real_rt()).await
}

async fn api_with(tag: &str, rt: Arc<dyn RtClient>) -> Api {
    let (client, tables) = fresh_tables(tag).await;
    let store = Arc::new(DynamoStore::new(client, tables));
    Api {
        post: PostTicket::new(CreateTicket::new(
            rt.clone(),
            store.clone(),
            store.clone(),
            "General".into(),
            IdempotencyTiming::for_rt_timeout(Duration::from_secs(2)),
        )),
        get: wiring::get_ticket_over(rt.clone(), store.clone()),
        list: wiring::list_tickets_over(store.clone()),
        notes: wiring::list_notifications_over(store.clone(), Default::default()),
        store,
        rt,
    }
}

fn request(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Request {
    let mut b =
        lambda_http::http::Request::builder().method(method).uri(format!("https://api.test{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = body.map(|s| Body::Text(s.to_owned())).unwrap_or(Body::Empty);
    let q: HashMap<String, String> =
        query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    b.body(body).expect("request").with_query_string_parameters(q)
}

fn post_req(body: &str, key: Option<&str>) -> Request {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    request("POST", "/tickets/", &[], &headers, Some(body))
}

fn get_req(path: &str, query: &[(&str, &str)]) -> Request {
    request("GET", path, query, &[], None)
}

/// `GET /tickets/{id}` with the path parameter set, as API Gateway routes it.
fn ticket_req(id: &str) -> Request {
    get_req(&format!("/tickets/{id}"), &[])
        .with_path_parameters(HashMap::from([("id".to_string(), id.to_string())]))
}

fn json_of(resp: &Response<Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref())
        .unwrap_or_else(|_| panic!("not JSON: {:?}", resp.body()))
}

fn error_code(resp: &Response<Body>) -> String {
    json_of(resp)["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn post_creates_in_rt_records_ticket_and_notification() {
    let api = api("post").await;
    let title = unique("Problema no Login");
    let body = json!({"title": title, "description": "Usuário não consegue fazer login no sistema.\n  detalhe"});
    let resp = api.post.handle(post_req(&body.to_string(), None)).await;
    assert_eq!(resp.status(), 201, "{:?}", resp.body());
    let t = json_of(&resp);
    let id = t["id"].as_u64().expect("numeric RT id");
    assert_eq!(t["title"], title);
    assert_eq!(t["description"], "Usuário não consegue fazer login no sistema.\n  detalhe");
    assert_eq!(t["status"], "new");
    assert_eq!(t["queue"], "General");
    assert!(t["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(resp.headers()["location"], format!("/tickets/{id}"));

    let in_rt = api.rt.get(id).await.unwrap();
    assert_eq!(in_rt.subject, title);
    assert_eq!(
        api.rt.description(id).await.unwrap(),
        "Usuário não consegue fazer login no sistema.\n  detalhe"
    );
    assert_eq!(api.store.get_ticket(id).await.unwrap().unwrap().title, title);
    let notes = json_of(&api.notes.handle(get_req("/notifications", &[])).await);
    assert_eq!(notes["items"][0]["type"], "ticket.created");
    assert_eq!(notes["items"][0]["ticket"]["id"], id);
    assert_eq!(notes["items"][0]["id"], format!("ticket-{id}-created"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_nothing_is_written() {
    let api = api("badinput").await;
    let cases: Vec<(Request, u16, &str)> = vec![
        (post_req(r#"{"description":"no title"}"#, None), 400, "invalid_request"),
        (post_req("{not json", None), 400, "invalid_request"),
        (post_req(r#"{"title":"a\nOwner: root"}"#, None), 400, "invalid_request"),
        (post_req(&json!({"title": "x".repeat(201)}).to_string(), None), 400, "invalid_request"),
        (
            request("POST", "/tickets", &[], &[("content-type", "text/plain")], Some("{}")),
            415,
            "unsupported_media_type",
        ),
        (
            request("POST", "/tickets", &[], &[], Some(r#"{"title":"t"}"#)),
            415,
            "unsupported_media_type",
        ),
        (
            post_req(
                &format!(r#"{{"title":"t","description":"{}"}}"#, "a".repeat(600 * 1024)),
                None,
            ),
            413,
            "payload_too_large",
        ),
        (post_req(r#"{"title":"t"}"#, Some("has space")), 400, "invalid_idempotency_key"),
        (post_req(r#"{"title":"t","queue":"No Such Queue Anywhere"}"#, None), 422, "rt_refused"),
        // A wrong method (405) never reaches a handler: the gateway routes (API Gateway on
        // AWS); gateway/tests/in_memory.rs and tests/tests/e2e.rs check the 405.
    ];
    for (req, status, code) in cases {
        let resp = api.post.handle(req).await;
        assert_eq!(resp.status(), status, "{:?}", resp.body());
        let c = error_code(&resp);
        assert!(c == code || (code == "rt_refused" && c == "rt_rejected"), "{c} != {code}");
        assert_eq!(resp.headers()["content-type"], "application/json");
    }
    let page = api.store.list_tickets(&TicketQuery::first(10)).await.unwrap();
    assert!(page.items.is_empty(), "nothing recorded");
    assert!(api.store.list_notifications(&PageRequest::first(10)).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn get_ticket_reads_rt_and_refreshes_the_record() {
    let api = api("get").await;
    let resp = api
        .post
        .handle(post_req(&json!({"title": unique("to be opened")}).to_string(), None))
        .await;
    assert_eq!(resp.status(), 201);
    let id = json_of(&resp)["id"].as_u64().unwrap();

    // Change the status in RT directly.
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{}/REST/2.0/ticket/{id}", require_env("RT_URL")))
        .header("Authorization", format!("token {}", require_env("RT_TOKEN")))
        .json(&json!({"Status": "open"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let resp = api.get.handle(ticket_req(&id.to_string())).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json_of(&resp)["status"], "open");
    assert_eq!(api.store.get_ticket(id).await.unwrap().unwrap().status, "open", "record refreshed");
    let listed = json_of(&api.list.handle(get_req("/tickets", &[("status", "open")])).await);
    assert_eq!(listed["items"][0]["id"], id, "the status index follows");

    let missing = api.get.handle(ticket_req("99999999")).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(error_code(&missing), "not_found");
    for bad in ["abc", "0", "-1"] {
        let resp = api.get.handle(ticket_req(bad)).await;
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(json_of(&resp)["error"]["field"], "id");
    }
}

#[tokio::test]
async fn list_routes_page_and_refuse_bad_parameters() {
    let api = api("list").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let resp = api
            .post
            .handle(post_req(&json!({"title": unique(&format!("list {i}"))}).to_string(), None))
            .await;
        assert_eq!(resp.status(), 201);
        ids.push(json_of(&resp)["id"].as_u64().unwrap());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", "2")];
        if let Some(c) = &cursor {
            q.push(("cursor", c.as_str()));
        }
        let page = json_of(&api.list.handle(get_req("/tickets", &q)).await);
        seen.extend(page["items"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "newest first, every ticket once");
    let queue = json_of(
        &api.list.handle(get_req("/tickets", &[("queue", "General"), ("status", "new")])).await,
    );
    assert_eq!(queue["items"].as_array().unwrap().len(), 5);

    for (q, field) in [
        (vec![("limit", "0")], "limit"),
        (vec![("limit", "101")], "limit"),
        (vec![("limit", "x")], "limit"),
        (vec![("cursor", "garbage!")], "cursor"),
    ] {
        for resp in [
            api.list.handle(get_req("/tickets", &q)).await,
            api.notes.handle(get_req("/notifications", &q)).await,
        ] {
            assert_eq!(resp.status(), 400);
            assert_eq!(json_of(&resp)["error"]["field"], field);
        }
    }
    let notes = json_of(&api.notes.handle(get_req("/notifications", &[("limit", "3")])).await);
    assert_eq!(notes["items"].as_array().unwrap().len(), 3);
    assert!(notes["next_cursor"].is_string());
}

/// `issued` (a cursor the API gave out) with its key replaced by `key`: the scope hash stays
/// valid, so only the key's fields are wrong.
fn with_key(issued: &str, key: Value) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let mut envelope: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(issued).expect("base64url cursor"))
            .expect("JSON cursor");
    envelope["k"] = key;
    URL_SAFE_NO_PAD.encode(envelope.to_string())
}

#[tokio::test]
async fn cursors_with_empty_or_broken_fields_are_a_400_not_a_storage_failure() {
    let api = api("badcursor").await;
    for id in 1..=3u64 {
        record_sample(api.store.as_ref(), id).await;
    }
    let first = |list: &'static str| {
        let api = &api;
        async move {
            let req = get_req(list, &[("limit", "1")]);
            let resp = match list {
                "/tickets" => api.list.handle(req).await,
                _ => api.notes.handle(req).await,
            };
            assert_eq!(resp.status(), 200);
            json_of(&resp)["next_cursor"].as_str().expect("a next page").to_owned()
        }
    };
    let (tickets, notes) = (first("/tickets").await, first("/notifications").await);
    // GIVEN cursors that decode and carry the right scope WHEN a field is empty, missing,
    // of the wrong type or inconsistent THEN the answer is 400 on `cursor` (DynamoDB would
    // refuse an empty key attribute, which used to surface as a 503).
    let broken = [
        ("/notifications", json!({ "seq": "", "id": "" })),
        ("/notifications", json!({ "seq": "", "id": "x" })),
        ("/notifications", json!({ "seq": "1700000000001#x", "id": "" })),
        ("/notifications", json!({ "seq": "1700000000001#x", "id": "y" })),
        ("/notifications", json!({ "id": "x" })),
        ("/notifications", json!({ "seq": 5, "id": "x" })),
        ("/tickets", json!({ "id": 0 })),
        ("/tickets", json!({ "id": "" })),
        ("/tickets", json!({})),
    ];
    for (list, key) in broken {
        let issued = if list == "/tickets" { &tickets } else { &notes };
        let req = get_req(list, &[("cursor", &with_key(issued, key.clone()))]);
        let resp = if list == "/tickets" {
            api.list.handle(req).await
        } else {
            api.notes.handle(req).await
        };
        assert_eq!(resp.status(), 400, "{list} {key}: {:?}", resp.body());
        assert_eq!(json_of(&resp)["error"]["field"], "cursor", "{list} {key}");
    }
    // The cursors as issued still read the next page.
    let next = api.notes.handle(get_req("/notifications", &[("cursor", &notes)])).await;
    assert_eq!(next.status(), 200);
    assert_eq!(json_of(&next)["items"].as_array().map(Vec::len), Some(2));
}

/// RT tickets created since `after` whose subject is `title`.
async fn rt_tickets_titled(rt: &dyn RtClient, after: u64, title: &str) -> Vec<u64> {
    let mut found = Vec::new();
    let mut page = 1;
    loop {
        let got = rt
            .list(&RtQuery { min_id: Some(after + 1), ..RtQuery::default() }, page, 100)
            .await
            .expect("RT search");
        found.extend(got.tickets.iter().filter(|t| t.subject == title).map(|t| t.id));
        if !got.has_more || page > 50 {
            break;
        }
        page += 1;
    }
    found
}

#[tokio::test]
async fn twenty_parallel_requests_with_one_key_create_one_rt_ticket() {
    let api = Arc::new(api("idem-parallel").await);
    let before = highest_rt_id(api.rt.as_ref()).await;
    let title = unique("parallel");
    let body = json!({"title": title, "description": "once"}).to_string();
    let key = uuid::Uuid::new_v4().to_string();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (api, body, key) = (api.clone(), body.clone(), key.clone());
        tasks.push(tokio::spawn(async move { api.post.handle(post_req(&body, Some(&key))).await }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        let resp = t.await.unwrap();
        assert_eq!(resp.status(), 201, "{:?}", resp.body());
        bodies.push(json_of(&resp));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every caller gets the same answer");
    let id = bodies[0]["id"].as_u64().unwrap();
    assert_eq!(
        rt_tickets_titled(api.rt.as_ref(), before, &title).await,
        vec![id],
        "exactly one RT ticket"
    );
    assert_eq!(api.store.list_notifications(&PageRequest::first(50)).await.unwrap().items.len(), 1);

    // Same key, different body: refused.
    let other = api
        .post
        .handle(post_req(&json!({"title": "something else"}).to_string(), Some(&key)))
        .await;
    assert_eq!(other.status(), 422);
    assert_eq!(error_code(&other), "idempotency_key_reused");
    // Same key, same body, later: replayed.
    let again = api.post.handle(post_req(&body, Some(&key))).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.headers()["location"],
        format!("/tickets/{id}"),
        "a replay carries the Location too"
    );
    assert_eq!(json_of(&again), bodies[0]);
}

#[tokio::test]
async fn a_store_failure_after_rt_created_is_completed_by_the_retry() {
    let (client, tables) = fresh_tables("flaky").await;
    // The tickets port reaches moto through a fault proxy that refuses the transaction
    // recording the ticket, as if DynamoDB went away right after RT created it.
    let moto = FaultProxy::start(&require_env("AWS_ENDPOINT_URL")).await;
    let flaky = Arc::new(moto.dynamodb_store(&client, &tables));
    let store = Arc::new(DynamoStore::new(client, tables));
    moto.add_rule(Match::TRANSACT_WRITE, Fault::dynamodb_500(), None);
    let rt = real_rt();
    // A short retry grace: the retry waits it out inside its own claim loop (it sees the
    // key in progress until then), so the test needs no sleep of its own.
    let timing = IdempotencyTiming {
        retry_grace: Duration::from_millis(100),
        ..IdempotencyTiming::for_rt_timeout(Duration::from_secs(2))
    };
    let post = PostTicket::new(CreateTicket::new(
        rt.clone(),
        flaky,
        store.clone(),
        "General".into(),
        timing,
    ));
    let before = highest_rt_id(rt.as_ref()).await;
    let title = unique("flaky store");
    let body = json!({"title": title}).to_string();

    let first = post.handle(post_req(&body, Some("retry-me-1"))).await;
    assert_eq!(first.status(), 503, "{:?}", first.body());
    assert_eq!(error_code(&first), "storage_unavailable");
    assert!(
        store.list_notifications(&PageRequest::first(5)).await.unwrap().items.is_empty(),
        "nothing half-written"
    );

    assert!(moto.faulted() >= 1, "the transaction was refused");

    moto.set(Fault::PassThrough);
    let retry = post.handle(post_req(&body, Some("retry-me-1"))).await;
    assert_eq!(retry.status(), 201, "{:?}", retry.body());
    let id = json_of(&retry)["id"].as_u64().unwrap();
    assert_eq!(
        rt_tickets_titled(rt.as_ref(), before, &title).await,
        vec![id],
        "no second RT ticket"
    );
    assert_eq!(store.list_notifications(&PageRequest::first(5)).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn rt_failures_answer_502_or_504_and_write_nothing() {
    // Closed port: bind, note the port, drop the listener.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Silent server: accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    for (port, status, code) in [(closed, 502, "rt_unavailable"), (silent_port, 504, "rt_timeout")]
    {
        let mut cfg = rt_config(format!("http://127.0.0.1:{port}/REST/2.0/"));
        cfg.timeout = Duration::from_millis(500);
        let rt = client_from_config(&cfg).unwrap();
        let api = api_with(&format!("rtfail{port}"), rt).await;
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            api.post.handle(post_req(r#"{"title":"never created"}"#, Some("k-fail"))),
        )
        .await
        .expect("bounded");
        assert_eq!(resp.status(), status);
        assert_eq!(error_code(&resp), code);
        assert!(
            !String::from_utf8_lossy(resp.body().as_ref()).contains("127.0.0.1"),
            "no internals"
        );
        assert!(api.store.list_tickets(&TicketQuery::first(5)).await.unwrap().items.is_empty());
        assert!(api
            .store
            .list_notifications(&PageRequest::first(5))
            .await
            .unwrap()
            .items
            .is_empty());
    }
    holder.abort();
}
