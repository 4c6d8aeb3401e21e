//! Configuration of the event paths, read once at cold start: `WEBHOOK_SECRET` for the
//! webhook, `RT_SYNC_*` bounds for the sync. Same rules as `crate::config`: a missing or
//! invalid value fails naming the variable.

use super::{signature::MIN_SECRET_BYTES, sync::SyncSettings};
use crate::{
    config::{integer, millis, required, ConfigError, Lookup},
    secret::Secret,
};

/// Reads `WEBHOOK_SECRET`: required, at least [`MIN_SECRET_BYTES`] bytes.
pub fn webhook_secret_from_lookup(lookup: Lookup<'_>) -> Result<Secret, ConfigError> {
    let secret = required(lookup, "WEBHOOK_SECRET")?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(ConfigError {
            var: "WEBHOOK_SECRET",
            problem: format!(
                "must be at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            ),
        });
    }
    Ok(Secret::new(secret))
}

impl SyncSettings {
    /// Reads `RT_SYNC_PAGE_SIZE` (1..=100), `RT_SYNC_MAX_PAGES` (1..=1000),
    /// `RT_SYNC_BUDGET_MS` and `RT_SYNC_LEASE_MS` (milliseconds; the lease must be longer
    /// than the budget), each defaulting to [`SyncSettings::default`].
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let d = SyncSettings::default();
        let settings = SyncSettings {
            page_size: integer(lookup, "RT_SYNC_PAGE_SIZE", 1..=100, d.page_size)?,
            max_pages: integer(lookup, "RT_SYNC_MAX_PAGES", 1..=1000, d.max_pages)?,
            budget: millis(lookup, "RT_SYNC_BUDGET_MS", 1..=900_000, d.budget)?,
            lease: millis(lookup, "RT_SYNC_LEASE_MS", 1..=3_600_000, d.lease)?,
        };
        if settings.lease <= settings.budget {
            return Err(ConfigError {
                var: "RT_SYNC_LEASE_MS",
                problem:
                    "must be longer than RT_SYNC_BUDGET_MS, or a live run could lose the cursor"
                        .into(),
            });
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::config::lookup_in;

    #[test]
    fn the_secret_is_required_and_long_enough_and_never_printed() {
        let e = webhook_secret_from_lookup(&lookup_in(&[])).unwrap_err();
        assert_eq!(e.var, "WEBHOOK_SECRET");
        let e = webhook_secret_from_lookup(&lookup_in(&[("WEBHOOK_SECRET", "short")])).unwrap_err();
        assert!(e.problem.contains("32 bytes") && !e.problem.contains("short"), "{e}");
        let long = "x".repeat(40);
        let s = webhook_secret_from_lookup(&lookup_in(&[("WEBHOOK_SECRET", &long)])).unwrap();
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn sync_bounds_default_and_are_checked() {
        assert_eq!(SyncSettings::from_lookup(&lookup_in(&[])).unwrap(), SyncSettings::default());
        let s = SyncSettings::from_lookup(&lookup_in(&[
            ("RT_SYNC_PAGE_SIZE", "10"),
            ("RT_SYNC_BUDGET_MS", "1000"),
            ("RT_SYNC_LEASE_MS", "5000"),
        ]))
        .unwrap();
        assert_eq!(
            (s.page_size, s.budget, s.lease.as_millis()),
            (10, Duration::from_secs(1), 5000)
        );
        for (var, bad) in
            [("RT_SYNC_PAGE_SIZE", "101"), ("RT_SYNC_MAX_PAGES", "0"), ("RT_SYNC_LEASE_MS", "x")]
        {
            assert_eq!(SyncSettings::from_lookup(&lookup_in(&[(var, bad)])).unwrap_err().var, var);
        }
        let e =
            SyncSettings::from_lookup(&lookup_in(&[("RT_SYNC_LEASE_MS", "40000")])).unwrap_err();
        assert_eq!(e.var, "RT_SYNC_LEASE_MS");
    }
}
