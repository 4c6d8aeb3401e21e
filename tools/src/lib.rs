//! rt-relay's operator commands: `rt-relay-keys` (mint, list and revoke API keys) and
//! `rt-relay-tables` (create the DynamoDB tables). Each command's arguments, its work and
//! its output live here, so they are unit-tested on fakes; the binaries in `src/bin/` only
//! parse the command line, connect to DynamoDB and exit with the outcome.
//!
//! Both reach DynamoDB the usual AWS way (region, credentials, `AWS_ENDPOINT_URL`), and
//! both name tables as the local stack does (`TABLE_PREFIX`, default `rt-relay-local-`)
//! unless a table is named explicitly.

pub mod endpoint;
pub mod keys;
pub mod sockets;
pub mod tables;

/// The table name prefix of the local stack (`make dev`, the README's recipes).
pub const DEFAULT_PREFIX: &str = "rt-relay-local-";

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused or failed; the reason is on stderr.
    Failure,
}

impl From<Outcome> for std::process::ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => Self::SUCCESS,
            Outcome::Failure => Self::FAILURE,
        }
    }
}

/// A name given on the command line or in the environment, if it says anything: blank
/// values count as unset, as they do for the functions' own configuration.
fn given(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// The table named `explicit`, else `prefix` + `suffix` (a blank prefix means the default).
pub fn table_name(explicit: Option<&str>, prefix: &str, suffix: &str) -> String {
    given(explicit).unwrap_or_else(|| {
        format!("{}{suffix}", given(Some(prefix)).as_deref().unwrap_or(DEFAULT_PREFIX))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_name_wins_and_blanks_count_as_unset() {
        assert_eq!(table_name(Some("keys"), "p-", "api-keys"), "keys");
        assert_eq!(table_name(Some("  "), "p-", "api-keys"), "p-api-keys");
        assert_eq!(table_name(None, "", "api-keys"), "rt-relay-local-api-keys");
    }
}
