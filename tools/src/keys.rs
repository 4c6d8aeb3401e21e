//! `rt-relay-keys`: mints, lists and revokes rt-relay API keys, locally (moto) or on AWS.
//!
//! `mint` prints the key on stdout, once, and nothing else there (`KEY=$(rt-relay-keys mint
//! ...)`); only its SHA-256 is stored. `list` never shows secrets (they are not stored). The
//! table is `--table`/`API_KEYS_TABLE`, else `TABLE_PREFIX` + `api-keys`.
//!
//! A key's properties are [`MintArgs`] fields and `list` prints [`COLUMNS`]: a new per-key
//! setting (a queue list, a connection limit) is one field there, one column here and
//! whatever the record stores.

use std::{collections::BTreeSet, io::Write};

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Parser, Subcommand};
use rt_relay_shared::{
    auth::{
        mint, parse_scopes, scopes_text, ApiKeyRecord, ApiKeyStore, RevokeOutcome, Scope,
        KEY_PREFIX,
    },
    http::error_chain,
};

use crate::{endpoint::Endpoint, sockets::KeySockets, Outcome, DEFAULT_PREFIX};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "rt-relay-keys",
    version,
    about = "Mint, list and revoke rt-relay API keys (locally on moto, or on AWS)",
    after_help = "On AWS, set --table (API_KEYS_TABLE) to the stack's ApiKeysTableName output.\n\
                  Locally, `rt-relay-tables create` (or `make dev`) creates the table."
)]
pub struct Cli {
    /// Which table.
    #[command(flatten)]
    pub keys_table: KeysTable,
    /// Where DynamoDB is.
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The API keys table's name.
#[derive(Debug, Clone, Args)]
pub struct KeysTable {
    /// The API keys table [default: PREFIX + "api-keys"]
    #[arg(id = "table", long, value_name = "NAME", env = "API_KEYS_TABLE", global = true)]
    pub table: Option<String>,
    /// Table name prefix, used when no table is named
    #[arg(long, env = "TABLE_PREFIX", default_value = DEFAULT_PREFIX, global = true)]
    pub prefix: String,
}

impl KeysTable {
    /// The table the command works on.
    pub fn resolve(&self) -> String {
        crate::table_name(self.table.as_deref(), &self.prefix, "api-keys")
    }
}

/// One operation on the keys.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Mint a key and print it on stdout, once: only its SHA-256 is stored
    Mint(MintArgs),
    /// List every key (id, name, scopes, created, revoked); never secrets
    List,
    /// Revoke a key: it is refused from its next request (the record stays, for the audit
    /// trail), and with --management-endpoint its open WebSockets are closed
    Revoke(RevokeArgs),
    /// Set the queues a key may create tickets in and read (replaces its list)
    SetQueues(SetQueuesArgs),
}

/// What a new key is: its name and rights.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct MintArgs {
    /// Who or what the key is for (1 to 100 characters; `list` shows it)
    #[arg(long)]
    pub name: String,
    /// Comma-separated scopes: tickets:write, tickets:read, notifications:read,
    /// tickets:requestor (may set a ticket's requestor, whom RT mails); or all
    #[arg(long, value_parser = parse_scopes)]
    pub scopes: BTreeSet<Scope>,
    /// Comma-separated queues the key may create in and read; `*` for every queue
    /// [default: the relay's default queue only]
    #[arg(long, value_parser = queue_list, default_value = "")]
    pub queues: QueueList,
}

/// A key's queue list as given on the command line.
pub type QueueList = Vec<String>;

/// Parses `A,B` (trimmed, no blanks); empty means the relay's default queue.
fn queue_list(given: &str) -> Result<QueueList, String> {
    let mut queues = Vec::new();
    for q in given.split(',').map(str::trim).filter(|q| !q.is_empty()) {
        rt_relay_shared::model::validate_queue_name(q)
            .map_err(|e| format!("queue {q:?}: {}", e.message))?;
        if !queues.iter().any(|k| k == q) {
            queues.push(q.to_owned());
        }
    }
    Ok(queues)
}

/// A key and its new queue list.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SetQueuesArgs {
    /// The key's id (16 hex digits, as `list` shows it)
    #[arg(value_name = "KEY_ID", value_parser = key_id)]
    pub key_id: String,
    /// Comma-separated queues; `*` for every queue; empty for the relay's default queue
    #[arg(long, value_parser = queue_list)]
    pub queues: QueueList,
}

