//! The local gateway behaves like AWS at its edges, so tests see what a deployment would
//! do: the API key is checked before a request body is read, a body over API Gateway's
//! limit is refused without reading it, and it refuses to serve beyond loopback unless
//! told to. (A function response over Lambda's 6 MB becomes API Gateway's 500: unit tests
//! in `gateway/src/limits.rs`.)

use std::{process::Stdio, time::Duration};

use rt_relay_tests::{
    gateway_process::gateway_binary,
    stack::{Running, Stack},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Sends only the head of a `POST /tickets` that announces a `length`-byte body, never the
/// body, and returns the status line the gateway answers with (bounded).
async fn status_without_sending_the_body(http_url: &str, key: Option<&str>, length: u64) -> String {
    let addr = http_url.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).await.expect("connect to the HTTP API");
    let auth = key.map(|k| format!("authorization: Bearer {k}\r\n")).unwrap_or_default();
    let head = format!(
        "POST /tickets HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         {auth}content-length: {length}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("send the request head");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer comes while the body is still owed: the gateway did not wait for it.
    tokio::time::timeout(Duration::from_secs(15), async {
        while !answer.windows(2).any(|w| w == b"\r\n") {
            let n = socket.read(&mut buf).await.expect("read the answer");
            assert!(n > 0, "the gateway closed without answering");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer before the body was sent");
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_checked_before_the_body_is_read() {
    let Running { stack, gateway, base: url, .. } = Stack::running("limits-body").await;
    let five_mb = 5 * 1024 * 1024;
    assert!(status_without_sending_the_body(&url, None, five_mb).await.contains(" 401 "));
    let wrong =
        "rtr_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000";
    assert!(status_without_sending_the_body(&url, Some(wrong), five_mb).await.contains(" 403 "));
    // A live key announcing more than API Gateway's 10 MB: refused before reading too.
    let eleven_mb = 11 * 1024 * 1024;
    let status = status_without_sending_the_body(&url, Some(&stack.api_key), eleven_mb).await;
    assert!(status.contains(" 413 "), "{status}");
    stack.finish(gateway).await;
}

/// Runs the gateway binary with `args` and `env`, expecting it to refuse to start: its
/// exit code 2 and standard error.
async fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(gateway_binary());
    command.args(args).env_remove("GATEWAY_ALLOW_NON_LOOPBACK").stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), command.kill_on_drop(true).output())
        .await
        .expect("the gateway exits at once")
        .expect("run the gateway binary");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
    stderr
}

#[tokio::test]
async fn a_non_loopback_bind_is_refused_unless_allowed() {
    for var in ["GATEWAY_HTTP_ADDR", "GATEWAY_WS_ADDR"] {
        let stderr = refused_start(&[], &[(var, "0.0.0.0:0")]).await;
        assert!(stderr.contains(var) && stderr.contains("--allow-non-loopback"), "{stderr}");
    }
    // @connections may never leave loopback, even when the APIs may.
    let stderr =
        refused_start(&["--allow-non-loopback"], &[("GATEWAY_MANAGEMENT_ADDR", "0.0.0.0:0")]).await;
    assert!(stderr.contains("GATEWAY_MANAGEMENT_ADDR"), "{stderr}");
}
