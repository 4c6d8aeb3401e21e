//! A real headless Chromium (Debian's `chromium`, installed by `scripts/chromium.sh`)
//! driven over the Chrome DevTools Protocol: one page, JavaScript evaluated in it, real
//! keyboard input (`Input.insertText`, `Input.dispatchKeyEvent`), viewport sizes and
//! screenshots, and the page's WebSockets as the browser's network layer saw them (their
//! handshake URLs and every text message each way). Only the few commands the board test
//! needs; no WebDriver server.
//!
//! Waits poll a JavaScript condition until it holds, bounded in time, and fail with what
//! the page showed last: never sleep-then-assert.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use base64::Engine;
use futures_util::{stream::SplitSink, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
    sync::oneshot,
};
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

/// Where Debian's package puts the browser; `CHROMIUM` overrides it.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the browser may take to start and print its DevTools address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;
type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// A headless Chromium process and one page in it. Dropping it kills the browser.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    profile: PathBuf,
    sink: tokio::sync::Mutex<Sink>,
    pending: Pending,
    events: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicU64,
    session: String,
}

impl Browser {
    /// Starts the browser with a throw-away profile and opens a blank page.
    pub async fn launch() -> Self {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| DEFAULT_CHROMIUM.to_owned());
        assert!(
            Path::new(&binary).is_file(),
            "{binary} is missing: run `bash scripts/chromium.sh` (scripts/test.sh does)"
        );
        let profile = std::env::temp_dir()
            .join(format!("rt-relay-chromium-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", profile.display()));
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        let ws_url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    if let Some(url) = line.strip_prefix("DevTools listening on ") {
                        break url.trim().to_owned();
                    }
                    seen.push(line);
                }
                Ok(_) => panic!("{binary} exited during start-up: {}", seen.join("\n")),
                Err(_) => panic!("{binary} printed no DevTools address: {}", seen.join("\n")),
            }
        };
        // Keep draining stderr so the browser never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .unwrap_or_else(|e| panic!("DevTools connection to {ws_url}: {e}"));
        let (sink, mut stream) = socket.split();
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (p, ev) = (pending.clone(), events.clone());
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else { continue };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                match value.get("id").and_then(Value::as_u64) {
                    Some(id) => {
                        let waiter = p.lock().ok().and_then(|mut m| m.remove(&id));
                        if let Some(tx) = waiter {
                            let _ = tx.send(value);
                        }
                    }
                    None => {
                        if let Ok(mut all) = ev.lock() {
                            all.push(value);
                        }
                    }
                }
            }
        });
        let mut browser = Self {
            child,
            profile,
            sink: tokio::sync::Mutex::new(sink),
            pending,
            events,
            next_id: AtomicU64::new(1),
            session: String::new(),
        };
        let target =
            browser.call_browser("Target.createTarget", json!({"url": "about:blank"})).await;
        let target_id = target["targetId"].as_str().expect("a target id").to_owned();
        let attached = browser
            .call_browser("Target.attachToTarget", json!({"targetId": target_id, "flatten": true}))
            .await;
        browser.session = attached["sessionId"].as_str().expect("a session id").to_owned();
        // The page is the visible, focused tab, as a person's would be.
        for domain in
            ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable", "Page.bringToFront"]
        {
            browser.call(domain, json!({})).await;
        }
        browser.call("Emulation.setFocusEmulationEnabled", json!({"enabled": true})).await;
        browser
    }

    async fn send(&self, method: &str, params: Value, session: Option<&str>) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending map").insert(id, tx);
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        self.sink
            .lock()
            .await
            .send(Message::Text(command.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("DevTools {method}: {e}"));
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, rx)
            .await
            .unwrap_or_else(|_| panic!("DevTools {method}: no answer within {COMMAND_TIMEOUT:?}"))
            .unwrap_or_else(|_| panic!("DevTools {method}: the connection closed"));
        if let Some(error) = answer.get("error") {
            panic!("DevTools {method} failed: {error}");
        }
        answer["result"].clone()
    }

    async fn call_browser(&self, method: &str, params: Value) -> Value {
        self.send(method, params, None).await
    }

    /// Sends a command to the page; its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.send(method, params, Some(&self.session)).await
    }

    /// Loads `url` (the wait for what it shows is the caller's).
    pub async fn navigate(&self, url: &str) {
        let result = self.call("Page.navigate", json!({"url": url})).await;
        assert!(result.get("errorText").is_none(), "navigating to {url}: {result}");
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value.
    pub async fn eval(&self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("evaluating {expression}: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` every 100 ms until it yields a truthy value (returned), failing
    /// after `limit` with `what`, the last value and `describe` evaluated in the page.
    pub async fn wait_for(&self, what: &str, limit: Duration, expression: &str) -> Value {
        let deadline = Instant::now() + limit;
        // A page still loading may not have the elements yet: that is "not yet", not a failure.
        let guarded = format!(
            "(() => {{ try {{ return ({expression}); }} catch (_) {{ return null; }} }})()"
        );
        loop {
            let value = self.eval(&guarded).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let page = self.eval("document.body ? document.body.innerText : ''").await;
                panic!("timed out after {limit:?} waiting for {what}; last value {value}; the page showed:\n{}", page.as_str().unwrap_or(""));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Focuses the element matching `selector` (as a keyboard user would reach it).
    pub async fn focus(&self, selector: &str) {
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return false; e.focus(); return document.activeElement === e; }})()",
                json!(selector)
            ))
            .await;
        assert_eq!(found, json!(true), "cannot focus {selector}");
    }

    /// Types `text` into the focused element, as keyboard input.
    pub async fn type_text(&self, text: &str) {
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Presses and releases one key (`Enter`, `Tab`).
    pub async fn press(&self, key: &str) {
        let (code, text) = match key {
            "Enter" => (13, "\r"),
            "Tab" => (9, ""),
            other => panic!("press: no key code for {other}"),
        };
        // As a real keyboard: a key that types text is a keyDown with that text, any other
        // a rawKeyDown.
        let kind = if text.is_empty() { "rawKeyDown" } else { "keyDown" };
        let mut down = json!({"type": kind, "key": key, "code": key,
            "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code});
        if !text.is_empty() {
            down["text"] = json!(text);
        }
        self.call("Input.dispatchKeyEvent", down).await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": key, "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code}),
        )
        .await;
    }

    /// Sets the viewport (CSS pixels); `mobile` emulates a phone's viewport handling.
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// A PNG of the viewport, written to each of `paths`.
    pub async fn screenshot(&self, paths: &[PathBuf]) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        for path in paths {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            }
            std::fs::write(path, &png)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
    }

    /// The WebSockets the page opened, oldest first: `(id, handshake URL)`, the URL with its
    /// `api_key` value masked (it is a secret).
    pub fn websockets(&self) -> Vec<(String, String)> {
        let events = self.events.lock().expect("events").clone();
        events
            .iter()
            .filter(|e| e["method"] == "Network.webSocketCreated")
            .map(|e| {
                let id = e["params"]["requestId"].as_str().unwrap_or_default().to_owned();
                (id, masked_url(e["params"]["url"].as_str().unwrap_or_default()))
            })
            .collect()
    }

    /// Every JSON text message the page's WebSockets sent or received so far, in order.
    pub fn websocket_messages(&self) -> Vec<WsMessage> {
        let events = self.events.lock().expect("events").clone();
        events
            .iter()
            .filter_map(|e| {
                let sent = match e["method"].as_str()? {
                    "Network.webSocketFrameSent" => true,
                    "Network.webSocketFrameReceived" => false,
                    _ => return None,
                };
                let params = &e["params"];
                // Opcode 1: a text frame.
                if params["response"]["opcode"].as_u64() != Some(1) {
                    return None;
                }
                let message = serde_json::from_str(params["response"]["payloadData"].as_str()?);
                Some(WsMessage {
                    socket: params["requestId"].as_str()?.to_owned(),
                    sent,
                    message: message.ok()?,
                })
            })
            .collect()
    }

    /// Uncaught exceptions and Content-Security-Policy violations the page reported so
    /// far (failed requests, which the board expects while the API is down, are not).
    pub fn page_errors(&self) -> Vec<String> {
        let events = self.events.lock().expect("events").clone();
        events
            .iter()
            .filter_map(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    Some(format!("exception: {}", e["params"]["exceptionDetails"]))
                }
                Some("Log.entryAdded")
                    if e["params"]["entry"]["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("Content Security Policy")) =>
                {
                    Some(format!("log: {}", e["params"]["entry"]["text"]))
                }
                _ => None,
            })
            .collect()
    }
}

/// One text message on one of the page's WebSockets.
#[derive(Debug, Clone)]
pub struct WsMessage {
    /// The socket's id (as in [`Browser::websockets`]).
    pub socket: String,
    /// Sent by the page (else received).
    pub sent: bool,
    /// The message.
    pub message: Value,
}

/// `url` with the value of its `api_key` parameter replaced by `***`.
fn masked_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else { return "(not a URL)".into() };
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "api_key" { "***".into() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.into()
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
