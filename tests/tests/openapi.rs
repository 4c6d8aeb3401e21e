//! Keeps `docs/openapi.json` true: it describes exactly the routes table
//! (`rt_relay_shared::routes`, which the gateway routes from) and nothing more, its schemas
//! match the domain types and limits, the gateway serves it byte for byte at `/openapi.json`, and real answers (HTTP and the WebSocket
//! push) from a run against RT and moto validate against it. `scripts/test.sh` then runs
//! schemathesis against the served document for the generated cases.

use std::collections::{BTreeSet, HashMap};

use axum::http::Method;
use rt_relay_gateway::http_api::{route, Routing};
use rt_relay_shared::{
    model::{NewTicket, MAX_DESCRIPTION_BYTES, MAX_EMAIL_BYTES, MAX_QUEUE_BYTES, MAX_TITLE_BYTES},
    routes::{self, Access, Api, Target},
    store::{cursor::MAX_LIMIT, PageRequest},
};
use rt_relay_tests::{
    openapi::{check_response, document, resolve, validate},
    services::{sample_notification, sample_ticket},
    stack::{Running, Stack, WsClient},
};
use serde_json::{json, Value};

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

/// A concrete path for a document path (each `{param}` → 42).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') && s.ends_with('}') { "42" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn canonical(path: &str) -> &str {
    path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path)
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.to_ascii_uppercase().as_bytes()).expect("method")
}

/// (path, method) of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.push((path.clone(), m.to_owned()));
            }
        }
    }
    out
}

/// The documented path (`/tickets/{id}`) a concrete request path falls under, if any.
fn documented_template<'a>(
    documented: &'a HashMap<String, BTreeSet<String>>,
    path: &str,
) -> Option<&'a str> {
    let segments: Vec<&str> = canonical(path).split('/').collect();
    documented.keys().map(String::as_str).find(|t| {
        let pattern: Vec<&str> = t.split('/').collect();
        pattern.len() == segments.len()
            && pattern.iter().zip(&segments).all(|(p, s)| {
                if p.starts_with('{') {
                    !s.is_empty()
                } else {
                    p == s
                }
            })
    })
}

#[test]
fn the_document_describes_exactly_the_routes_table() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.0.3");
    // Document → table: every operation is a row, with the row's key requirement.
    let mut documented: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (path, m) in operations(&doc) {
        let op = &doc["paths"][&path][&m];
        let verb = m.to_ascii_uppercase();
        let key = format!("{verb} {}", canonical(&path));
        let row = routes::by_route_key(&key).filter(|r| r.api == Api::Http).unwrap_or_else(|| {
            panic!("docs/openapi.json has {m} {path}; the routes table has no {key}")
        });
        match row.access {
            Access::Public => assert_eq!(op["security"], json!([]), "{key} is public: security []"),
            Access::Key(_) => assert!(
                op.get("security").is_none(),
                "{m} {path} uses the global API key requirement"
            ),
        }
        match row.target {
            Target::Function(_) => {
                assert_eq!(op["x-rt-relay-route"], key, "{m} {path}: x-rt-relay-route")
            }
            Target::OpenApiDocument => assert_eq!(path, rt_relay_gateway::openapi::PATH),
        }
        documented.entry(canonical(&path).to_owned()).or_default().insert(verb);
    }
    // Table → document: every HTTP row is documented (but those listed as not yet served).
    for r in routes::routes_of(Api::Http) {
        if r.function().is_some_and(|f| routes::NOT_YET_SERVED_LOCALLY.contains(&f)) {
            continue;
        }
        assert!(
            documented.get(r.path).is_some_and(|ms| ms.contains(r.method)),
            "{} is in the routes table but not in docs/openapi.json",
            r.route_key()
        );
    }
    // And through the gateway's routing itself: whatever it matches is documented under
    // the matched route's path, and its 405 `Allow` lists exactly the documented methods.
    let mut probes: Vec<String> =
        documented.keys().flat_map(|p| [concrete(p), format!("{}/", concrete(p))]).collect();
    probes.extend(
        [
            "/",
            "",
            "/ticket",
            "/tickets/1/x",
            "/notifications/1",
            "/health",
            "/openapi",
            "//tickets",
        ]
        .map(String::from),
    );
    let mut matched = 0;
    for path in &probes {
        for m in METHODS {
            let verb = m.to_ascii_uppercase();
            let template = documented_template(&documented, path);
            match route(&method(m), path) {
                Routing::Matched { route, .. } => {
                    assert_eq!(template, Some(route.path), "{verb} {path}");
                    assert!(
                        documented.get(route.path).is_some_and(|ms| ms.contains(&verb)),
                        "{verb} {path} ({}) is routed but not documented",
                        route.route_key()
                    );
                    matched += 1;
                }
                Routing::MethodNotAllowed { allow } => {
                    let allowed: BTreeSet<String> = allow.split(", ").map(str::to_owned).collect();
                    assert_eq!(
                        Some(&allowed),
                        template.and_then(|t| documented.get(t)),
                        "{verb} {path}: Allow {allow}"
                    );
                }
                Routing::NotFound => {
                    assert_eq!(template, None, "{verb} {path} is documented but not routed")
                }
            }
        }
    }
    let served = routes::routes_of(Api::Http)
        .filter(|r| !r.function().is_some_and(|f| routes::NOT_YET_SERVED_LOCALLY.contains(&f)))
        .count();
    assert!(matched >= 2 * served, "only {matched} probes matched");
}

