//! Live WebSocket connections: one base item per connection (its owner, subscription and
//! resume state), plus one channel item per channel it is on (`<id>#q#<channel>`, see
//! [`crate::store::channels_of`]) that the push reads through the `by-channel` index. The
//! base item lists its channels and carries a revision (`rev`); every write that changes
//! which channel items exist or what they project reads the base item, then writes base and
//! channel items in ONE transaction conditional on that revision, so they never disagree.
//! The `by-key` index finds one API key's connections (its limit, and closing them on
//! revocation).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use aws_sdk_dynamodb::{
    operation::query::builders::QueryFluentBuilder,
    types::{
        AttributeValue, Delete, Put, PutRequest, Select, TransactWriteItem, Update, WriteRequest,
    },
};

use super::item::{from_item, get_item, n, rfc3339, s, to_item, transact, Read, UpdateIf};
use super::{DynamoStore, Item};
use crate::store::{
    channels_of,
    schema::{CONNECTIONS_BY_CHANNEL, CONNECTIONS_BY_KEY},
    Connection, ConnectionOwner, ConnectionStore, FeedMark, PageAfter, Recipient, ResumeRecord,
    Resuming, StoreError, StoreResult, TokenPage,
};

/// `feed_state` of a connection being replayed to (absent or `live`: live).
const REPLAYING: &str = "replaying";

/// Separates a connection id from a channel in a channel item's key (connection ids have
/// no `#`, so the first one ends the id).
const CHANNEL_SEP: &str = "#q#";
/// Attempts of a revision-checked write before it gives up (each lost one re-reads).
const WRITE_ATTEMPTS: usize = 5;

/// A connection's base item as stored.
#[derive(Clone, Serialize, Deserialize)]
struct ConnectionItem {
    connection_id: String,
    #[serde(with = "rfc3339")]
    connected_at: DateTime<Utc>,
    /// DynamoDB TTL, in seconds since the epoch.
    expires_at: i64,
    /// The API key's public id (partition of `by-key`); absent for unowned connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    /// What the push reads of it (copied to its channel items).
    #[serde(flatten)]
    feed: FeedView,
    /// The id the client resumes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// Its position (absent with `since`: expired, the client gets `resync`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replay_from: Option<String>,
    /// The channels it has a channel item on (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    channels: Vec<String>,
    /// Bumped by every write that changes its channel items; those writes are conditional
    /// on it (absent on items written before the index: read as 0).
    #[serde(default)]
    rev: u64,
}

impl ConnectionItem {
    /// Its channels as [`channels_of`] derives them from its rights and filter.
    fn with_channels(mut self) -> Self {
        self.channels = channels_of(self.feed.queues.as_deref(), self.feed.feed_filter.as_deref())
            .into_iter()
            .collect();
        self
    }

    /// Its channel items: what the push needs of it, once per channel.
    fn channel_items(&self) -> Vec<ChannelItem> {
        self.channels
            .iter()
            .map(|channel| ChannelItem {
                connection_id: channel_key(&self.connection_id, channel),
                channel: channel.clone(),
                member: self.connection_id.clone(),
                expires_at: self.expires_at,
                feed: self.feed.clone(),
            })
            .collect()
    }
}

/// The key of connection `id`'s item on `channel`.
fn channel_key(id: &str, channel: &str) -> String {
    format!("{id}{CHANNEL_SEP}{channel}")
}

/// What the push reads of a connection: the same attributes on its base item and on its
/// channel items.
#[derive(Clone, Default, Serialize, Deserialize)]
struct FeedView {
    /// The key's queue rights, as the authorizer's context carries them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queues: Option<String>,
    /// The resume protocol: `replaying` or `live` (absent: live from the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feed_state: Option<String>,
    /// Live after a resume: only positions after this one are posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    live_after: Option<String>,
    /// The subscription (a JSON `feed::Subscription`); absent: everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feed_filter: Option<String>,
}

impl FeedView {
    fn mark(&self) -> FeedMark {
        match (self.feed_state.as_deref(), self.live_after.as_deref()) {
            (Some(REPLAYING), _) => FeedMark::Replaying,
            (_, Some(after)) => FeedMark::LiveAfter(after.to_owned()),
            _ => FeedMark::Live,
        }
    }

