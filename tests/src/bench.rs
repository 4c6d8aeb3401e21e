//! Shared pieces of the benchmark binaries behind `make bench` (`scripts/bench.sh`):
//! percentiles, and the rows of the one combined table the script prints. Every bench
//! writes its table rows to stdout and its progress to stderr, so the script can collect
//! the rows of all of them under the one header it prints
//! (`| # | figure | ratio | target | met | measured side by side |`).
//!
//! Also [`DynamoMeter`], what the DynamoDB calls of a benchmark cost. The production store
//! carries no instrumentation: the meter is an interceptor on the SDK client the benchmark
//! hands to `DynamoStore::new`, and only a metered client asks DynamoDB for its consumed
//! capacity.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::{
    config::{
        interceptors::{
            BeforeSerializationInterceptorContextMut, BeforeSerializationInterceptorContextRef,
            FinalizerInterceptorContextRef,
        },
        ConfigBag, Intercept, RuntimeComponents,
    },
    error::BoxError,
    operation::query::{QueryInput, QueryOutput},
    types::ReturnConsumedCapacity,
};
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// What the calls through a [`DynamoMeter`] have cost since it was built. Benchmarks take a
/// snapshot before and after and subtract.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreMetrics {
    /// Time spent awaiting DynamoDB, in nanoseconds (all calls, retries included).
    pub db_nanos: u64,
    /// Query calls made (a page may take more than one when DynamoDB's 1 MB limit cuts it).
    pub queries: u64,
    /// Items the Queries read (`ScannedCount`): what DynamoDB bills, filters or not.
    pub items_scanned: u64,
    /// Read capacity units the Queries consumed (`ConsumedCapacity`, total).
    pub read_capacity_units: f64,
}

impl StoreMetrics {
    /// The difference `self - earlier`, for one measured stretch.
    pub fn since(&self, earlier: &StoreMetrics) -> StoreMetrics {
        StoreMetrics {
            db_nanos: self.db_nanos.saturating_sub(earlier.db_nanos),
            queries: self.queries.saturating_sub(earlier.queries),
            items_scanned: self.items_scanned.saturating_sub(earlier.items_scanned),
            read_capacity_units: self.read_capacity_units - earlier.read_capacity_units,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    db_nanos: AtomicU64,
    queries: AtomicU64,
    items_scanned: AtomicU64,
    /// Capacity units × 1000: DynamoDB bills reads in halves of a unit.
    read_milli_units: AtomicU64,
}

/// Meters a DynamoDB client: times every call and, for Queries, asks for
/// `ReturnConsumedCapacity::Total` and adds up `ScannedCount` and the capacity consumed.
/// Clones share their totals.
#[derive(Debug, Clone, Default)]
pub struct DynamoMeter {
    counters: Arc<Counters>,
}

/// When the current call began (kept in the call's own config bag).
#[derive(Debug, Clone, Copy)]
struct CallStarted(Instant);

impl Storable for CallStarted {
    type Storer = StoreReplace<Self>;
}

impl DynamoMeter {
    /// `client` with this meter on every call it makes.
    pub fn meter(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        let conf = client.config().to_builder().interceptor(self.clone()).build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    /// A snapshot of what the calls have cost so far.
    pub fn metrics(&self) -> StoreMetrics {
        let c = &self.counters;
        StoreMetrics {
            db_nanos: c.db_nanos.load(Ordering::Relaxed),
            queries: c.queries.load(Ordering::Relaxed),
            items_scanned: c.items_scanned.load(Ordering::Relaxed),
            read_capacity_units: c.read_milli_units.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    fn count_query(&self, out: &QueryOutput) {
        let c = &self.counters;
        c.queries.fetch_add(1, Ordering::Relaxed);
        c.items_scanned.fetch_add(u64::try_from(out.scanned_count).unwrap_or(0), Ordering::Relaxed);
        let units = out.consumed_capacity.as_ref().and_then(|cc| cc.capacity_units).unwrap_or(0.0);
        // Capacity units are small non-negative multiples of 0.5; milli-units are exact.
        c.read_milli_units.fetch_add((units.max(0.0) * 1000.0).round() as u64, Ordering::Relaxed);
    }
}

impl Intercept for DynamoMeter {
    fn name(&self) -> &'static str {
        "DynamoMeter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(CallStarted(Instant::now()));
        Ok(())
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(query) = context.input_mut().downcast_mut::<QueryInput>() {
            query.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(CallStarted(started)) = cfg.load::<CallStarted>() {
            let spent = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.counters.db_nanos.fetch_add(spent, Ordering::Relaxed);
        }
        if let Some(Ok(out)) = context.output_or_error() {
            if let Some(query) = out.downcast_ref::<QueryOutput>() {
                self.count_query(query);
            }
        }
        Ok(())
    }
}

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
