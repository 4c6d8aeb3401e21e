//! Secret hygiene, end to end: the real `rt-relay-gateway` binary runs a whole session at
//! debug level (trace for rt-relay's own crates), in text and in JSON logs, over the real RT
//! and moto: keys minted and revoked (in the table the gateway reads; the `rt-relay-keys`
//! command's own output is checked in `tools/tests/commands.rs`); tickets created over
//! REST 2.0 (token) and REST 1.0 (password), listed, read, pushed to a WebSocket client;
//! refused keys of every kind; RT failures (wrong token, wrong password, RT unreachable);
//! storage failures (tables deleted under the gateway). Everything the processes print is
//! captured, and the test fails if the RT password or token (also as a Basic credential),
//! or any API key or its secret appears in it, or if an error sent to a client carries
//! internal detail (addresses, AWS error names, RT paths, panics).
//!
//! Needs the services `make test` starts (RT and moto, their variables exported). Cargo
//! builds the binary for this test, so it always runs the current code. Bounded; loopback only.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use rt_relay_shared::auth::{
    self, dynamodb::DynamoApiKeys, parse_scopes, ApiKeyStore, RevokeOutcome,
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
    sync::mpsc,
};
use tokio_tungstenite::tungstenite::{self, Message};

const GATEWAY: &str = env!("CARGO_BIN_EXE_rt-relay-gateway");
const WAIT: Duration = Duration::from_secs(30);
const LOG_LEVEL: &str = "debug,rt_relay_shared=trace,rt_relay_gateway=trace";

/// The `RT_*` variables one gateway process runs with.
type RtSettings = Vec<(&'static str, String)>;

fn env(name: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!("{name} is not set: run the tests with `make test` (scripts/test.sh), which starts RT and moto")
    })
}

/// Everything the processes of this test printed, and every error answer a client got.
#[derive(Debug, Default)]
struct Capture {
    logs: Mutex<String>,
    client_errors: Mutex<Vec<String>>,
}

impl Capture {
    fn log(&self, line: &str) {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.push_str(line);
        logs.push('\n');
    }

    fn client_error(&self, what: String) {
        self.client_errors.lock().unwrap_or_else(|p| p.into_inner()).push(what);
    }
}

fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    capture: Arc<Capture>,
    lines: Option<mpsc::UnboundedSender<String>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            capture.log(&line);
            if let Some(tx) = &lines {
                let _ = tx.send(line);
            }
        }
    });
}

