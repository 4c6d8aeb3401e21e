//! The DynamoDB adapter for all four store traits, one file per table concern; items are
//! mapped in [`item`]. Table shapes are in [`super::schema`]; the design (keys, indexes, why)
//! is in docs/ARCHITECTURE.md. Benchmarks meter the calls from outside, with an interceptor
//! on the client they hand to [`DynamoStore::new`] (tests/src/bench.rs).

use aws_sdk_dynamodb::Client;

use super::{StoreError, StoreResult};
use crate::config::Tables;

mod connections;
mod idempotency;
pub mod item;
mod notifications;
mod tickets;

pub use item::Item;
pub use notifications::{notification_from_payload, notification_item};
pub use tickets::ticket_item;

use item::s;

/// One index partition to query.
#[derive(Debug, Clone, Copy)]
struct Partition<'a> {
    table: &'a str,
    index: &'a str,
    hash_attr: &'a str,
    hash_value: &'a str,
}

/// All four stores over one DynamoDB client.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

impl DynamoStore {
    /// Wraps a client built once at cold start.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    /// The table names in use.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

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
    ) -> StoreResult<(Vec<Item>, bool)> {
        let partition = Partition { table, index, hash_attr, hash_value };
        self.query_range_page(&partition, None, false, start, limit).await
    }

    /// [`Self::query_page`] in either direction, optionally bounded by a sort key condition
    /// `(attribute, operator, value)`, e.g. `("seq", "<", bound)`.
    async fn query_range_page(
        &self,
        partition: &Partition<'_>,
        range: Option<(&str, &str, &str)>,
        forward: bool,
        start: Option<Item>,
        limit: u32,
    ) -> StoreResult<(Vec<Item>, bool)> {
        let Partition { table, index, hash_attr, hash_value } = *partition;
        let condition = match range {
            None => "#h = :h".to_owned(),
            Some((_, op, _)) => format!("#h = :h AND #r {op} :r"),
        };
        let mut names = std::collections::HashMap::from([("#h".to_owned(), hash_attr.to_owned())]);
        let mut values = std::collections::HashMap::from([(":h".to_owned(), s(hash_value))]);
        if let Some((attr, _, value)) = range {
            names.insert("#r".to_owned(), attr.to_owned());
            values.insert(":r".to_owned(), s(value));
        }
        let want = limit as usize + 1;
        let mut items = Vec::with_capacity(want);
        let mut start = start;
        loop {
            let remaining = i32::try_from(want - items.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(table)
                .index_name(index)
                .key_condition_expression(&condition)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(forward)
                .limit(remaining)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::aws("Query", e))?;
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

/// Builds the DynamoDB client from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` for moto; see [`crate::aws`]), once at cold start.
///
/// # Panics
/// When a variable is missing, with the message naming it: the cold start fails.
pub async fn client_from_env() -> Client {
    Client::new(&crate::aws::sdk_config().unwrap_or_else(|e| panic!("{e}")))
}
