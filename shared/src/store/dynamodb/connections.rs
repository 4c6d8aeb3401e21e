//! Live WebSocket connections: one item per connection, paged by Scan for the fan-out; the
//! `by-key` index finds one API key's connections (its limit, and closing them on revocation).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, rfc3339, s, to_item};
use super::DynamoStore;
use crate::store::{
    schema::CONNECTIONS_BY_KEY, Connection, ConnectionOwner, ConnectionStore, Recipient, StoreError,
};

/// A connection as stored.
#[derive(Serialize, Deserialize)]
struct ConnectionItem {
    connection_id: String,
    #[serde(with = "rfc3339")]
    connected_at: DateTime<Utc>,
    /// DynamoDB TTL, in seconds since the epoch.
    expires_at: i64,
    /// The API key's public id (partition of `by-key`); absent for unowned connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    /// The key's queue rights, as the authorizer's context carries them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queues: Option<String>,
}

/// What the push reads of a connection.
#[derive(Deserialize)]
struct RecipientItem {
    connection_id: String,
    #[serde(default)]
    queues: Option<String>,
}

/// The table's key: what a Scan projects and pages by.
#[derive(Serialize, Deserialize)]
struct ConnectionKey {
    connection_id: String,
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn add(&self, c: &Connection) -> Result<(), StoreError> {
        self.put_connection(c, None).await
    }

    async fn add_owned(&self, c: &Connection, owner: &ConnectionOwner) -> Result<(), StoreError> {
        self.put_connection(c, Some(owner)).await
    }

    async fn ids_for_key(&self, key_id: &str) -> Result<Vec<String>, StoreError> {
        // One key's connections are bounded by its limit, so a few pages at most.
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.connections)
                .index_name(CONNECTIONS_BY_KEY)
                .key_condition_expression("key_id = :k")
                .expression_attribute_values(":k", s(key_id))
                .projection_expression("connection_id")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::aws("Query", e))?;
            for item in out.items.unwrap_or_default() {
                ids.push(from_item::<ConnectionKey>(item, "connection item")?.connection_id);
            }
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(ids),
            }
        }
    }

    async fn recipients(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Recipient>, Option<String>), StoreError> {
        let start =
            after.map(|a| to_item(&ConnectionKey { connection_id: a.to_owned() })).transpose()?;
        // The whole table is the fan-out set, so a paged Scan is the right read here.
        let out = self
            .client
            .scan()
            .table_name(&self.tables.connections)
            .projection_expression("connection_id, queues")
            .consistent_read(true)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Scan", e))?;
        let recipients = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                from_item::<RecipientItem>(item, "connection item")
                    .map(|r| Recipient { id: r.connection_id, queues: r.queues })
            })
            .collect::<Result<_, _>>()?;
        let next = out
            .last_evaluated_key
            .map(|k| from_item::<ConnectionKey>(k, "connection item").map(|k| k.connection_id))
            .transpose()?;
        Ok((recipients, next))
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
        let (recipients, next) = self.recipients(after, limit).await?;
        Ok((recipients.into_iter().map(|r| r.id).collect(), next))
    }
}

impl DynamoStore {
    async fn put_connection(
        &self,
        c: &Connection,
        owner: Option<&ConnectionOwner>,
    ) -> Result<(), StoreError> {
        let item = ConnectionItem {
            connection_id: c.id.clone(),
            connected_at: c.connected_at,
            expires_at: c.expires_at.timestamp(),
            key_id: owner.map(|o| o.key_id.clone()),
            queues: owner.map(|o| o.queues.clone()),
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
}
