//! Live WebSocket connections: one item per connection, paged by Scan for the fan-out; the
//! `by-key` index finds one API key's connections (its limit, and closing them on revocation).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use aws_sdk_dynamodb::{
    operation::query::builders::QueryFluentBuilder,
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue, Select},
};

use super::item::{condition_failed, from_item, rfc3339, s, to_item};
use super::DynamoStore;
use crate::store::{
    schema::CONNECTIONS_BY_KEY, Connection, ConnectionOwner, ConnectionStore, FeedMark, Recipient,
    ResumeRecord, StoreError,
};

/// `feed_state` of a connection being replayed to (absent or `live`: live).
const REPLAYING: &str = "replaying";

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
    /// The resume protocol: `replaying` or `live` (absent: live from the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feed_state: Option<String>,
    /// The id the client resumes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// Its position (absent with `since`: expired, the client gets `resync`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replay_from: Option<String>,
    /// Live after a resume: only positions after this one are posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    live_after: Option<String>,
    /// The subscription (a JSON `feed::Subscription`); absent: everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feed_filter: Option<String>,
}

impl ConnectionItem {
    fn mark(&self) -> FeedMark {
        mark_of(self.feed_state.as_deref(), self.live_after.as_deref())
    }
}

fn mark_of(state: Option<&str>, live_after: Option<&str>) -> FeedMark {
    match (state, live_after) {
        (Some(REPLAYING), _) => FeedMark::Replaying,
        (_, Some(after)) => FeedMark::LiveAfter(after.to_owned()),
        _ => FeedMark::Live,
    }
}

/// What the push reads of a connection.
#[derive(Deserialize)]
struct RecipientItem {
    connection_id: String,
    #[serde(default)]
    queues: Option<String>,
    #[serde(default)]
    feed_state: Option<String>,
    #[serde(default)]
    live_after: Option<String>,
    #[serde(default)]
    feed_filter: Option<String>,
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

    async fn add_resuming(
        &self,
        c: &Connection,
        owner: Option<&ConnectionOwner>,
        since: &str,
        replay_from: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut item = connection_item(c, owner);
        item.feed_state = Some(REPLAYING.into());
        item.since = Some(since.to_owned());
        item.replay_from = replay_from.map(str::to_owned);
        self.put_item(&item).await
    }

