//! Live WebSocket connections: one item per connection, paged by Scan for the fan-out.

use async_trait::async_trait;

use super::{get_s, n, s, DynamoStore, Item};
use crate::store::{Connection, ConnectionStore, StoreError};

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn add(&self, c: &Connection) -> Result<(), StoreError> {
        self.timed(
            self.client
                .put_item()
                .table_name(&self.tables.connections)
                .item("connection_id", s(&c.id))
                .item("connected_at", s(c.connected_at.to_rfc3339()))
                .item("expires_at", n(c.expires_at.timestamp()))
                .send(),
        )
        .await
        .map_err(|e| StoreError::aws("PutItem", e))?;
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> Result<(), StoreError> {
        self.timed(
            self.client
                .delete_item()
                .table_name(&self.tables.connections)
                .key("connection_id", s(connection_id))
                .send(),
        )
        .await
        .map_err(|e| StoreError::aws("DeleteItem", e))?;
        Ok(())
    }

    async fn page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        // The whole table is the fan-out set, so a paged Scan is the right read here.
        let out = self
            .timed(
                self.client
                    .scan()
                    .table_name(&self.tables.connections)
                    .projection_expression("connection_id")
                    .consistent_read(true)
                    .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(
                        after.map(|a| Item::from([("connection_id".into(), s(a))])),
                    )
                    .send(),
            )
            .await
            .map_err(|e| StoreError::aws("Scan", e))?;
        let ids = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|i| get_s(i, "connection_id"))
            .collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key {
            Some(k) => Some(get_s(&k, "connection_id")?),
            None => None,
        };
        Ok((ids, next))
    }
}
