//! Shared pieces of the benchmark binaries behind `make bench` (`scripts/bench.sh`):
//! percentiles, and the rows of the one combined table the script prints. Every bench
//! writes its table rows to stdout and its progress to stderr, so the script can collect
//! the rows of all of them under the one header it prints
//! (`| # | figure | ratio | target | met | measured side by side |`).

use std::time::Duration;

/// What a ratio is held to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The ratio must not exceed this.
    AtMost(f64),
    /// The ratio must reach at least this.
    AtLeast(f64),
    /// Printed for information beside a figure that has a target.
    Info,
}

impl Target {
    fn describe(self) -> String {
        match self {
            Target::AtMost(t) => format!("≤ {}", trim(t)),
            Target::AtLeast(t) => format!("≥ {}", trim(t)),
            Target::Info => "(info)".into(),
        }
    }

    /// Whether `ratio` meets the target (`None` for information rows).
    pub fn met(self, ratio: f64) -> Option<bool> {
        match self {
            Target::AtMost(t) => Some(ratio <= t),
            Target::AtLeast(t) => Some(ratio >= t),
            Target::Info => None,
        }
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Formats a ratio with sensible precision.
pub fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        "n/a".into()
    } else if r.abs() >= 100.0 {
        format!("{r:.0}")
    } else if r.abs() >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.3}")
    }
}

/// Prints one row of the combined table to stdout. `id` is the part and a letter
/// (`2a`); `measured` shows the two things the ratio compares, with units.
pub fn row(id: &str, figure: &str, ratio: f64, target: Target, measured: &str) {
    let met = match target.met(ratio) {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "",
    };
    println!(
        "| {id} | {figure} | {} | {} | {met} | {measured} |",
        fmt_ratio(ratio),
        target.describe()
    );
}

/// Nearest-rank percentile (`p` in 0..=1) of unsorted samples; zero when there are none.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The median of unsorted samples.
pub fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 0.5)
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Microseconds, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Reads `--name value` style options with defaults: `arg("--creates", 50)`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} {v}: not a valid value")))
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let d = |ms| Duration::from_millis(ms);
        let samples: Vec<_> = (1..=20).rev().map(d).collect();
        assert_eq!(median(&samples), d(10));
        assert_eq!(percentile(&samples, 0.95), d(19));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn targets_judge_ratios() {
        assert_eq!(Target::AtMost(1.3).met(1.3), Some(true));
        assert_eq!(Target::AtMost(1.3).met(1.31), Some(false));
        assert_eq!(Target::AtLeast(30.0).met(29.0), Some(false));
        assert_eq!(Target::Info.met(5.0), None);
        assert_eq!(Target::AtMost(1.05).describe(), "≤ 1.05");
    }
}