    /// Connection `id` as the push sees it.
    fn recipient(self, id: String) -> Recipient {
        Recipient { mark: self.mark(), id, queues: self.queues, filter: self.feed_filter }
    }
}

/// A connection's item on one channel (partition of `by-channel`): a copy of what the push
/// reads of the base item, written with it.
#[derive(Serialize, Deserialize)]
struct ChannelItem {
    /// `<id>#q#<channel>`.
    connection_id: String,
    channel: String,
    /// The connection id.
    member: String,
    /// The base item's TTL.
    expires_at: i64,
    #[serde(flatten)]
    feed: FeedView,
}

/// What the whole-table read ([`ConnectionStore::recipients`]) reads of a base item.
#[derive(Deserialize)]
struct RecipientItem {
    connection_id: String,
    #[serde(flatten)]
    feed: FeedView,
}

/// The recipients a page of `T` items (`what` names them in errors) stands for, each
/// read by `recipient`.
fn recipients_of<T: serde::de::DeserializeOwned>(
    items: Option<Vec<Item>>,
    what: &str,
    recipient: fn(T) -> Recipient,
) -> StoreResult<Vec<Recipient>> {
    items.unwrap_or_default().into_iter().map(|i| from_item(i, what).map(recipient)).collect()
}

/// The table's key: what a Scan projects and pages by.
#[derive(Serialize, Deserialize)]
struct ConnectionKey {
    connection_id: String,
}