/// The settings every process shares: moto, its own tables, nothing from the test's env.
fn base_command(program: &str, prefix: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("AWS_ENDPOINT_URL", env("AWS_ENDPOINT_URL"))
        .env("AWS_REGION", env("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", env("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", env("AWS_SECRET_ACCESS_KEY"))
        .env("TABLE_PREFIX", prefix)
        .env("RUST_LOG", LOG_LEVEL)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// A running gateway process.
struct GatewayProcess {
    child: Child,
    http: String,
    ws: String,
}

impl GatewayProcess {
    /// Starts the binary with `rt` settings (and JSON logs if asked) and waits until it
    /// prints its URLs.
    async fn start(
        capture: &Arc<Capture>,
        prefix: &str,
        rt: &[(&str, String)],
        json_logs: bool,
    ) -> Self {
        let mut cmd = base_command(GATEWAY, prefix);
        cmd.env("GATEWAY_HTTP_ADDR", "127.0.0.1:0")
            .env("GATEWAY_WS_ADDR", "127.0.0.1:0")
            .env("GATEWAY_MANAGEMENT_ADDR", "127.0.0.1:0")
            .env("GATEWAY_POLL_MS", "100")
            .env(
                "GATEWAY_CHECKPOINT",
                std::env::temp_dir().join(format!("{prefix}checkpoint.json")),
            );
        for (k, v) in rt {
            cmd.env(k, v);
        }
        if json_logs {
            cmd.env("AWS_LAMBDA_LOG_FORMAT", "JSON");
        }
        let mut child = cmd.spawn().expect("start rt-relay-gateway");
        let (tx, mut rx) = mpsc::unbounded_channel();
        pump(child.stdout.take().expect("stdout"), capture.clone(), Some(tx));
        pump(child.stderr.take().expect("stderr"), capture.clone(), None);
        let (mut http, mut ws) = (None, None);
        let found = tokio::time::timeout(WAIT, async {
            while let Some(line) = rx.recv().await {
                let url = line.split_whitespace().last().unwrap_or_default().to_owned();
                if line.trim_start().starts_with("HTTP API") {
                    http = Some(url);
                } else if line.trim_start().starts_with("WebSocket API") {
                    ws = Some(url);
                }
                if http.is_some() && ws.is_some() {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(found, Ok(true)),
            "the gateway did not print its URLs; its output:\n{}",
            capture.logs.lock().unwrap_or_else(|p| p.into_inner())
        );
        Self { child, http: http.unwrap_or_default(), ws: ws.unwrap_or_default() }
    }

    /// SIGTERM, then waits (bounded) for the graceful stop.
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// Mints a key in the table the gateway under test reads.
async fn mint(keys: &DynamoApiKeys, name: &str, scopes: &str) -> String {
    let scopes = parse_scopes(scopes).expect("scopes");
    let minted = auth::mint(keys, name, scopes, chrono::Utc::now()).await.expect("mint a key");
    minted.key().to_owned()
}

/// Sends a request and returns its status; error answers are kept for the detail check.
async fn call(capture: &Capture, req: reqwest::RequestBuilder, what: &str) -> u16 {
    let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if status >= 400 {
        capture.client_error(format!("{what} -> {status} {body}"));
    }
    status
}

async fn handshake(capture: &Capture, url: &str, what: &str) -> u16 {
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake in time")
    {
        Ok((mut socket, resp)) => {
            let _ = socket.close(None).await;
            resp.status().as_u16()
        }
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            capture.client_error(format!("{what} -> {} {body}", resp.status()));
            resp.status().as_u16()
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_and_no_internal_detail_reaches_clients() {
    let capture = Arc::new(Capture::default());
    let prefix = format!("t-hygiene-{}-", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let rt_base = env("RT_URL").trim_end_matches('/').to_owned();
    let (rt_user, rt_password, rt_token) =
        (env("RT_USERNAME"), env("RT_PASSWORD"), env("RT_TOKEN"));
    let wrong_token = format!("1-999-{}", uuid::Uuid::new_v4().simple());
    let wrong_password = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let http = reqwest::Client::new();
    let ticket = json!({"title": "hygiene", "description": "secret hygiene run"});

    // ---- a normal session over REST 2.0 with the token, text logs
    let rest2 = [("RT_API_URL", format!("{rt_base}/REST/2.0/")), ("RT_TOKEN", rt_token.clone())];
    let g1 = GatewayProcess::start(&capture, &prefix, &rest2, false).await;
    let keys = DynamoApiKeys::new(
        rt_relay_shared::store::dynamodb::client_from_env().await,
        format!("{prefix}api-keys"),
    );
    let all = mint(&keys, "hygiene all", "all").await;
    let reader = mint(&keys, "hygiene reader", "tickets:read").await;
    let revoked = mint(&keys, "hygiene revoked", "all").await;
    let revoked_id = revoked.split('_').nth(1).unwrap_or_default().to_owned();
    let outcome = keys.revoke(&revoked_id, chrono::Utc::now()).await.expect("revoke");
    assert_eq!(outcome, RevokeOutcome::Revoked);
    let listing = keys.list().await.expect("list the keys");
    assert_eq!(listing.len(), 3, "three keys: {listing:?}");

    let mut socket = tokio_tungstenite::connect_async(format!("{}/?api_key={all}", g1.ws))
        .await
        .expect("keyed WebSocket")
        .0;
    let created = http
        .post(format!("{}/tickets", g1.http))
        .header("authorization", bearer(&all))
        .json(&ticket)
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.expect("ticket")["id"].as_u64().expect("id");
    let pushed = tokio::time::timeout(WAIT, socket.next()).await.expect("a push in time");
    assert!(matches!(pushed, Some(Ok(Message::Text(_)))), "{pushed:?}");
    socket.send(Message::text("hello")).await.expect("send");
    let _ = tokio::time::timeout(WAIT, socket.next()).await;
    let _ = socket.close(None).await;
    for path in ["/tickets?limit=5", &format!("/tickets/{id}"), "/notifications?limit=5"] {
        assert_eq!(
            call(
                &capture,
                http.get(format!("{}{path}", g1.http)).header("authorization", bearer(&all)),
                path
            )
            .await,
            200
        );
    }
    // Refused keys of every kind, on both APIs.
    let wrong_secret =
        format!("rtr_{}_{}", all.split('_').nth(1).unwrap_or_default(), "0".repeat(64));
    let url = format!("{}/tickets", g1.http);
    let refused_posts = [
        ("no key", None, 401),
        ("reader POST", Some(bearer(&reader)), 403),
        ("wrong secret", Some(bearer(&wrong_secret)), 403),
        ("revoked", Some(bearer(&revoked)), 403),
        ("no Bearer", Some(all.clone()), 403),
    ];
    for (what, authorization, status) in refused_posts {
        let mut req = http.post(&url).json(&ticket);
        if let Some(credential) = authorization {
            req = req.header("authorization", credential);
        }
        assert_eq!(call(&capture, req, what).await, status, "{what}");
    }
    let refused_handshakes = [
        ("ws revoked", &revoked, 401),
        ("ws wrong secret", &wrong_secret, 401),
        ("ws reader", &reader, 403),
    ];
    for (what, key, status) in refused_handshakes {
        let url = format!("{}/?api_key={key}", g1.ws);
        assert_eq!(handshake(&capture, &url, what).await, status, "{what}");
    }
    // Bad input, for the error mapping.
    let bad_input = [
        ("not JSON", http.post(&url).body("{"), 415),
        ("bad cursor", http.get(format!("{}/tickets?cursor=zzz", g1.http)), 400),
        ("unknown ticket", http.get(format!("{}/tickets/999999999", g1.http)), 404),
    ];
    for (what, req, status) in bad_input {
        let req = req.header("authorization", bearer(&all));
        assert_eq!(call(&capture, req, what).await, status, "{what}");
    }
    g1.stop().await;

    // ---- REST 1.0 with the password (it travels in the form body), JSON logs
    // RT over `version` (1.0 or 2.0) with the user name and `password`.
    let with_password = |version: &str, password: &str| -> RtSettings {
        vec![
            ("RT_API_URL", format!("{rt_base}/REST/{version}/")),
            ("RT_USERNAME", rt_user.clone()),
            ("RT_PASSWORD", password.to_owned()),
        ]
    };
    let rest1 = with_password("1.0", &rt_password);
    let g2 = GatewayProcess::start(&capture, &prefix, &rest1, true).await;
    assert_eq!(
        call(
            &capture,
            http.post(format!("{}/tickets", g2.http))
                .header("authorization", bearer(&all))
                .json(&ticket),
            "REST 1.0 POST"
        )
        .await,
        201
    );
    g2.stop().await;

    // ---- RT failures: wrong token, wrong password (both APIs), RT unreachable
    let failures: [(&str, RtSettings, bool); 4] = [
        (
            "wrong token",
            vec![("RT_API_URL", format!("{rt_base}/REST/2.0/")), ("RT_TOKEN", wrong_token.clone())],
            false,
        ),
        ("wrong password REST 2.0", with_password("2.0", &wrong_password), true),
        ("wrong password REST 1.0", with_password("1.0", &wrong_password), false),
        (
            "RT unreachable",
            vec![
                ("RT_API_URL", "http://127.0.0.1:9/REST/2.0/".into()),
                ("RT_TOKEN", rt_token.clone()),
            ],
            true,
        ),
    ];
    for (what, rt, json_logs) in failures {
        let g = GatewayProcess::start(&capture, &prefix, &rt, json_logs).await;
        let post = call(
            &capture,
            http.post(format!("{}/tickets", g.http))
                .header("authorization", bearer(&all))
                .json(&ticket),
            what,
        )
        .await;
        assert_eq!(post, 502, "{what}: POST");
        let get = call(
            &capture,
            http.get(format!("{}/tickets/{id}", g.http)).header("authorization", bearer(&all)),
            what,
        )
        .await;
        assert_eq!(get, 502, "{what}: GET one");
        g.stop().await;
    }

    // ---- storage failures: the tables vanish under a running gateway
    let g3 = GatewayProcess::start(&capture, &prefix, &rest2, false).await;
    let dynamodb = rt_relay_shared::store::dynamodb::client_from_env().await;
    // The tickets table first (a list is 503), then the keys table (the authorizer's 500).
    let vanishing = [
        ("tickets", "/tickets", "tickets table gone", 503),
        ("api-keys", "/notifications", "keys table gone", 500),
    ];
    for (table, path, what, status) in vanishing {
        dynamodb
            .delete_table()
            .table_name(format!("{prefix}{table}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete the {table} table: {e}"));
        let req = http.get(format!("{}{path}", g3.http)).header("authorization", bearer(&all));
        assert_eq!(call(&capture, req, what).await, status, "{what}");
    }
    assert_eq!(
        handshake(&capture, &format!("{}/?api_key={all}", g3.ws), "ws keys table gone").await,
        500
    );
    g3.stop().await;
    for table in ["notifications", "connections", "idempotency"] {
        let _ = dynamodb.delete_table().table_name(format!("{prefix}{table}")).send().await;
    }
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{prefix}checkpoint.json")));

    // ---- the verdict
    let logs = capture.logs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let errors = capture.client_errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(path) = std::env::var_os("HYGIENE_LOG_DUMP") {
        // For reading what was checked: `HYGIENE_LOG_DUMP=/tmp/hygiene.log cargo test ...`.
        let _ =
            std::fs::write(path, format!("{logs}\n---- error answers\n{}\n", errors.join("\n")));
    }
    // The capture worked and the failure paths ran (and were logged, with their causes).
    for expected in [
        "http api",
        "API key refused",
        "request failed",
        "rt_unavailable",
        "storage_unavailable",
        "authorizer failed",
    ] {
        assert!(
            logs.contains(expected),
            "the logs never mention {expected:?}: the run did not do what it should"
        );
    }
    let basic = |user: &str, pw: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    };
    let mut secrets = vec![
        ("RT password", rt_password.clone()),
        ("RT password as Basic credential", basic(&rt_user, &rt_password)),
        ("RT token", rt_token.clone()),
        ("wrong RT token", wrong_token.clone()),
        ("wrong RT password", wrong_password.clone()),
        ("wrong password as Basic credential", basic(&rt_user, &wrong_password)),
    ];
    for (name, key) in
        [("all-scopes key", &all), ("reader key", &reader), ("revoked key", &revoked)]
    {
        secrets.push((name, key.clone()));
        secrets.push((name, key.rsplit('_').next().unwrap_or_default().to_owned()));
    }
    let leaks: Vec<&str> =
        secrets.iter().filter(|(_, s)| logs.contains(s.as_str())).map(|(n, _)| *n).collect();
    assert!(leaks.is_empty(), "secrets in the logs ({} bytes captured): {leaks:?}", logs.len());

    assert!(errors.len() >= 20, "error answers seen: {}", errors.len());
    let internal = [
        "127.0.0.1",
        "localhost",
        "ResourceNotFound",
        "DynamoDB",
        "dynamodb",
        "Exception",
        "REST/",
        "panicked",
        "src/",
        "error sending request",
        "Connection refused",
    ];
    for e in &errors {
        let found: Vec<&&str> = internal.iter().filter(|i| e.contains(**i)).collect();
        assert!(found.is_empty(), "an error answer carries internal detail {found:?}: {e}");
        let leaked: Vec<&str> =
            secrets.iter().filter(|(_, s)| e.contains(s.as_str())).map(|(n, _)| *n).collect();
        assert!(leaked.is_empty(), "an error answer carries {leaked:?}: {e}");
    }
    eprintln!(
        "secret hygiene: {} bytes of logs and {} error answers checked",
        logs.len(),
        errors.len()
    );
}