/// Which key to revoke.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RevokeArgs {
    /// The key's id (16 hex digits, as `list` shows it); a whole key is accepted too, and
    /// only its id is used
    #[arg(value_name = "KEY_ID", value_parser = key_id)]
    pub key_id: String,
    /// The WebSocket API's Management API endpoint (the stack's WebSocketManagementEndpoint
    /// output; locally the gateway's @connections URL): closes the key's open WebSockets
    #[arg(long, value_name = "URL", env = "WS_MANAGEMENT_ENDPOINT")]
    pub management_endpoint: Option<String>,
    /// The connections table [default: PREFIX + "connections"]
    #[arg(long, value_name = "NAME", env = "CONNECTIONS_TABLE")]
    pub connections_table: Option<String>,
}

/// Closes `key_id`'s open WebSockets through `sockets`, or says they stay open.
async fn close_sockets(
    sockets: Option<&dyn KeySockets>,
    key_id: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<Outcome> {
    let Some(sockets) = sockets else {
        writeln!(
            err,
            "note: its open WebSockets stay open until they close; pass --management-endpoint \
             (WS_MANAGEMENT_ENDPOINT) to close them"
        )?;
        return Ok(Outcome::Success);
    };
    match sockets.close_all(key_id).await {
        Ok(n) => {
            writeln!(out, "closed {n} open WebSocket connection(s) of {key_id}")?;
            Ok(Outcome::Success)
        }
        Err(e) => {
            writeln!(
                err,
                "rt-relay-keys: the key is revoked, but closing its WebSockets failed: {}",
                error_chain(e.as_ref())
            )?;
            Ok(Outcome::Failure)
        }
    }
}

/// The public id of a key id or a whole key; never keeps (or echoes) the secret part.
fn key_id(given: &str) -> Result<String, String> {
    let id = given.strip_prefix(KEY_PREFIX).and_then(|r| r.split('_').next()).unwrap_or(given);
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a key id is hex digits (16, as `list` shows)".into());
    }
    Ok(id.to_owned())
}

/// One column of `list`: header, width (0: the last, unpadded) and the value shown.
#[derive(Debug)]
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// Padded width.
    pub width: usize,
    /// The cell for one key.
    pub value: fn(&ApiKeyRecord) -> String,
}

