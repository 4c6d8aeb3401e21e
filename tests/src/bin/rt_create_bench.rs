//! Creates tickets in the running RT through each adapter, interleaved with direct REST 2.0
//! creates (a raw HTTP POST, as `curl` would send it, and a few real `curl` runs), and
//! prints p50/p95 per method and the ratio to the direct POST.
//!
//! ```text
//! set -a; eval "$(bash scripts/rt.sh env)"; set +a
//! cargo run -p rt-relay-tests --bin rt_create_bench -- [N=30] [CURL_RUNS=5]
//! ```

use std::{
    error::Error,
    fmt,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use rt_relay_shared::{
    config::RtApi,
    rt::{RtClient, RtCreate},
};
use rt_relay_tests::rt::{password_auth, rt_base_url, rt_client, rt_config, rt_env, token_auth};
use serde_json::json;
use tokio::io::AsyncWriteExt;

type BoxError = Box<dyn Error + Send + Sync>;

/// A way to create one ticket.
enum Method {
    Adapter(&'static str, Arc<dyn RtClient>),
    DirectPost(reqwest::Client),
    Curl,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Adapter(name, _) => f.write_str(name),
            Method::DirectPost(_) => f.write_str("direct POST REST2 (reqwest)"),
            Method::Curl => f.write_str("curl process REST2"),
        }
    }
}

fn new_ticket(subject: String) -> RtCreate {
    RtCreate::new("General", subject, "Benchmark ticket.\n  Second line, indented.\n")
}

fn direct_body(t: &RtCreate) -> serde_json::Value {
    json!({ "Queue": t.queue, "Subject": t.subject, "Content": t.content, "ContentType": "text/plain" })
}

impl Method {
    async fn create(&self, subject: String) -> Result<(), BoxError> {
        let ticket = new_ticket(subject);
        let url = format!("{}REST/2.0/ticket", rt_base_url());
        match self {
            Method::Adapter(_, rt) => {
                rt.create(&ticket).await?;
            }
            Method::DirectPost(http) => {
                let resp = http
                    .post(&url)
                    .header("Authorization", format!("token {}", rt_env("RT_TOKEN")))
                    .json(&direct_body(&ticket))
                    .send()
                    .await?;
                if resp.status() != reqwest::StatusCode::CREATED {
                    return Err(format!("direct POST answered {}", resp.status()).into());
                }
                resp.bytes().await?;
            }
            Method::Curl => {
                // The token goes through curl's config on stdin, not the command line.
                let mut child = tokio::process::Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-K", "-", "-X", "POST"])
                    .args(["-H", "Content-Type: application/json", "--data-binary"])
                    .arg(direct_body(&ticket).to_string())
                    .arg(&url)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let mut stdin = child.stdin.take().ok_or("curl stdin")?;
                stdin
                    .write_all(
                        format!("header = \"Authorization: token {}\"\n", rt_env("RT_TOKEN"))
                            .as_bytes(),
                    )
                    .await?;
                drop(stdin);
                let out = child.wait_with_output().await?;
                if out.stdout != b"201" {
                    return Err(
                        format!("curl answered {}", String::from_utf8_lossy(&out.stdout)).into()
                    );
                }
            }
        }
        Ok(())
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn session_files() -> Option<usize> {
    std::fs::read_dir("/var/cache/request-tracker5/session_data").ok().map(|d| d.count())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(30);
    let curl_runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let timeout = Duration::from_secs(10);
    let methods = [
        Method::DirectPost(reqwest::Client::builder().timeout(timeout).build()?),
        Method::Adapter("adapter REST2 token", rt_client(&rt_config(RtApi::Rest2, token_auth()))),
        Method::Adapter(
            "adapter REST2 basic",
            rt_client(&rt_config(RtApi::Rest2, password_auth())),
        ),
        Method::Adapter(
            "adapter REST1 user/pass",
            rt_client(&rt_config(RtApi::Rest1, password_auth())),
        ),
        Method::Curl,
    ];
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    // Warm up: connections, RT's caches, the REST 1.0 session.
    for m in &methods {
        m.create(format!("bench {run} warm-up {m}")).await?;
    }
    let files_before = session_files();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); methods.len()];
    for i in 0..n {
        // Rotate the order so no method always follows the same one.
        for k in 0..methods.len() {
            let j = (i + k) % methods.len();
            if matches!(methods[j], Method::Curl) && samples[j].len() >= curl_runs {
                continue;
            }
            let started = Instant::now();
            methods[j].create(format!("bench {run} #{i} {}", methods[j])).await?;
            samples[j].push(started.elapsed());
        }
    }
    let files_after = session_files();
    for s in &mut samples {
        s.sort();
    }
    let (base50, base95) = (percentile(&samples[0], 0.5), percentile(&samples[0], 0.95));
    println!(
        "RT creates, sequential, {n} per method (curl: {curl_runs}), interleaved; times in ms"
    );
    println!(
        "{:<30} {:>4} {:>8} {:>8} {:>10} {:>10}",
        "method", "n", "p50", "p95", "p50/direct", "p95/direct"
    );
    for (m, s) in methods.iter().zip(&samples) {
        if s.is_empty() {
            continue;
        }
        let (p50, p95) = (percentile(s, 0.5), percentile(s, 0.95));
        println!(
            "{:<30} {:>4} {:>8.1} {:>8.1} {:>10.2} {:>10.2}",
            m.to_string(),
            s.len(),
            ms(p50),
            ms(p95),
            ms(p50) / ms(base50),
            ms(p95) / ms(base95)
        );
    }
    if let (Some(before), Some(after)) = (files_before, files_after) {
        println!("RT session files during the timed runs: {before} -> {after} (REST 1.0 reuses its session)");
    }
    Ok(())
}