/// A change to a base item's own attributes, made with its channel items by
/// [`DynamoStore::rewrite`].
#[derive(Default)]
struct BaseChange {
    set: Vec<(&'static str, AttributeValue)>,
    remove: Vec<&'static str>,
    /// A further condition (over `:`-values given in `values`).
    condition: Option<&'static str>,
    values: Vec<(&'static str, AttributeValue)>,
}

impl BaseChange {
    /// Sets `name` to `value` when `Some`, removes it when `None`.
    fn set_or_remove(mut self, name: &'static str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.set.push((name, s(v))),
            None => self.remove.push(name),
        }
        self
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn add(&self, c: &Connection) -> StoreResult<()> {
        self.put_connection(connection_item(c, None)).await
    }

    async fn add_owned(&self, c: &Connection, owner: &ConnectionOwner) -> StoreResult<()> {
        self.put_connection(connection_item(c, Some(owner))).await
    }

    async fn add_resuming(&self, c: &Connection, resume: Resuming<'_>) -> StoreResult<()> {
        let mut item = connection_item(c, resume.owner);
        item.feed.feed_state = Some(REPLAYING.into());
        item.since = Some(resume.since.to_owned());
        item.replay_from = resume.replay_from.map(str::to_owned);
        self.put_connection(item).await
    }

    async fn resume_record(&self, connection_id: &str) -> StoreResult<Option<ResumeRecord>> {
        let Some((item, _)) = self.connection_item(connection_id).await? else { return Ok(None) };
        let mark = item.feed.mark();
        Ok(item.since.map(|since| ResumeRecord {
            connected_at: item.connected_at,
            queues: item.feed.queues,
            since,
            replay_from: item.replay_from,
            mark,
            filter: item.feed.feed_filter,
        }))
    }

    async fn hold(&self, connection_id: &str, seqs: &[String]) -> StoreResult<bool> {
        if seqs.is_empty() {
            return Ok(true);
        }
        // Only the base item: holding changes nothing the channel items project.
        let values = vec![(":seq", AttributeValue::Ss(seqs.to_vec()))];
        let held = self.while_replaying(connection_id, "ADD held_seqs :seq", values);
        Ok(held.run(&self.client).await?.is_some())
    }

    async fn take_held(&self, connection_id: &str) -> StoreResult<Vec<String>> {
        let take = self.while_replaying(connection_id, "REMOVE held_seqs", Vec::new());
        Ok(match take.run_for_old(&self.client).await?.and_then(|mut a| a.remove("held_seqs")) {
            Some(AttributeValue::Ss(seqs)) => seqs,
            _ => Vec::new(),
        })
    }

    async fn go_live(&self, connection_id: &str, live_after: Option<&str>) -> StoreResult<bool> {
        for _ in 0..WRITE_ATTEMPTS {
            let Some((before, holding)) = self.connection_item(connection_id).await? else {
                return Ok(false);
            };
            if before.feed.feed_state.as_deref() != Some(REPLAYING) || holding {
                return Ok(false);
            }
            let mut after = before.clone();
            after.feed.feed_state = Some("live".into());
            after.feed.live_after = live_after.map(str::to_owned);
            let change = BaseChange {
                set: vec![("feed_state", s("live"))],
                condition: Some("feed_state = :replaying AND attribute_not_exists(held_seqs)"),
                values: vec![(":replaying", s(REPLAYING))],
                ..BaseChange::default()
            }
            .set_or_remove("live_after", live_after);
            // Lost: the push held more, or the item changed; the next read tells which.
            if self.rewrite(&before, &after, change).await? {
                return Ok(true);
            }
        }
        Err(StoreError::Conflict(format!("connection {connection_id} kept changing")))
    }

    async fn count_for_key(&self, key_id: &str) -> StoreResult<usize> {
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

    async fn ids_for_key(&self, key_id: &str) -> StoreResult<Vec<String>> {
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

    async fn audience(&self, channel: &str, page: &PageAfter) -> StoreResult<TokenPage<Recipient>> {
        let start = page.after.as_ref().map(|a| {
            Item::from([
                ("connection_id".to_owned(), s(channel_key(a, channel))),
                ("channel".to_owned(), s(channel)),
            ])
        });
        // The index is eventually consistent (docs/ARCHITECTURE.md, "Connections").
        let out = self
            .client
            .query()
            .table_name(&self.tables.connections)
            .index_name(CONNECTIONS_BY_CHANNEL)
            .key_condition_expression("#channel = :c")
            .expression_attribute_names("#channel", "channel")
            .expression_attribute_values(":c", s(channel))
            .limit(i32::try_from(page.limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", e))?;
        let recipients =
            recipients_of(out.items, "channel item", |c: ChannelItem| c.feed.recipient(c.member))?;
        let next = out
            .last_evaluated_key
            .map(|k| {
                let key = from_item::<ConnectionKey>(k, "channel item")?.connection_id;
                key.split_once(CHANNEL_SEP)
                    .map(|(id, _)| id.to_owned())
                    .ok_or_else(|| StoreError::Corrupt(format!("channel item key {key}")))
            })
            .transpose()?;
        Ok((recipients, next))
    }

    async fn recipients(&self, page: &PageAfter) -> StoreResult<TokenPage<Recipient>> {
        let start = page
            .after
            .as_ref()
            .map(|a| to_item(&ConnectionKey { connection_id: a.clone() }))
            .transpose()?;
        // Every base item (not the channel items): for tests and tools; the push reads
        // `audience`. A page may come back short (the filter runs after the limit).
        let out = self
            .client
            .scan()
            .table_name(&self.tables.connections)
            .projection_expression("connection_id, queues, feed_state, live_after, feed_filter")
            .filter_expression("attribute_not_exists(#channel)")
            .expression_attribute_names("#channel", "channel")
            .consistent_read(true)
            .limit(i32::try_from(page.limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Scan", e))?;
        let recipients = recipients_of(out.items, "connection item", |r: RecipientItem| {
            r.feed.recipient(r.connection_id)
        })?;
        let next = out
            .last_evaluated_key
            .map(|k| from_item::<ConnectionKey>(k, "connection item").map(|k| k.connection_id))
            .transpose()?;
        Ok((recipients, next))
    }

    async fn subscribe(&self, connection_id: &str, filter: Option<&str>) -> StoreResult<bool> {
        for _ in 0..WRITE_ATTEMPTS {
            let Some((before, _)) = self.connection_item(connection_id).await? else {
                return Ok(false);
            };
            let mut after = before.clone();
            after.feed.feed_filter = filter.map(str::to_owned);
            let after = after.with_channels();
            let change = BaseChange::default().set_or_remove("feed_filter", filter);
            if self.rewrite(&before, &after, change).await? {
                return Ok(true);
            }
        }
        Err(StoreError::Conflict(format!("connection {connection_id} kept changing")))
    }

    async fn remove(&self, connection_id: &str) -> StoreResult<()> {
        for _ in 0..WRITE_ATTEMPTS {
            let Some((before, _)) = self.connection_item(connection_id).await? else {
                return Ok(());
            };
            let table = &self.tables.connections;
            let base = Delete::builder()
                .table_name(table)
                .key("connection_id", s(connection_id))
                .condition_expression(rev_unchanged(before.rev))
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_values(":rev", n(before.rev))
                .build()
                .map_err(build_err)?;
            let base = TransactWriteItem::builder().delete(base).build();
            match self.delete_with_channels(base, connection_id, &before.channels).await {
                Ok(()) => return Ok(()),
                // Changed since the read (a subscription): read it again.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(format!("connection {connection_id} kept changing")))
    }

    async fn page(&self, page: &PageAfter) -> StoreResult<TokenPage<String>> {
        let (recipients, next) = self.recipients(page).await?;
        Ok((recipients.into_iter().map(|r| r.id).collect(), next))
    }
}

/// The condition of a revision-checked write: the base item is still at revision `rev`
/// (`:rev`; an item from before revisions has none and reads as 0).
fn rev_unchanged(rev: u64) -> &'static str {
    if rev == 0 {
        "(attribute_not_exists(#rev) OR #rev = :rev)"
    } else {
        "#rev = :rev"
    }
}

/// A conditional update's outcome: `false` when the condition failed.
fn connection_item(c: &Connection, owner: Option<&ConnectionOwner>) -> ConnectionItem {
    ConnectionItem {
        connection_id: c.id.clone(),
        connected_at: c.connected_at,
        expires_at: c.expires_at.timestamp(),
        key_id: owner.map(|o| o.key_id.clone()),
        feed: FeedView { queues: owner.map(|o| o.queues.clone()), ..FeedView::default() },
        since: None,
        replay_from: None,
        channels: Vec::new(),
        rev: 0,
    }
    .with_channels()
}

fn build_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::aws("build request", e)
}

fn put(table: &str, item: Item) -> StoreResult<TransactWriteItem> {
    let put = Put::builder().table_name(table).set_item(Some(item)).build().map_err(build_err)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn delete(table: &str, key: &str) -> StoreResult<TransactWriteItem> {
    let delete = Delete::builder()
        .table_name(table)
        .key("connection_id", s(key))
        .build()
        .map_err(build_err)?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

impl DynamoStore {
    /// An update of connection `id`'s base item (over `values` and `:replaying`) that
    /// applies only while it is replaying.
    fn while_replaying<'a>(
        &'a self,
        id: &str,
        update: &'a str,
        mut values: Vec<(&'a str, AttributeValue)>,
    ) -> UpdateIf<'a> {
        values.push((":replaying", s(REPLAYING)));
        let (table, key) = (&self.tables.connections, ("connection_id", s(id)));
        UpdateIf { table, key, update, condition: "feed_state = :replaying", names: &[], values }
    }

    /// A Query of the `by-key` index for `key_id`'s connections.
    fn by_key(&self, key_id: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.tables.connections)
            .index_name(CONNECTIONS_BY_KEY)
            .key_condition_expression("key_id = :k")
            .expression_attribute_values(":k", s(key_id))
    }

    /// Writes a new connection: its base item and its channel items in one BatchWriteItem
    /// (at most 41 items: two requests of 25). Not a transaction: a new connection has no
    /// revision to keep, and moto copies the whole table per transaction item, which made
    /// 2,000 `$connect`s quadratic. Items a batch leaves unprocessed are sent again; when
    /// that fails, what was written is deleted (TTL takes what that cannot).
    async fn put_connection(&self, item: ConnectionItem) -> StoreResult<()> {
        let table = &self.tables.connections;
        let mut items = vec![to_item(&item)?];
        for channel_item in item.channel_items() {
            items.push(to_item(&channel_item)?);
        }
        let written = self.put_all(table, items).await;
        if written.is_err() {
            let id = &item.connection_id;
            let cleanup =
                async { self.delete_with_channels(delete(table, id)?, id, &item.channels).await };
            if let Err(cleanup) = cleanup.await {
                tracing::warn!(connection_id = %item.connection_id, error = %cleanup, "could not remove a half-written connection");
            }
        }
        written
    }

    async fn put_all(&self, table: &str, items: Vec<Item>) -> StoreResult<()> {
        for chunk in items.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|i| {
                    let put = PutRequest::builder().set_item(Some(i.clone())).build();
                    put.map(|p| WriteRequest::builder().put_request(p).build())
                })
                .collect::<Result<_, _>>()
                .map_err(build_err)?;
            for attempt in 0..WRITE_ATTEMPTS {
                if attempt > 0 {
                    // DynamoDB leaves items unprocessed when throttled: back off a little.
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("BatchWriteItem", e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut left| left.remove(table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
            }
            if !requests.is_empty() {
                // Throttled to the end: an AWS failure, not a lost condition.
                let why = format!("{} items left unprocessed", requests.len());
                return Err(StoreError::Aws { op: "BatchWriteItem", source: why.into() });
            }
        }
        Ok(())
    }

    /// Deletes connection `id`'s base item (`base`, with whatever condition it carries) and
    /// its items on `channels`, in one transaction.
    async fn delete_with_channels(
        &self,
        base: TransactWriteItem,
        id: &str,
        channels: &[String],
    ) -> StoreResult<()> {
        let table = &self.tables.connections;
        let mut req = self.client.transact_write_items().transact_items(base);
        for channel in channels {
            req = req.transact_items(delete(table, &channel_key(id, channel))?);
        }
        transact(req).await
    }

    /// The base item (strongly consistent) and whether it holds positions for a resume.
    async fn connection_item(
        &self,
        connection_id: &str,
    ) -> StoreResult<Option<(ConnectionItem, bool)>> {
        let key = ("connection_id", s(connection_id));
        let Some(item) =
            get_item(&self.client, &self.tables.connections, key, Read::Consistent).await?
        else {
            return Ok(None);
        };
        let holding = item.contains_key("held_seqs");
        Ok(Some((from_item(item, "connection item")?, holding)))
    }

    /// Applies `change` to the base item read as `before` and replaces its channel items by
    /// `after`'s (which is `before` with the change applied), in one transaction that holds
    /// only while the base item is still at `before`'s revision (and `change`'s condition
    /// holds); `false` when it was not.
    async fn rewrite(
        &self,
        before: &ConnectionItem,
        after: &ConnectionItem,
        change: BaseChange,
    ) -> StoreResult<bool> {
        let table = &self.tables.connections;
        let mut sets = vec!["#rev = :next".to_owned()];
        let mut removes = Vec::new();
        let mut update = Update::builder()
            .table_name(table)
            .key("connection_id", s(&before.connection_id))
            .expression_attribute_names("#rev", "rev")
            .expression_attribute_names("#channels", "channels")
            .expression_attribute_values(":rev", n(before.rev))
            .expression_attribute_values(":next", n(before.rev + 1));
        for (i, (name, value)) in change.set.into_iter().enumerate() {
            sets.push(format!("#s{i} = :s{i}"));
            update = update
                .expression_attribute_names(format!("#s{i}"), name)
                .expression_attribute_values(format!(":s{i}"), value);
        }
        for (i, name) in change.remove.into_iter().enumerate() {
            removes.push(format!("#r{i}"));
            update = update.expression_attribute_names(format!("#r{i}"), name);
        }
        if after.channels.is_empty() {
            removes.push("#channels".to_owned());
        } else {
            sets.push("#channels = :channels".to_owned());
            let channels = after.channels.iter().map(|c| s(c.as_str())).collect();
            update = update.expression_attribute_values(":channels", AttributeValue::L(channels));
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let rev = rev_unchanged(before.rev);
        let condition = match change.condition {
            Some(c) => format!("attribute_exists(connection_id) AND {rev} AND {c}"),
            None => format!("attribute_exists(connection_id) AND {rev}"),
        };
        for (placeholder, value) in change.values {
            update = update.expression_attribute_values(placeholder, value);
        }
        let update = update
            .update_expression(expression)
            .condition_expression(condition)
            .build()
            .map_err(build_err)?;
        let mut req = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build());
        for gone in before.channels.iter().filter(|c| !after.channels.contains(c)) {
            req = req.transact_items(delete(table, &channel_key(&before.connection_id, gone))?);
        }
        for channel_item in after.channel_items() {
            req = req.transact_items(put(table, to_item(&channel_item)?)?);
        }
        match transact(req).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
