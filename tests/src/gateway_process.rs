//! The real `rt-relay-gateway` binary as a child process, for tests that must freeze or
//! kill it (SIGSTOP, SIGKILL) the way a crash would, which an in-process gateway cannot
//! show. `scripts/test.sh` builds the binary before `cargo test`; the child inherits the
//! services' variables and gets its own ports (port 0: it prints the ones it bound). Its
//! log goes to a file beside the checkpoint (named in every failure message).

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::services::require_env;

/// How long the binary may take to print its URLs (it creates tables on first start).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The gateway binary built beside the running test: a test runs from
/// `<target>/<profile>/deps/`, and `cargo build -p rt-relay-gateway` puts the binary in
/// `<target>/<profile>/`, whatever `CARGO_TARGET_DIR` says.
pub fn gateway_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary under <target>/<profile>/deps");
    let path = profile_dir.join("rt-relay-gateway");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p rt-relay-gateway` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// Settings for one gateway process; the rest comes from the test's environment
/// (`RT_URL`, `RT_TOKEN`, `AWS_*`, as `make test` exports them).
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// `TABLE_PREFIX`.
    pub table_prefix: String,
    /// `GATEWAY_CHECKPOINT`.
    pub checkpoint: PathBuf,
    /// `AWS_ENDPOINT_URL` for this process (moto, or a fault proxy in front of it).
    pub aws_endpoint: String,
    /// `GATEWAY_POLL_MS`.
    pub poll_ms: u64,
    /// More variables, set after (so winning over) the ones above: fixed ports, the sync.
    pub extra_env: Vec<(String, String)>,
}

impl ProcessSettings {
    /// Fresh settings: the prefix's tables, a checkpoint file named after it, moto as is.
    pub fn new(table_prefix: &str) -> Self {
        Self {
            table_prefix: table_prefix.to_owned(),
            checkpoint: std::env::temp_dir()
                .join("rt-relay-e2e")
                .join(format!("{table_prefix}checkpoint.json")),
            aws_endpoint: require_env("AWS_ENDPOINT_URL"),
            poll_ms: 100,
            extra_env: Vec::new(),
        }
    }
}

/// A running gateway process. Dropping it kills it.
#[derive(Debug)]
pub struct GatewayProcess {
    child: Child,
    pid: u32,
    /// The HTTP API's base URL.
    pub http_url: String,
    /// The WebSocket API's URL.
    pub ws_url: String,
    log_path: PathBuf,
}

impl GatewayProcess {
    /// Starts the binary and waits (bounded) until it prints its URLs.
    pub async fn start(settings: &ProcessSettings) -> Self {
        let rt_url = require_env("RT_URL");
        let log_path = settings
            .checkpoint
            .with_extension(format!("gateway-{}.log", uuid::Uuid::new_v4().simple()));
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let mut cmd = Command::new(gateway_binary());
        cmd.env("RT_API_URL", format!("{}/REST/2.0/", rt_url.trim_end_matches('/')))
            .env("RT_TOKEN", require_env("RT_TOKEN"))
            .env("AWS_ENDPOINT_URL", &settings.aws_endpoint)
            .env("GATEWAY_HTTP_ADDR", "127.0.0.1:0")
            .env("GATEWAY_WS_ADDR", "127.0.0.1:0")
            .env("GATEWAY_MANAGEMENT_ADDR", "127.0.0.1:0")
            .env("TABLE_PREFIX", &settings.table_prefix)
            .env("GATEWAY_CHECKPOINT", &settings.checkpoint)
            .env("GATEWAY_POLL_MS", settings.poll_ms.to_string())
            // No RT sync: other tests' RT changes would become this gateway's notifications.
            .env("GATEWAY_SYNC_INTERVAL_MS", "0")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(settings.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", gateway_binary().display()));
        let pid = child.id().expect("the child has a pid");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut http_url, mut ws_url) = (None, None);
        let deadline = Instant::now() + START_TIMEOUT;
        while http_url.is_none() || ws_url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) | Ok(Err(_)) => {
                    panic!(
                        "the gateway (pid {pid}) exited during start-up; its log: {}",
                        log_path.display()
                    )
                }
                Err(_) => {
                    panic!(
                        "the gateway (pid {pid}) printed no URLs within {START_TIMEOUT:?}; its log: {}",
                        log_path.display()
                    )
                }
            };
            let value = line.split_whitespace().last().map(str::to_owned);
            if line.trim_start().starts_with("HTTP API") {
                http_url = value;
            } else if line.trim_start().starts_with("WebSocket API") {
                ws_url = value;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            pid,
            http_url: http_url.unwrap_or_default(),
            ws_url: ws_url.unwrap_or_default(),
            log_path,
        }
    }

    /// Where the process's log (stderr) goes.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log_path
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Freezes the process (SIGSTOP): its sockets stay open but nothing in it runs, so no
    /// stream record written from now on can be pushed or checkpointed.
    pub fn freeze(&self) {
        signal(self.pid, "STOP");
    }

    /// Kills the process (SIGKILL: no shutdown, no `$disconnect`, no final checkpoint)
    /// and reaps it.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// Stops the process gracefully (SIGTERM), killing it if it has not exited in 20 s.
    pub async fn stop(mut self) {
        signal(self.pid, "TERM");
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// Sends `sig` to the process `pid` (one this module started) with the `kill` command.
fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill -{sig} {pid}: {e}"));
    assert!(status.success(), "kill -{sig} {pid} failed");
}