    async fn resume_record(&self, connection_id: &str) -> Result<Option<ResumeRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        let Some(item) = out.item else { return Ok(None) };
        let item: ConnectionItem = from_item(item, "connection item")?;
        let mark = item.mark();
        Ok(item.since.map(|since| ResumeRecord {
            connected_at: item.connected_at,
            queues: item.queues,
            since,
            replay_from: item.replay_from,
            mark,
            filter: item.feed_filter,
        }))
    }

    async fn hold(&self, connection_id: &str, seqs: &[String]) -> Result<bool, StoreError> {
        if seqs.is_empty() {
            return Ok(true);
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection_id))
            .update_expression("ADD held_seqs :seq")
            .condition_expression("feed_state = :replaying")
            .expression_attribute_values(":seq", AttributeValue::Ss(seqs.to_vec()))
            .expression_attribute_values(":replaying", s(REPLAYING))
            .send()
            .await;
        conditional(out.map(|_| ()))
    }

    async fn take_held(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection_id))
            .update_expression("REMOVE held_seqs")
            .condition_expression("feed_state = :replaying")
            .expression_attribute_values(":replaying", s(REPLAYING))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        let held = out.map(|out| match out.attributes.and_then(|mut a| a.remove("held_seqs")) {
            Some(AttributeValue::Ss(seqs)) => seqs,
            _ => Vec::new(),
        });
        match held {
            Ok(seqs) => Ok(seqs),
            Err(e)
                if condition_failed(&e, UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(StoreError::aws("UpdateItem", e)),
        }
    }

    async fn go_live(
        &self,
        connection_id: &str,
        live_after: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection_id))
            .condition_expression("feed_state = :replaying AND attribute_not_exists(held_seqs)")
            .expression_attribute_values(":replaying", s(REPLAYING))
            .expression_attribute_values(":live", s("live"));
        update = match live_after {
            Some(after) => update
                .update_expression("SET feed_state = :live, live_after = :after")
                .expression_attribute_values(":after", s(after)),
            None => update.update_expression("SET feed_state = :live"),
        };
        conditional(update.send().await.map(|_| ()))
    }

    async fn count_for_key(&self, key_id: &str) -> Result<usize, StoreError> {
        // `$connect` asks on every handshake: only the count comes back, no item. (Reading
        // every id made each handshake cost the key's whole list, so a key's handshakes got
        // slower as it filled; on moto under load past ~700 connections of one key, answers
        // took over the SDK's 5 s stall limit and `$connect` answered 500.)
        let mut count = 0;
        let mut start = None;
        loop {
            let out = self
                .by_key(key_id)
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::aws("Query", e))?;
            count += usize::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(count),
            }
        }
    }

    async fn ids_for_key(&self, key_id: &str) -> Result<Vec<String>, StoreError> {
        // One key's connections are bounded by its limit, so a few pages at most.
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .by_key(key_id)
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
            .projection_expression("connection_id, queues, feed_state, live_after, feed_filter")
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
                from_item::<RecipientItem>(item, "connection item").map(|r| Recipient {
                    mark: mark_of(r.feed_state.as_deref(), r.live_after.as_deref()),
                    id: r.connection_id,
                    queues: r.queues,
                    filter: r.feed_filter,
                })
            })
            .collect::<Result<_, _>>()?;
        let next = out
            .last_evaluated_key
            .map(|k| from_item::<ConnectionKey>(k, "connection item").map(|k| k.connection_id))
            .transpose()?;
        Ok((recipients, next))
    }

    async fn subscribe(
        &self,
        connection_id: &str,
        filter: Option<&str>,
    ) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection_id))
            .condition_expression("attribute_exists(connection_id)");
        let update = match filter {
            Some(f) => update
                .update_expression("SET feed_filter = :f")
                .expression_attribute_values(":f", s(f)),
            None => update.update_expression("REMOVE feed_filter"),
        };
        conditional(update.send().await.map(|_| ()))
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

/// A conditional update's outcome: `false` when the condition failed.
fn conditional<R>(
    out: Result<(), aws_sdk_dynamodb::error::SdkError<UpdateItemError, R>>,
) -> Result<bool, StoreError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match out {
        Ok(()) => Ok(true),
        Err(e) if condition_failed(&e, UpdateItemError::is_conditional_check_failed_exception) => {
            Ok(false)
        }
        Err(e) => Err(StoreError::aws("UpdateItem", e)),
    }
}

fn connection_item(c: &Connection, owner: Option<&ConnectionOwner>) -> ConnectionItem {
    ConnectionItem {
        connection_id: c.id.clone(),
        connected_at: c.connected_at,
        expires_at: c.expires_at.timestamp(),
        key_id: owner.map(|o| o.key_id.clone()),
        queues: owner.map(|o| o.queues.clone()),
        feed_state: None,
        since: None,
        replay_from: None,
        live_after: None,
        feed_filter: None,
    }
}

impl DynamoStore {
    /// A Query of the `by-key` index for `key_id`'s connections.
    fn by_key(&self, key_id: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.tables.connections)
            .index_name(CONNECTIONS_BY_KEY)
            .key_condition_expression("key_id = :k")
            .expression_attribute_values(":k", s(key_id))
    }

    async fn put_connection(
        &self,
        c: &Connection,
        owner: Option<&ConnectionOwner>,
    ) -> Result<(), StoreError> {
        self.put_item(&connection_item(c, owner)).await
    }

    async fn put_item(&self, item: &ConnectionItem) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.connections)
            .set_item(Some(to_item(item)?))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", e))?;
        Ok(())
    }
}
