//! `rt-relay-tables`: creates rt-relay's DynamoDB tables against any endpoint (moto for
//! `cargo lambda watch` and the tests, or an AWS account) from the definitions the template
//! declares: [`TABLES`], which `tests/tests/template.rs` keeps equal to `template.yaml`.
//! Idempotent: an existing table only gets the indexes it lacks, and the command says which
//! tables it made.

use std::{io::Write, time::Duration};

use aws_sdk_dynamodb::{types::TableStatus, Client};
use clap::{Args, Parser, Subcommand};
use rt_relay_shared::{
    config::Tables,
    http::error_chain,
    store::{
        schema::{create_tables, TABLES},
        StoreError,
    },
};

use crate::{endpoint::Endpoint, table_name, Outcome, DEFAULT_PREFIX};

/// How long a new table may take to become active (AWS: seconds to a minute or two).
const ACTIVE_WITHIN: Duration = Duration::from_secs(300);

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "rt-relay-tables",
    version,
    about = "Create rt-relay's DynamoDB tables (as template.yaml declares them) at any endpoint"
)]
pub struct Cli {
    /// Where DynamoDB is.
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// One operation on the tables.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Create each table that does not exist yet (indexes, stream, TTL), wait until it is
    /// active, and print what was done; an existing table only gets the indexes it lacks
    Create(TableNames),
}

/// The tables' names: the functions' own variables, else PREFIX + the table's role.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct TableNames {
    /// Prefix of every table not named by its own option
    #[arg(long, env = "TABLE_PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// [default: PREFIX + "tickets"]
    #[arg(long, value_name = "NAME", env = "TICKETS_TABLE")]
    pub tickets_table: Option<String>,
    /// [default: PREFIX + "notifications"]
    #[arg(long, value_name = "NAME", env = "NOTIFICATIONS_TABLE")]
    pub notifications_table: Option<String>,
    /// [default: PREFIX + "connections"]
    #[arg(long, value_name = "NAME", env = "CONNECTIONS_TABLE")]
    pub connections_table: Option<String>,
    /// [default: PREFIX + "idempotency"]
    #[arg(long, value_name = "NAME", env = "IDEMPOTENCY_TABLE")]
    pub idempotency_table: Option<String>,
    /// [default: PREFIX + "api-keys"]
    #[arg(long, value_name = "NAME", env = "API_KEYS_TABLE")]
    pub api_keys_table: Option<String>,
}

impl TableNames {
    /// The names, as the functions are given them.
    pub fn resolve(&self) -> Tables {
        let name =
            |explicit: &Option<String>, role| table_name(explicit.as_deref(), &self.prefix, role);
        Tables {
            tickets: name(&self.tickets_table, "tickets"),
            notifications: name(&self.notifications_table, "notifications"),
            connections: name(&self.connections_table, "connections"),
            idempotency: name(&self.idempotency_table, "idempotency"),
            api_keys: Some(name(&self.api_keys_table, "api-keys")),
        }
    }
}

/// Whether `name` exists (in any state).
async fn exists(client: &Client, name: &str) -> Result<bool, StoreError> {
    match client.describe_table().table_name(name).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => {
            Ok(false)
        }
        Err(e) => Err(StoreError::aws("DescribeTable", e)),
    }
}

/// Waits (bounded) until `name` is active: AWS creates tables asynchronously.
async fn wait_active(client: &Client, name: &str) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + ACTIVE_WITHIN;
    loop {
        let status = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| error_chain(&StoreError::aws("DescribeTable", e)))?
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{name} is not active after {} s", ACTIVE_WITHIN.as_secs()));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Creates the missing tables named by `tables` and reports each on `out`.
pub async fn create(
    client: &Client,
    tables: &Tables,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<Outcome> {
    let mut plan = Vec::new();
    for def in &TABLES {
        let Some(name) = def.name(tables) else { continue };
        match exists(client, name).await {
            Ok(found) => plan.push((name, def.logical_id, found)),
            Err(e) => return failed(err, &error_chain(&e)),
        }
    }
    if let Err(e) = create_tables(client, tables).await {
        return failed(err, &error_chain(&e));
    }
    for &(name, logical_id, existed) in &plan {
        if let Err(e) = wait_active(client, name).await {
            return failed(err, &e);
        }
        let action = if existed { "exists " } else { "created" };
        writeln!(out, "{action}  {name}  ({logical_id})")?;
    }
    let created = plan.iter().filter(|(_, _, existed)| !existed).count();
    writeln!(
        out,
        "{} tables active: {created} created, {} already there",
        plan.len(),
        plan.len() - created
    )?;
    Ok(Outcome::Success)
}

fn failed(err: &mut dyn Write, problem: &str) -> std::io::Result<Outcome> {
    writeln!(err, "rt-relay-tables: cannot create the tables: {problem}")?;
    writeln!(
        err,
        "  (is DynamoDB reachable? locally: scripts/moto.sh start, then export its AWS_* lines)"
    )?;
    Ok(Outcome::Failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(args: &[&str]) -> Result<Tables, clap::Error> {
        let argv = ["rt-relay-tables", "create"].into_iter().chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Create(names) => names.resolve(),
        })
    }

    #[test]
    fn names_come_from_the_prefix_unless_a_table_is_named() {
        let tables = names(&["--prefix", "t-1-", "--tickets-table", "mine"]).expect("parses");
        assert_eq!(tables.tickets, "mine");
        assert_eq!(tables.notifications, "t-1-notifications");
        assert_eq!(tables.api_keys.as_deref(), Some("t-1-api-keys"));
    }

    #[test]
    fn help_and_mistakes() {
        for args in [&["--help"][..], &["create", "--help"]] {
            let e =
                Cli::try_parse_from(std::iter::once("rt-relay-tables").chain(args.iter().copied()))
                    .expect_err("help");
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
            assert!(e.to_string().contains("Usage: rt-relay-tables"), "{e}");
        }
        let e = names(&["--bogus"]).expect_err("refused");
        assert_eq!((e.exit_code(), e.to_string().contains("--bogus")), (2, true));
        let e = Cli::try_parse_from(["rt-relay-tables"]).expect_err("a command is needed");
        assert_eq!(e.exit_code(), 2);
    }
}
