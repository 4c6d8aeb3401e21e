//! `rt-relay-tables`: create rt-relay's DynamoDB tables; see [`rt_relay_tools::tables`].

use std::process::ExitCode;

use clap::Parser;
use rt_relay_shared::telemetry;
use rt_relay_tools::{
    tables::{create, Cli, Command},
    Outcome,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let client = cli.endpoint.client().await;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let outcome = match cli.command {
        Command::Create(names) => create(&client, &names.resolve(), &mut out, &mut err).await,
    };
    outcome.unwrap_or(Outcome::Failure).into()
}
