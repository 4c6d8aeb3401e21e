//! Changes made in RT itself, the way RT's users make them: through RT's REST 2.0 API
//! directly (not through rt-relay) and through `rt-mailgate`, RT's e-mail intake. The
//! event tests and the event benchmark act through these and watch what rt-relay makes
//! of them.

use std::{process::Stdio, time::Duration};

use reqwest::Url;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::rt::{rt_base_url, rt_env};

/// An RT user acting in RT (the test token's user, root).
#[derive(Debug, Clone)]
pub struct RtActor {
    http: reqwest::Client,
    api: Url,
    token: String,
}

impl Default for RtActor {
    fn default() -> Self {
        Self::new()
    }
}

impl RtActor {
    /// Acts with `RT_TOKEN` on `RT_URL`.
    pub fn new() -> Self {
        let api = rt_base_url().join("REST/2.0/").unwrap_or_else(|e| panic!("RT URL: {e}"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|e| panic!("HTTP client: {e}"));
        Self { http, api, token: rt_env("RT_TOKEN") }
    }

    /// A request to RT's REST 2.0 API at `path`, with the token.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = self.api.join(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        self.http.request(method, url).header("Authorization", format!("token {}", self.token))
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .request(method, path)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("RT {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "RT {path} answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates a ticket through RT's own REST API; returns its id.
    pub async fn create(&self, queue: &str, subject: &str, content: &str) -> u64 {
        let body = json!({"Queue": queue, "Subject": subject, "Content": content, "ContentType": "text/plain"});
        let created = self.call(reqwest::Method::POST, "ticket", body).await;
        created["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| created["id"].as_u64())
            .unwrap_or_else(|| panic!("RT create answer without id: {created}"))
    }

    /// Sets ticket fields (`{"Status": "open"}`, `{"Owner": "root"}`, ...).
    pub async fn update(&self, id: u64, fields: Value) {
        self.call(reqwest::Method::PUT, &format!("ticket/{id}"), fields).await;
    }

    /// Replies on a ticket (RT's correspondence).
    pub async fn reply(&self, id: u64, text: &str) {
        let body = json!({"Content": text, "ContentType": "text/plain"});
        self.call(reqwest::Method::POST, &format!("ticket/{id}/correspond"), body).await;
    }

    /// Comments on a ticket.
    pub async fn comment(&self, id: u64, text: &str) {
        let body = json!({"Content": text, "ContentType": "text/plain"});
        self.call(reqwest::Method::POST, &format!("ticket/{id}/comment"), body).await;
    }

    /// Makes sure RT has a queue named `name` (creating it once; RT keeps it), so a test
    /// can work in a queue no other test touches.
    pub async fn ensure_queue(&self, name: &str) {
        let exists = || async {
            let found = self.request(reqwest::Method::GET, &format!("queue/{name}")).send().await;
            found.is_ok_and(|r| r.status().is_success())
        };
        if exists().await {
            return;
        }
        // A concurrent run may create it first: then this create fails and the queue exists.
        let create = json!({"Name": name});
        let _ = self.request(reqwest::Method::POST, "queue").json(&create).send().await;
        assert!(exists().await, "RT has no queue {name} and would not create it");
    }

    /// The ticket as RT shows it now.
    pub async fn ticket(&self, id: u64) -> Value {
        self.request(reqwest::Method::GET, &format!("ticket/{id}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("RT get ticket: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("RT ticket JSON: {e}"))
    }
}

/// Pipes an e-mail from `from` with `subject` through `rt-mailgate` into queue `General`
/// (RT's e-mail intake, as its MTA would); returns the new ticket's id.
pub async fn mail_new_ticket(from: &str, subject: &str, body: &str) -> u64 {
    let message = format!(
        "From: {from}\nTo: rt@rt-relay.local\nSubject: {subject}\nMessage-ID: <{}@rt-relay.test>\nContent-Type: text/plain; charset=utf-8\n\n{body}\n",
        uuid::Uuid::new_v4()
    );
    let url = rt_base_url();
    let mut child = tokio::process::Command::new("rt-mailgate")
        .args(["--queue", "General", "--action", "correspond", "--url", url.as_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("rt-mailgate (request-tracker5) is not runnable: {e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("rt-mailgate stdin"));
    stdin.write_all(message.as_bytes()).await.unwrap_or_else(|e| panic!("rt-mailgate stdin: {e}"));
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("rt-mailgate took over 60 s"))
        .unwrap_or_else(|e| panic!("rt-mailgate: {e}"));
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "rt-mailgate failed: {text}");
    // RT answers "ok\tTicket <id> created\t..." (newer versions) or nothing; find the ticket
    // by its subject when the answer does not say.
    if let Some(id) = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .skip_while(|w| *w != "Ticket")
        .nth(1)
        .and_then(|w| w.parse().ok())
    {
        return id;
    }
    find_by_subject(subject).await
}

async fn find_by_subject(subject: &str) -> u64 {
    let actor = RtActor::new();
    let mut url = actor.api.join("tickets").unwrap_or_else(|e| panic!("{e}"));
    let escaped = subject.replace('\\', "\\\\").replace('\'', "\\'");
    url.query_pairs_mut().append_pair("query", &format!("Subject = '{escaped}'"));
    let found: Value = actor
        .http
        .get(url)
        .header("Authorization", format!("token {}", actor.token))
        .send()
        .await
        .unwrap_or_else(|e| panic!("RT search: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("RT search JSON: {e}"));
    found["items"][0]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| found["items"][0]["id"].as_u64())
        .unwrap_or_else(|| panic!("no ticket with subject {subject:?} after rt-mailgate: {found}"))
}

/// Where the local RT's webhook scrip finds relays to notify (`scripts/rt.sh` creates it).
pub fn webhook_dir() -> std::path::PathBuf {
    std::env::var("RT_RELAY_WEBHOOK_DIR")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/var/lib/request-tracker5/rt-relay-webhooks".into())
        .into()
}

/// A relay registered with the local RT's webhook scrip for as long as this lives: a file
/// `{"url", "secret"}` in [`webhook_dir`], read by the scrip on every transaction, removed
/// on drop.
#[derive(Debug)]
pub struct WebhookTarget {
    path: std::path::PathBuf,
}

impl WebhookTarget {
    /// Registers `url` (the relay's `POST /webhooks/rt`) with `secret`.
    pub fn register(url: &str, secret: &str) -> Self {
        let dir = webhook_dir();
        assert!(
            dir.is_dir(),
            "{} does not exist: run `bash scripts/rt.sh start`, which installs the scrip",
            dir.display()
        );
        let path = dir.join(format!("test-{}.json", uuid::Uuid::new_v4().simple()));
        let body = json!({ "url": url, "secret": secret }).to_string();
        std::fs::write(&path, body)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        Self { path }
    }
}

impl Drop for WebhookTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A random webhook secret (64 hex digits).
pub fn new_webhook_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}
