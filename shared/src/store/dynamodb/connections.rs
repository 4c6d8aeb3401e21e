//! Live WebSocket connections: one item per connection, paged by Scan for the fan-out.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, rfc3339, s, to_item};
use super::DynamoStore;
use crate::store::{Connection, ConnectionStore, StoreError};

/// A connection as stored.
#[derive(Serialize, Deserialize)]
struct ConnectionItem {
    connection_id: String,
    #[serde(with = "rfc3339")]
    connected_at: DateTime<Utc>,
    /// DynamoDB TTL, in seconds since the epoch.
    expires_at: i64,
}

/// The table's key: what a Scan projects and pages by.
#[derive(Serialize, Deserialize)]
struct ConnectionKey {
    connection_id: String,
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn add(&self, c: &Connection) -> Result<(), StoreError> {
        let item = ConnectionItem {
            connection_id: c.id.clone(),
            connected_at: c.connected_at,
            expires_at: c.expires_at.timestamp(),
        };
        self.client
            .put_item()
            .table_name(&self.tables.connections)
            .set_item(Some(to_item(&item)?))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", e))?;
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection_id))
            .send()
            .await
            .map_err(|e| StoreError::aws("DeleteItem", e))?;
        Ok(())
    }

    async fn page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let start =
            after.map(|a| to_item(&ConnectionKey { connection_id: a.to_owned() })).transpose()?;
        // The whole table is the fan-out set, so a paged Scan is the right read here.
        let out = self
            .client
            .scan()
            .table_name(&self.tables.connections)
            .projection_expression("connection_id")
            .consistent_read(true)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Scan", e))?;
        let key =
            |item| from_item::<ConnectionKey>(item, "connection item").map(|k| k.connection_id);
        let ids = out.items.unwrap_or_default().into_iter().map(key).collect::<Result<_, _>>()?;
        let next = out.last_evaluated_key.map(key).transpose()?;
        Ok((ids, next))
    }
}