/// Walks the document and checks every `$ref` resolves.
fn refs_resolve(doc: &Value, v: &Value) {
    match v {
        Value::Object(map) => {
            if map.contains_key("$ref") {
                resolve(doc, v);
            }
            map.values().for_each(|x| refs_resolve(doc, x));
        }
        Value::Array(items) => items.iter().for_each(|x| refs_resolve(doc, x)),
        _ => {}
    }
}

#[test]
fn the_document_matches_the_domain_types_and_limits() {
    let doc = document();
    refs_resolve(&doc, &doc);
    let scheme = &doc["components"]["securitySchemes"]["ApiKey"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer")),
        "keys travel as Bearer credentials"
    );
    assert_eq!(doc["security"], json!([{ "ApiKey": [] }]));

    // Request body: the same fields and limits as the validation.
    let new = &doc["components"]["schemas"]["NewTicket"];
    assert_eq!(new["additionalProperties"], false);
    assert_eq!(new["required"], json!(["title"]));
    for (field, limit) in [
        ("title", MAX_TITLE_BYTES),
        ("description", MAX_DESCRIPTION_BYTES),
        ("queue", MAX_QUEUE_BYTES),
        ("requestor", MAX_EMAIL_BYTES),
    ] {
        assert_eq!(
            new["properties"][field]["maxLength"].as_u64(),
            Some(limit as u64),
            "{field}'s limit"
        );
        let mut body = json!({ "title": "t" });
        body[field] = json!(if field == "requestor" { "a@example.com" } else { "x" });
        assert!(
            NewTicket::from_json(body.to_string().as_bytes()).is_ok(),
            "the API accepts {field}"
        );
        if field != "title" {
            assert_eq!(
                new["properties"][field]["nullable"], true,
                "{field}: null is accepted as absent, so documented"
            );
            body[field] = Value::Null;
            assert!(
                NewTicket::from_json(body.to_string().as_bytes()).is_ok(),
                "the API accepts a null {field}"
            );
        }
    }
    assert_eq!(new["properties"].as_object().map(|p| p.len()), Some(4), "no other fields");
    assert!(
        NewTicket::from_json(br#"{"title":"t","owner":"root"}"#).is_err(),
        "unknown fields are refused, as documented"
    );

    // Response bodies: what the types serialize to fits, with no undocumented field.
    let ticket = sample_ticket(2, "new", "General"); // an even id has a requestor
    let mut problems = Vec::new();
    let schemas = &doc["components"]["schemas"];
    validate(
        &doc,
        &schemas["Ticket"],
        &serde_json::to_value(&ticket).expect("ticket JSON"),
        "Ticket",
        &mut problems,
    );
    validate(
        &doc,
        &schemas["Notification"],
        &serde_json::to_value(sample_notification(&ticket)).expect("JSON"),
        "Notification",
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let ticket_json = serde_json::to_value(&ticket).expect("ticket JSON");
    let documented: BTreeSet<&String> =
        schemas["Ticket"]["properties"].as_object().expect("properties").keys().collect();
    let actual: BTreeSet<&String> = ticket_json.as_object().expect("object").keys().collect();
    assert_eq!(documented, actual, "Ticket fields");

    // Paging limits.
    let limit = &doc["components"]["parameters"]["Limit"]["schema"];
    assert_eq!(limit["maximum"].as_u64(), Some(u64::from(MAX_LIMIT)));
    assert!(PageRequest::parse(Some(&MAX_LIMIT.to_string()), None).is_ok());
    assert!(PageRequest::parse(Some(&(MAX_LIMIT + 1).to_string()), None).is_err());
    assert!(PageRequest::parse(Some("0"), None).is_err());
}

/// A request, checked against the document's `path`/`method` operation.
async fn checked(
    doc: &Value,
    req: reqwest::RequestBuilder,
    path: &str,
    m: &str,
    want: u16,
) -> (reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.unwrap_or_else(|e| panic!("{m} {path}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    assert_eq!(status, want, "{m} {path}: {}", String::from_utf8_lossy(&bytes));
    let problems = check_response(doc, path, m, status, &headers, &bytes);
    assert!(problems.is_empty(), "{m} {path} {status} breaks the document: {problems:?}");
    (headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_document_and_real_answers_match_it() {
    let doc = document();
    let Running { stack, gateway, http, base } = Stack::running("openapi").await;

    let served = reqwest::Client::new()
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    assert_eq!(
        served.bytes().await.expect("body"),
        rt_relay_gateway::openapi::DOCUMENT.as_bytes(),
        "served byte for byte"
    );
    checked(&doc, http.get(format!("{base}/openapi.json")), "/openapi.json", "get", 200).await;

    let mut client = WsClient::connect(&stack.ws_url(&gateway)).await;
    let title = format!("openapi {}", uuid::Uuid::new_v4().simple());
    let body = json!({ "title": title, "description": "schema check", "requestor": "someone@example.com" });
    let (headers, ticket) =
        checked(&doc, http.post(format!("{base}/tickets")).json(&body), "/tickets", "post", 201)
            .await;
    let id = ticket["id"].as_u64().expect("id");
    assert_eq!(headers["location"], format!("/tickets/{id}"));
    let pushed = client
        .wait_for_ticket(id, std::time::Duration::from_secs(15))
        .await
        .expect("the push arrives");
    let mut problems = Vec::new();
    validate(
        &doc,
        &doc["components"]["schemas"]["Notification"],
        &pushed,
        "pushed message",
        &mut problems,
    );
    assert!(
        problems.is_empty(),
        "the WebSocket message breaks the Notification schema: {problems:?}"
    );

    let key = uuid::Uuid::new_v4().to_string();
    let seed = json!({ "title": "Problema no Login", "description": "Usuário não consegue fazer login no sistema." });
    let post_seed =
        || http.post(format!("{base}/tickets/")).header("idempotency-key", &key).json(&seed);
    checked(&doc, post_seed(), "/tickets/", "post", 201).await;
    let (replayed, _) = checked(&doc, post_seed(), "/tickets/", "post", 201).await;
    assert_eq!(replayed["idempotent-replayed"], "true");
    let other = http
        .post(format!("{base}/tickets/"))
        .header("idempotency-key", &key)
        .json(&json!({ "title": "other" }));
    checked(&doc, other, "/tickets/", "post", 422).await;
    for (req, status) in [
        (http.post(format!("{base}/tickets")).json(&json!({ "description": "no title" })), 400),
        (http.post(format!("{base}/tickets")).json(&json!({ "title": "t", "owner": "root" })), 400),
        (
            http.post(format!("{base}/tickets"))
                .header("idempotency-key", "has space")
                .json(&json!({ "title": "t" })),
            400,
        ),
        (http.post(format!("{base}/tickets")).header("content-type", "text/plain").body("{}"), 415),
        (
            http.post(format!("{base}/tickets"))
                .json(&json!({ "title": "t", "description": "a".repeat(600 * 1024) })),
            413,
        ),
        (
            http.post(format!("{base}/tickets"))
                .json(&json!({ "title": "t", "queue": "No Such Queue Anywhere" })),
            422,
        ),
    ] {
        checked(&doc, req, "/tickets", "post", status).await;
    }

    let (_, page) =
        checked(&doc, http.get(format!("{base}/tickets?limit=1")), "/tickets", "get", 200).await;
    let cursor = page["next_cursor"].as_str().expect("a next page").to_owned();
    let cursor: String = url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
    checked(
        &doc,
        http.get(format!("{base}/tickets?limit=1&cursor={cursor}")),
        "/tickets",
        "get",
        200,
    )
    .await;
    checked(
        &doc,
        http.get(format!("{base}/tickets?status=new&queue=General")),
        "/tickets",
        "get",
        200,
    )
    .await;
    checked(&doc, http.get(format!("{base}/tickets?limit=0")), "/tickets", "get", 400).await;
    checked(&doc, http.get(format!("{base}/tickets?cursor=garbage")), "/tickets", "get", 400).await;
    checked(&doc, http.get(format!("{base}/tickets/{id}")), "/tickets/{id}", "get", 200).await;
    checked(&doc, http.get(format!("{base}/tickets/999999999")), "/tickets/{id}", "get", 404).await;
    checked(&doc, http.get(format!("{base}/tickets/abc")), "/tickets/{id}", "get", 400).await;
    checked(&doc, http.get(format!("{base}/notifications?limit=1")), "/notifications", "get", 200)
        .await;
    let (_, notes) = checked(
        &doc,
        http.get(format!("{base}/notifications?limit=100")),
        "/notifications",
        "get",
        200,
    )
    .await;
    let stored =
        notes["items"].as_array().and_then(|items| items.iter().find(|n| n["id"] == pushed["id"]));
    assert_eq!(stored, Some(&pushed), "GET /notifications and the push carry the same JSON");
    checked(&doc, http.get(format!("{base}/notifications?limit=x")), "/notifications", "get", 400)
        .await;

    // Without a key: API Gateway's own 401, as documented; with a key lacking the route's
    // scope: 403.
    checked(&doc, reqwest::Client::new().get(format!("{base}/tickets")), "/tickets", "get", 401)
        .await;
    let read_only = rt_relay_tests::stack::authorized_client(
        &stack.mint_key(&[rt_relay_shared::auth::Scope::TicketsRead]).await,
    );
    checked(
        &doc,
        read_only.post(format!("{base}/tickets")).json(&json!({ "title": "t" })),
        "/tickets",
        "post",
        403,
    )
    .await;

    // Outside the operations: 404 and 405 (with Allow) in the documented error shape.
    for (m, path, status) in [
        (reqwest::Method::GET, "/no/such/route", 404),
        (reqwest::Method::DELETE, "/tickets", 405),
        (reqwest::Method::POST, "/openapi.json", 405),
    ] {
        let resp = http.request(m.clone(), format!("{base}{path}")).send().await.expect("request");
        assert_eq!(resp.status().as_u16(), status, "{m} {path}");
        if status == 405 {
            assert!(resp.headers().contains_key("allow"), "{m} {path}: Allow");
        }
        let value: Value = resp.json().await.expect("JSON error");
        let mut problems = Vec::new();
        validate(
            &doc,
            &doc["components"]["schemas"]["Error"],
            &value,
            &format!("{m} {path}"),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    client.close().await;
    stack.finish(gateway).await;
}
