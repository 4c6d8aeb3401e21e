//! `rt-relay-keys`: mints, lists and revokes rt-relay API keys, locally (moto) or on AWS.
//!
//! ```text
//! rt-relay-keys mint --name NAME --scopes tickets:write,tickets:read,notifications:read|all
//! rt-relay-keys list
//! rt-relay-keys revoke KEY_ID
//! ```
//!
//! `mint` prints the key on stdout, once, and nothing else there (`KEY=$(rt-relay-keys
//! mint ...)`); only its SHA-256 is stored. `list` never shows secrets (they are not
//! stored). The table is `API_KEYS_TABLE`, else `TABLE_PREFIX` + `api-keys` (the local
//! stack's `rt-relay-local-api-keys`); DynamoDB is reached the usual AWS way (region,
//! credentials, and `AWS_ENDPOINT_URL` for moto).

use std::{collections::BTreeSet, process::ExitCode};

use chrono::{SecondsFormat, Utc};
use rt_relay_shared::{
    auth::{
        dynamodb::DynamoApiKeys, mint, parse_scopes, scopes_text, ApiKeyStore, RevokeOutcome,
        Scope, KEY_PREFIX,
    },
    http::error_chain,
    store::dynamodb::client_from_env,
    telemetry,
};

const USAGE: &str = "usage:
  rt-relay-keys mint --name NAME --scopes SCOPES   SCOPES: comma-separated tickets:write,tickets:read,notifications:read, or all
  rt-relay-keys list
  rt-relay-keys revoke KEY_ID
table: API_KEYS_TABLE, else TABLE_PREFIX + api-keys (TABLE_PREFIX defaults to rt-relay-local-)";

/// One parsed command line.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Mint { name: String, scopes: BTreeSet<Scope> },
    List,
    Revoke { key_id: String },
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let (command, rest) = args.split_first().ok_or("no command given")?;
    match command.as_str() {
        "mint" => {
            let (mut name, mut scopes) = (None, None);
            let mut it = rest.iter();
            while let Some(flag) = it.next() {
                let (flag, inline) = match flag.split_once('=') {
                    Some((f, v)) => (f, Some(v.to_owned())),
                    None => (flag.as_str(), None),
                };
                let mut value = || {
                    inline
                        .clone()
                        .or_else(|| it.next().cloned())
                        .ok_or(format!("{flag} needs a value"))
                };
                match flag {
                    "--name" => name = Some(value()?),
                    "--scopes" => scopes = Some(parse_scopes(&value()?)?),
                    other => return Err(format!("unknown option {other:?}")),
                }
            }
            Ok(Command::Mint {
                name: name.ok_or("mint needs --name")?,
                scopes: scopes.ok_or(
                    "mint needs --scopes (e.g. --scopes tickets:read,notifications:read, or all)",
                )?,
            })
        }
        "list" if rest.is_empty() => Ok(Command::List),
        "revoke" => match rest {
            [id] => {
                // Accept a whole key too, but only ever use (and print) its public id.
                let key_id = id
                    .strip_prefix(KEY_PREFIX)
                    .and_then(|r| r.split('_').next())
                    .unwrap_or(id)
                    .to_owned();
                if key_id.is_empty() || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("revoke needs a key id (16 hex digits, as `list` shows)".into());
                }
                Ok(Command::Revoke { key_id })
            }
            _ => Err("revoke needs exactly one key id".into()),
        },
        other => Err(format!("unknown command {other:?}")),
    }
}

