//! `rt-relay-gateway`: runs the whole product locally (see the library's docs). Wiring only:
//! read the configuration, start the gateway, print its URLs, stop on Ctrl-C or SIGTERM.

use std::process::ExitCode;

use rt_relay_gateway::{Gateway, GatewayConfig};
use rt_relay_shared::{http::error_chain, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let config = match GatewayConfig::from_env() {
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
