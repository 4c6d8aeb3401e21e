//! `rt-relay-gateway`: runs the whole product locally (see the library's docs). Wiring only:
//! read the configuration, start the gateway, print its URLs, stop on Ctrl-C or SIGTERM.
//! Configured by environment variables ([`GatewayConfig::from_lookup`]); the one flag,
//! `--allow-non-loopback`, lets the APIs bind beyond loopback (`GATEWAY_ALLOW_NON_LOOPBACK`).

use std::process::ExitCode;

use rt_relay_gateway::{config::ALLOW_NON_LOOPBACK_VAR, Gateway, GatewayConfig};
use rt_relay_shared::{http::error_chain, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let mut allow_non_loopback = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--allow-non-loopback" => allow_non_loopback = true,
            "-h" | "--help" => {
                println!(
                    "usage: rt-relay-gateway [--allow-non-loopback]\n\nConfigured by environment \
                     variables (GATEWAY_HTTP_ADDR, GATEWAY_WS_ADDR, GATEWAY_MANAGEMENT_ADDR, \
                     TABLE_PREFIX, RT_*, AWS_ENDPOINT_URL, ...; see README.md).\n\
                     --allow-non-loopback  let the HTTP and WebSocket APIs bind beyond loopback \
                     (as {ALLOW_NON_LOOPBACK_VAR}=1); @connections always stays on loopback"
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("rt-relay-gateway: unknown argument {other:?} (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    let lookup = |var: &str| {
        if allow_non_loopback && var == ALLOW_NON_LOOPBACK_VAR {
            return Some("1".to_owned());
        }
        std::env::var(var).ok()
    };
    let config = match GatewayConfig::from_lookup(&lookup) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rt-relay-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let tables = config.tables.clone();
    let gateway = match Gateway::start(config).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("rt-relay-gateway: cannot start: {}", error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    println!("rt-relay-gateway ready");
    println!("  HTTP API        {}", gateway.http_url());
    println!("  WebSocket API   {}", gateway.ws_url());
    println!("  @connections    {}/@connections/{{connectionId}}", gateway.management_endpoint());
    println!(
        "  tables          {}, {}, {}, {}",
        tables.tickets, tables.notifications, tables.connections, tables.idempotency
    );
    if let Some(keys) = &tables.api_keys {
        println!(
            "  API keys        {keys} (mint one: rt-relay-keys mint --name NAME --scopes all)"
        );
    }
    wait_for_signal().await;
    println!("rt-relay-gateway: shutting down");
    gateway.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("rt-relay-gateway: cannot watch SIGTERM ({e}); stop with Ctrl-C");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