fn table_name() -> String {
    let var =
        |k: &str| std::env::var(k).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    var("API_KEYS_TABLE").unwrap_or_else(|| {
        format!("{}api-keys", var("TABLE_PREFIX").unwrap_or_else(|| "rt-relay-local-".into()))
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("-h" | "--help" | "help")) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let command = match parse_args(&args) {
        Ok(c) => c,
        Err(problem) => {
            eprintln!("rt-relay-keys: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let table = table_name();
    let store = DynamoApiKeys::new(client_from_env().await, table.clone());
    let fail = |what: &str, e: &dyn std::error::Error| {
        eprintln!("rt-relay-keys: {what} in table {table}: {}", error_chain(e));
        eprintln!("  (is the stack up? locally `make dev` creates the table; on AWS set API_KEYS_TABLE to the stack's ApiKeysTableName output)");
        ExitCode::FAILURE
    };
    match command {
        Command::Mint { name, scopes } => match mint(&store, &name, scopes, Utc::now()).await {
            Ok(minted) => {
                let r = &minted.record;
                eprintln!(
                    "minted key {} ({}) with scopes {}",
                    r.key_id,
                    r.name,
                    scopes_text(&r.scopes)
                );
                eprintln!("this is the only time the key is shown: only its SHA-256 is stored");
                println!("{}", minted.key());
                ExitCode::SUCCESS
            }
            Err(e) => fail("cannot mint a key", &e),
        },
        Command::List => match store.list().await {
            Ok(keys) => {
                println!(
                    "{:<16}  {:<24}  {:<44}  {:<20}  REVOKED",
                    "KEY ID", "NAME", "SCOPES", "CREATED"
                );
                for k in keys {
                    let when =
                        |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
                    println!(
                        "{:<16}  {:<24}  {:<44}  {:<20}  {}",
                        k.key_id,
                        k.name,
                        scopes_text(&k.scopes),
                        when(k.created_at),
                        k.revoked_at.map(when).unwrap_or_else(|| "-".into())
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail("cannot list keys", &e),
        },
        Command::Revoke { key_id } => match store.revoke(&key_id, Utc::now()).await {
            Ok(RevokeOutcome::Revoked) => {
                println!("revoked {key_id}: refused from its next request");
                ExitCode::SUCCESS
            }
            Ok(RevokeOutcome::AlreadyRevoked(at)) => {
                println!(
                    "{key_id} was already revoked at {}",
                    at.to_rfc3339_opts(SecondsFormat::Secs, true)
                );
                ExitCode::SUCCESS
            }
            Ok(RevokeOutcome::NotFound) => {
                eprintln!("rt-relay-keys: no key {key_id} in table {table}");
                ExitCode::FAILURE
            }
            Err(e) => fail("cannot revoke the key", &e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse_args(&args(&["mint", "--name", "ci", "--scopes", "tickets:read"])),
            Ok(Command::Mint { name: "ci".into(), scopes: [Scope::TicketsRead].into() })
        );
        assert_eq!(
            parse_args(&args(&["mint", "--scopes=all", "--name=dev"])),
            Ok(Command::Mint { name: "dev".into(), scopes: Scope::ALL.into() })
        );
        assert_eq!(parse_args(&args(&["list"])), Ok(Command::List));
        assert_eq!(
            parse_args(&args(&["revoke", "0123456789abcdef"])),
            Ok(Command::Revoke { key_id: "0123456789abcdef".into() })
        );
        let whole = format!("rtr_0123456789abcdef_{}", "a".repeat(64));
        assert_eq!(
            parse_args(&["revoke".to_string(), whole]),
            Ok(Command::Revoke { key_id: "0123456789abcdef".into() })
        );
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse_args(&args(&[])).is_err());
        assert!(parse_args(&args(&["mint", "--name", "x"])).unwrap_err().contains("--scopes"));
        assert!(parse_args(&args(&["mint", "--scopes", "all"])).unwrap_err().contains("--name"));
        assert!(parse_args(&args(&["mint", "--name"])).unwrap_err().contains("needs a value"));
        assert!(parse_args(&args(&["mint", "--name", "x", "--scopes", "admin"]))
            .unwrap_err()
            .contains("admin"));
        assert!(parse_args(&args(&["revoke"])).is_err());
        assert!(parse_args(&args(&["revoke", "not hex"])).is_err());
        assert!(parse_args(&args(&["list", "extra"])).is_err());
        assert!(parse_args(&args(&["delete"])).is_err());
    }
}
