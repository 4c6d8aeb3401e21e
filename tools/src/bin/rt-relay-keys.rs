//! `rt-relay-keys`: mint, list and revoke API keys; see [`rt_relay_tools::keys`].

use std::process::ExitCode;

use clap::Parser;
use rt_relay_shared::{
    auth::dynamodb::DynamoApiKeys, config::Tables, store::dynamodb::DynamoStore, telemetry,
};
use rt_relay_tools::{
    keys::{run, Cli, Command},
    sockets::{KeySockets, ManagedSockets},
    table_name, Outcome,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let table = cli.keys_table.resolve();
    let dynamodb = cli.endpoint.client().await;
    let store = DynamoApiKeys::new(dynamodb.clone(), table.clone());
    // Revoking with a Management API endpoint also closes the key's open WebSockets.
    let sockets = match &cli.command {
        Command::Revoke(args) => match args.management_endpoint.as_deref() {
            Some(endpoint) if !endpoint.trim().is_empty() => {
                let mut tables = Tables::with_prefix(&cli.keys_table.prefix);
                tables.connections = table_name(
                    args.connections_table.as_deref(),
                    &cli.keys_table.prefix,
                    "connections",
                );
                let sdk = cli.endpoint.sdk_config().await;
                Some(ManagedSockets::new(DynamoStore::new(dynamodb, tables), &sdk, endpoint))
            }
            _ => None,
        },
        _ => None,
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let sockets = sockets.as_ref().map(|s| s as &dyn KeySockets);
    run(cli.command, &store, sockets, &table, &mut out, &mut err)
        .await
        .unwrap_or(Outcome::Failure)
        .into()
}
