//! The real `rt-relay-tables` and `rt-relay-keys` binaries against moto: `create` makes the
//! tables and says so, and a second run changes nothing; `mint` prints the key once, alone
//! on stdout; `list` shows neither secrets nor hashes; `revoke` marks the key,
//! idempotently; mistakes exit non-zero. Everything both commands print, at trace level, is
//! checked for the secret.
//!
//! Needs moto (`make test` starts it and exports its variables). Bounded; loopback only.

use std::{process::Output, time::Duration};

use rt_relay_tools::endpoint::Endpoint;
use tokio::process::Command;

const KEYS: &str = env!("CARGO_BIN_EXE_rt-relay-keys");
const TABLES: &str = env!("CARGO_BIN_EXE_rt-relay-tables");

/// Runs a command with moto's settings from the test's environment, bounded in time.
async fn run(program: &str, prefix: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.env_clear().env("TABLE_PREFIX", prefix).env("RUST_LOG", "trace").args(args);
    for name in ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        let value = std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the tests with `make test`, which starts moto")
        });
        cmd.env(name, value);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} finished in time"))
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; returns (stdout, stderr).
async fn ok(program: &str, prefix: &str, args: &[&str]) -> (String, String) {
    let out = run(program, prefix, args).await;
    assert!(out.status.success(), "{args:?} failed: {}", text(&out.stderr));
    (text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn tables_are_created_once_then_keys_are_minted_listed_and_revoked() {
    let prefix = format!("t-tools-{}-", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (made, _) = ok(TABLES, &prefix, &["create"]).await;
    assert_eq!(made.matches("\ncreated  ").count() + usize::from(made.starts_with("created")), 5);
    assert!(made.contains(&format!("created  {prefix}notifications  (NotificationsTable)")));
    assert!(made.ends_with("5 tables active: 5 created, 0 already there\n"), "{made}");
    let (again, _) = ok(TABLES, &prefix, &["create"]).await;
    assert!(!again.contains("created "), "{again}");
    assert!(again.ends_with("5 tables active: 0 created, 5 already there\n"), "{again}");

    let mut logs = String::new();
    let (key, note) = ok(
        KEYS,
        &prefix,
        &["mint", "--name", "ci dashboard", "--scopes", "tickets:read,notifications:read"],
    )
    .await;
    logs.push_str(&note);
    let key = key.strip_suffix('\n').expect("the key alone, on one line");
    let (id, secret) =
        key.strip_prefix("rtr_").and_then(|r| r.split_once('_')).expect("rtr_<id>_<secret>");
    assert!(note.contains(id) && note.contains("only time"), "stderr names the id: {note}");

    let (listing, note) = ok(KEYS, &prefix, &["list"]).await;
    logs.push_str(&listing);
    logs.push_str(&note);
    let row = listing
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} listed:\n{listing}"));
    assert!(
        row.contains("ci dashboard")
            && row.contains("tickets:read notifications:read")
            && row.trim_end().ends_with('-'),
        "{row}"
    );
    let hash = rt_relay_shared::auth::secret_hash(secret);
    assert!(!listing.contains(&hash), "list shows no hash");

    let (said, note) = ok(KEYS, &prefix, &["revoke", id]).await;
    logs.push_str(&said);
    logs.push_str(&note);
    assert!(said.starts_with(&format!("revoked {id}")), "{said}");
    // A whole key is accepted, and only its id is used (and printed).
    let (said, note) = ok(KEYS, &prefix, &["revoke", key]).await;
    logs.push_str(&said);
    logs.push_str(&note);
    assert!(said.contains("already revoked"), "{said}");
    let (listing, _) = ok(KEYS, &prefix, &["list"]).await;
    let row = listing.lines().find(|l| l.starts_with(id)).expect("still listed after revocation");
    assert!(!row.trim_end().ends_with('-'), "a revocation date: {row}");

    for (args, code, what) in [
        (&["revoke", "0000000000000000"][..], 1, "unknown id"),
        (&["mint", "--name", "x", "--scopes", "tickets:admin"], 2, "unknown scope"),
        (&["mint", "--name", "x"], 2, "no scopes"),
    ] {
        let out = run(KEYS, &prefix, args).await;
        logs.push_str(&text(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{what}: {}", text(&out.stderr));
    }
    assert!(!logs.contains(secret), "the key appeared outside mint's stdout");

    let dynamodb = Endpoint::default().client().await;
    for table in ["tickets", "notifications", "connections", "idempotency", "api-keys"] {
        let _ = dynamodb.delete_table().table_name(format!("{prefix}{table}")).send().await;
    }
}

#[tokio::test]
async fn a_missing_table_is_a_clear_failure() {
    let prefix = format!("t-tools-none-{}-", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let out = run(KEYS, &prefix, &["list"]).await;
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("cannot list keys in table {prefix}api-keys")), "{said}");
    assert!(said.contains("rt-relay-tables create"), "{said}");
}
