//! The DynamoDB adapter for all four store traits, one file per table concern. Table shapes
//! are in [`super::schema`]; the design (keys, indexes, why) is in docs/ARCHITECTURE.md.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use aws_sdk_dynamodb::{
    error::SdkError,
    types::{AttributeValue, ReturnConsumedCapacity},
    Client,
};
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::config::Tables;

mod connections;
mod idempotency;
mod notifications;
mod tickets;

pub use notifications::{notification_from_payload, notification_item};
pub use tickets::ticket_item;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// All four stores over one DynamoDB client.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
    /// What the calls cost so far, for benchmarks; shared by clones.
    counters: Arc<Counters>,
}

/// Running totals behind [`StoreMetrics`].
#[derive(Debug, Default)]
struct Counters {
    db_nanos: AtomicU64,
    queries: AtomicU64,
    items_scanned: AtomicU64,
    /// Capacity units × 1000: DynamoDB bills reads in halves of a unit.
    read_milli_units: AtomicU64,
}

/// What this store's DynamoDB calls have cost since it was built (totals over all clones).
/// Benchmarks take a snapshot before and after and subtract.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreMetrics {
    /// Time spent awaiting DynamoDB, in nanoseconds (all calls).
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

impl DynamoStore {
    /// Wraps a client built once at cold start.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables, counters: Arc::new(Counters::default()) }
    }

    /// Total time spent awaiting DynamoDB since start, in nanoseconds.
    pub fn db_nanos(&self) -> u64 {
        self.counters.db_nanos.load(Ordering::Relaxed)
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

    /// The table names in use.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    async fn timed<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        let start = Instant::now();
        let out = fut.await;
        let spent = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.db_nanos.fetch_add(spent, Ordering::Relaxed);
        out
    }

    /// Adds one Query's `ScannedCount` and consumed capacity to the totals.
    fn count_query(&self, out: &aws_sdk_dynamodb::operation::query::QueryOutput) {
        let c = &self.counters;
        c.queries.fetch_add(1, Ordering::Relaxed);
        c.items_scanned.fetch_add(u64::try_from(out.scanned_count).unwrap_or(0), Ordering::Relaxed);
        let units = out.consumed_capacity.as_ref().and_then(|cc| cc.capacity_units).unwrap_or(0.0);
        // Capacity units are small non-negative multiples of 0.5; milli-units are exact.
        c.read_milli_units.fetch_add((units.max(0.0) * 1000.0).round() as u64, Ordering::Relaxed);
    }
}

/// Builds the DynamoDB client from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` for moto), once at cold start.
pub async fn client_from_env() -> Client {
    let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Client::new(&conf)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::Corrupt(format!("attribute {name} missing or not a string"))),
    }
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => {
            v.parse().map_err(|_| StoreError::Corrupt(format!("attribute {name} is not a number")))
        }
        _ => Err(StoreError::Corrupt(format!("attribute {name} missing or not a number"))),
    }
}

fn get_time(item: &Item, name: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(&get_s(item, name)?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not RFC 3339")))
}

fn is_conditional_failure<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

impl DynamoStore {
    /// Queries one index partition newest first, reading `limit + 1` items (one look-ahead
    /// tells whether a next page exists) and following DynamoDB's 1 MB pages as needed.
    async fn query_page(
        &self,
        table: &str,
        index: &str,
        hash_attr: &str,
        hash_value: &str,
        start: Option<Item>,
        limit: u32,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let want = limit as usize + 1;
        let mut items = Vec::with_capacity(want);
        let mut start = start;
        loop {
            let remaining = i32::try_from(want - items.len()).unwrap_or(i32::MAX);
            let out = self
                .timed(
                    self.client
                        .query()
                        .table_name(table)
                        .index_name(index)
                        .key_condition_expression("#h = :h")
                        .expression_attribute_names("#h", hash_attr)
                        .expression_attribute_values(":h", s(hash_value))
                        .scan_index_forward(false)
                        .limit(remaining)
                        .set_exclusive_start_key(start.take())
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send(),
                )
                .await
                .map_err(|e| StoreError::aws("Query", e))?;
            self.count_query(&out);
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(lek) if items.len() < want => start = Some(lek),
                _ => break,
            }
        }
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok((items, more))
    }
}
