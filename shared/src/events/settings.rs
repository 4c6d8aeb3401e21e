//! Configuration of the event paths, read once at cold start: `WEBHOOK_SECRET` for the
//! webhook, `RT_SYNC_*` bounds for the sync. Same rules as `crate::config`: a missing or
//! invalid value fails naming the variable.

use std::time::Duration;

use super::{signature::MIN_SECRET_BYTES, sync::SyncSettings};
use crate::{
    config::{get, required, ConfigError, Lookup},
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

fn number(
    lookup: Lookup<'_>,
    var: &'static str,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(lookup, var) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or(ConfigError {
            var,
            problem: format!(
                "must be an integer from {} to {}, got {v:?}",
                range.start(),
                range.end()
            ),
        }),
    }
}

impl SyncSettings {
    /// Reads `RT_SYNC_PAGE_SIZE` (1..=100), `RT_SYNC_MAX_PAGES` (1..=1000),
    /// `RT_SYNC_BUDGET_MS` and `RT_SYNC_LEASE_MS` (milliseconds; the lease must be longer
    /// than the budget), each defaulting to [`SyncSettings::default`].
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let d = SyncSettings::default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let settings = SyncSettings {
            page_size: number(lookup, "RT_SYNC_PAGE_SIZE", 1..=100, u64::from(d.page_size))? as u32,
            max_pages: number(lookup, "RT_SYNC_MAX_PAGES", 1..=1000, u64::from(d.max_pages))?
                as u32,
            budget: Duration::from_millis(number(
                lookup,
                "RT_SYNC_BUDGET_MS",
                1..=900_000,
                ms(d.budget),
            )?),
            lease: Duration::from_millis(number(
                lookup,
                "RT_SYNC_LEASE_MS",
                1..=3_600_000,
                ms(d.lease),
            )?),
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

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn the_secret_is_required_and_long_enough_and_never_printed() {
        let e = webhook_secret_from_lookup(&lookup(&[])).unwrap_err();
        assert_eq!(e.var, "WEBHOOK_SECRET");
        let e = webhook_secret_from_lookup(&lookup(&[("WEBHOOK_SECRET", "short")])).unwrap_err();
        assert!(e.problem.contains("32 bytes") && !e.problem.contains("short"), "{e}");
        let long = "x".repeat(40);
        let s = webhook_secret_from_lookup(&lookup(&[("WEBHOOK_SECRET", &long)])).unwrap();
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn sync_bounds_default_and_are_checked() {
        assert_eq!(SyncSettings::from_lookup(&lookup(&[])).unwrap(), SyncSettings::default());
        let s = SyncSettings::from_lookup(&lookup(&[
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
            assert_eq!(SyncSettings::from_lookup(&lookup(&[(var, bad)])).unwrap_err().var, var);
        }
        let e = SyncSettings::from_lookup(&lookup(&[("RT_SYNC_LEASE_MS", "40000")])).unwrap_err();
        assert_eq!(e.var, "RT_SYNC_LEASE_MS");
    }
}
