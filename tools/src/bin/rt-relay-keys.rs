//! `rt-relay-keys`: mint, list and revoke API keys; see [`rt_relay_tools::keys`].

use std::process::ExitCode;

use clap::Parser;
use rt_relay_shared::{auth::dynamodb::DynamoApiKeys, telemetry};
use rt_relay_tools::{
    keys::{run, Cli},
    Outcome,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let table = cli.keys_table.resolve();
    let store = DynamoApiKeys::new(cli.endpoint.client().await, table.clone());
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    run(cli.command, &store, &table, &mut out, &mut err).await.unwrap_or(Outcome::Failure).into()
}