fn when(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What `list` shows of each key, in order.
pub const COLUMNS: &[Column] = &[
    Column { header: "KEY ID", width: 16, value: |k| k.key_id.clone() },
    Column { header: "NAME", width: 24, value: |k| k.name.clone() },
    Column { header: "SCOPES", width: 44, value: |k| scopes_text(&k.scopes) },
    Column {
        header: "QUEUES",
        width: 16,
        value: |k| if k.queues.is_empty() { "(default)".into() } else { k.queues.join(",") },
    },
    Column { header: "CREATED", width: 20, value: |k| when(k.created_at) },
    Column { header: "REVOKED", width: 0, value: |k| k.revoked_at.map(when).unwrap_or("-".into()) },
];

fn row(cells: impl Iterator<Item = (usize, String)>) -> String {
    cells.map(|(width, cell)| format!("{cell:<width$}")).collect::<Vec<_>>().join("  ")
}

/// Runs `command` on the keys in `store` (named `table` in messages): results on `out`,
/// notes and errors on `err`. `sockets` closes a revoked key's open WebSockets (`None`: the
/// Management API endpoint was not given; they stay open until they close).
pub async fn run(
    command: Command,
    store: &dyn ApiKeyStore,
    sockets: Option<&dyn KeySockets>,
    table: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<Outcome> {
    let mut fail = |what: &str, e: &dyn std::error::Error| -> std::io::Result<Outcome> {
        writeln!(err, "rt-relay-keys: {what} in table {table}: {}", error_chain(e))?;
        writeln!(
            err,
            "  (does the table exist? locally `rt-relay-tables create` or `make dev` creates it; \
             on AWS set API_KEYS_TABLE to the stack's ApiKeysTableName output)"
        )?;
        Ok(Outcome::Failure)
    };
    match command {
        Command::Mint(MintArgs { name, scopes, queues }) => {
            match mint(store, &name, scopes, Utc::now()).await {
                Ok(minted) => {
                    let r = &minted.record;
                    if !queues.is_empty() {
                        if let Err(e) = store.set_queues(&r.key_id, &queues).await {
                            let _ = store.revoke(&r.key_id, Utc::now()).await;
                            return fail(
                                "cannot set the new key's queues (the key was revoked)",
                                &e,
                            );
                        }
                    }
                    writeln!(
                        err,
                        "minted key {} ({}) with scopes {}",
                        r.key_id,
                        r.name,
                        scopes_text(&r.scopes)
                    )?;
                    writeln!(
                        err,
                        "this is the only time the key is shown: only its SHA-256 is stored"
                    )?;
                    writeln!(out, "{}", minted.key())?;
                    Ok(Outcome::Success)
                }
                Err(e) => fail("cannot mint a key", &e),
            }
        }
        Command::List => match store.list().await {
            Ok(keys) => {
                writeln!(out, "{}", row(COLUMNS.iter().map(|c| (c.width, c.header.into()))))?;
                for k in &keys {
                    writeln!(out, "{}", row(COLUMNS.iter().map(|c| (c.width, (c.value)(k)))))?;
                }
                Ok(Outcome::Success)
            }
            Err(e) => fail("cannot list keys", &e),
        },
        Command::SetQueues(SetQueuesArgs { key_id, queues }) => {
            match store.set_queues(&key_id, &queues).await {
                Ok(true) => {
                    let shown =
                        if queues.is_empty() { "(default)".into() } else { queues.join(",") };
                    writeln!(out, "{key_id} may now use queues {shown} (from its next request)")?;
                    Ok(Outcome::Success)
                }
                Ok(false) => {
                    writeln!(err, "rt-relay-keys: no key {key_id} in table {table}")?;
                    Ok(Outcome::Failure)
                }
                Err(e) => fail("cannot set the key's queues", &e),
            }
        }
        Command::Revoke(RevokeArgs { key_id, .. }) => match store.revoke(&key_id, Utc::now()).await
        {
            Ok(RevokeOutcome::Revoked) => {
                writeln!(out, "revoked {key_id}: refused from its next request")?;
                close_sockets(sockets, &key_id, out, err).await
            }
            Ok(RevokeOutcome::AlreadyRevoked(at)) => {
                writeln!(out, "{key_id} was already revoked at {}", when(at))?;
                close_sockets(sockets, &key_id, out, err).await
            }
            Ok(RevokeOutcome::NotFound) => {
                writeln!(err, "rt-relay-keys: no key {key_id} in table {table}")?;
                Ok(Outcome::Failure)
            }
            Err(e) => fail("cannot revoke the key", &e),
        },
    }
}

#[cfg(test)]
mod tests {
    use rt_relay_shared::auth::memory::MemoryApiKeys;

    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("rt-relay-keys").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    fn revoke_of(id: &str) -> Command {
        Command::Revoke(RevokeArgs {
            key_id: id.into(),
            management_endpoint: None,
            connections_table: None,
        })
    }

    fn mint_args(name: &str, scopes: &[Scope]) -> Command {
        Command::Mint(MintArgs {
            name: name.into(),
            scopes: scopes.iter().copied().collect(),
            queues: Vec::new(),
        })
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse(&["mint", "--name", "ci", "--scopes", "tickets:read"]).ok(),
            Some(mint_args("ci", &[Scope::TicketsRead]))
        );
        assert_eq!(
            parse(&["mint", "--scopes=all", "--name=dev"]).ok(),
            Some(mint_args("dev", &Scope::ALL))
        );
        assert_eq!(parse(&["list"]).ok(), Some(Command::List));
        let revoke = revoke_of;
        assert_eq!(parse(&["revoke", "0123456789abcdef"]).ok(), Some(revoke("0123456789abcdef")));
        let whole = format!("rtr_0123456789abcdef_{}", "a".repeat(64));
        assert_eq!(parse(&["revoke", &whole]).ok(), Some(revoke("0123456789abcdef")));
        let cli = Cli::try_parse_from(["rt-relay-keys", "list", "--table", "k", "--prefix", "p-"])
            .expect("options after the command");
        assert_eq!(cli.keys_table.resolve(), "k");
        // `--name` belongs to the key, never to the table.
        let cli = Cli::try_parse_from(["rt-relay-keys", "mint", "--name", "n", "--scopes", "all"])
            .expect("parses");
        assert!(cli.keys_table.resolve().ends_with("api-keys"));
    }

    #[test]
    fn mistakes_are_explained_with_a_usage_error() {
        let problem = |args: &[&str]| {
            let e = parse(args).expect_err("refused");
            assert_eq!(e.exit_code(), 2, "{args:?}: a usage error");
            e.to_string()
        };
        assert!(problem(&[]).contains("Usage"));
        assert!(problem(&["mint", "--name", "x"]).contains("--scopes"));
        assert!(problem(&["mint", "--scopes", "all"]).contains("--name"));
        assert!(problem(&["mint", "--name"]).contains("a value is required"));
        assert!(problem(&["mint", "--name", "x", "--scopes", "tickets:admin"]).contains("admin"));
        assert!(problem(&["revoke"]).contains("KEY_ID"));
        let secret = "f".repeat(64);
        let refused = problem(&["revoke", &format!("not hex {secret}")]);
        assert!(refused.contains("hex digits"), "{refused}");
        assert!(problem(&["list", "extra"]).contains("extra"));
        assert!(problem(&["delete"]).contains("delete"));
    }

    #[test]
    fn every_command_has_help() {
        for args in [&["--help"][..], &["mint", "--help"], &["list", "--help"], &["revoke", "-h"]] {
            let e = parse(args).expect_err("help is shown, not run");
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{args:?}");
            assert!(e.to_string().contains("Usage: rt-relay-keys"), "{args:?}: {e}");
        }
        let help = parse(&["mint", "--help"]).expect_err("help").to_string();
        assert!(help.contains("notifications:read") && help.contains("TABLE_PREFIX"), "{help}");
    }

    async fn run_on(store: &MemoryApiKeys, command: Command) -> (Outcome, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let outcome = run(command, store, None, "keys", &mut out, &mut err).await.expect("written");
        let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8");
        (outcome, text(out), text(err))
    }

    #[tokio::test]
    async fn mint_prints_the_key_alone_list_shows_no_secret_revoke_is_idempotent() {
        let store = MemoryApiKeys::new();
        let (outcome, key, note) =
            run_on(&store, mint_args("ci dashboard", &[Scope::TicketsRead])).await;
        assert_eq!(outcome, Outcome::Success);
        let key = key.strip_suffix('\n').expect("one line");
        let (id, secret) =
            key.strip_prefix("rtr_").and_then(|r| r.split_once('_')).expect("rtr_<id>_<secret>");
        assert!(note.contains(id) && note.contains("only time") && !note.contains(secret));

        let (_, listing, _) = run_on(&store, Command::List).await;
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 2, "{listing}");
        assert!(lines[0].starts_with("KEY ID            NAME") && lines[0].ends_with("REVOKED"));
        assert!(lines[1].starts_with(&format!("{id}  ci dashboard  ")), "{listing}");
        assert!(lines[1].contains("tickets:read") && lines[1].ends_with("Z  -"), "{listing}");
        assert!(!listing.contains(secret));

        let revoke = || revoke_of(id);
        let (outcome, said, _) = run_on(&store, revoke()).await;
        assert_eq!((outcome, said.starts_with(&format!("revoked {id}"))), (Outcome::Success, true));
        let (outcome, said, _) = run_on(&store, revoke()).await;
        assert_eq!((outcome, said.contains("already revoked")), (Outcome::Success, true));
    }

    #[tokio::test]
    async fn failures_name_the_table_and_exit_non_zero() {
        let store = MemoryApiKeys::new();
        let unknown = revoke_of("0000000000000000");
        let (outcome, _, said) = run_on(&store, unknown).await;
        assert_eq!(outcome, Outcome::Failure);
        assert!(said.contains("no key 0000000000000000 in table keys"), "{said}");
        store.set_failing(true);
        let (outcome, _, said) = run_on(&store, Command::List).await;
        assert_eq!(outcome, Outcome::Failure);
        assert!(said.contains("cannot list keys in table keys"), "{said}");
    }
}
