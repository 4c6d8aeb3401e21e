//! Notification records: the item shape (the pushed JSON kept verbatim) and the feed's
//! paging through the `by-feed` and `by-type` indexes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, get_item, rfc3339, s, to_item, Read};
use super::{DynamoStore, Item, Partition};
use crate::store::{
    cursor::{self, NotificationCursor},
    schema, CursorError, FeedSpan, Page, PageRequest, StoreError, StoreResult,
};
use crate::{feed::Position, model::Notification};

/// Partition value of the notifications `by-feed` index.
const NOTIFICATION_FEED: &str = "notification";

/// A notification as stored.
#[derive(Serialize, Deserialize)]
struct NotificationItem {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    ticket_id: u64,
    #[serde(with = "rfc3339")]
    created_at: DateTime<Utc>,
    /// Partition of the `by-feed` index.
    feed: String,
    /// Sort key of the `by-feed` index.
    seq: String,
    /// The JSON pushed to clients, verbatim.
    payload: String,
}

/// The feed's position of a stored notification: what a cursor carries and, with the index
/// partition's attribute, the exclusive start key of the next Query.
#[derive(Serialize, Deserialize)]
struct FeedKey {
    id: String,
    seq: String,
}

/// The item a notification is stored as (public so benchmarks can seed tables in bulk).
/// The JSON pushed to clients is stored verbatim in `payload`, so the stream handler
/// sends exactly what `GET /notifications` returns.
pub fn notification_item(note: &Notification) -> StoreResult<Item> {
    let payload = serde_json::to_string(note)
        .map_err(|e| StoreError::Corrupt(format!("cannot serialise notification: {e}")))?;
    to_item(&NotificationItem {
        id: note.id.clone(),
        kind: note.kind.clone(),
        ticket_id: note.ticket.id,
        created_at: note.created_at,
        feed: NOTIFICATION_FEED.into(),
        // Creation time, then id, so equal times stay ordered.
        seq: Position::of(note).seq(),
        payload,
    })
}

/// Reads a notification back from its `payload` attribute.
pub fn notification_from_payload(payload: &str) -> StoreResult<Notification> {
    serde_json::from_str(payload)
        .map_err(|e| StoreError::Corrupt(format!("notification payload: {e}")))
}

impl DynamoStore {
    /// One page of the notifications feed (of one type, when given), newest first.
    pub(super) async fn notifications_page(
        &self,
        kind: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>> {
        // The cursor's scope names the partition, so a cursor of one feed cannot page another.
        let (scope, index, hash_attr, hash_value) = match kind {
            None => (
                "notifications".to_owned(),
                schema::NOTIFICATIONS_BY_FEED,
                "feed",
                NOTIFICATION_FEED,
            ),
            Some(kind) => {
                (format!("notifications|type|{kind}"), schema::NOTIFICATIONS_BY_TYPE, "type", kind)
            }
        };
        let scope = scope.as_str();
        let start = match &page.cursor {
            None => None,
            Some(c) => {
                let key: NotificationCursor =
                    cursor::decode(scope, c).map_err(StoreError::BadCursor)?;
                let mut start = to_item(&FeedKey { id: key.id, seq: key.seq })?;
                start.insert(hash_attr.into(), super::item::s(hash_value));
                Some(start)
            }
        };
        let (items, more) = self
            .query_page(&self.tables.notifications, index, hash_attr, hash_value, start, page.limit)
            .await?;
        feed_page(scope, items, more)
    }

    /// The stored `seq` of notification `id`, read consistently.
    pub(super) async fn notification_seq(&self, id: &str) -> StoreResult<Option<Position>> {
        let table = &self.tables.notifications;
        let read = get_item(&self.client, table, ("id", s(id)), Read::ConsistentOnly("seq"));
        let Some(item) = read.await? else { return Ok(None) };
        let stored: SeqOnly = from_item(item, "notification item")?;
        Position::parse_seq(&stored.seq)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("notification {id} has a malformed seq")))
    }

    /// The position of the newest notification created at or before `until_millis`.
    pub(super) async fn newest_notification_until(
        &self,
        until_millis: i64,
    ) -> StoreResult<Option<Position>> {
        let bound = seq_bound(until_millis);
        let (items, _) = self
            .query_range_page(&self.feed_partition(), Some(("seq", "<", &bound)), false, None, 1)
            .await?;
        let Some(item) = items.into_iter().next() else { return Ok(None) };
        let stored: SeqOnly = from_item(item, "notification item")?;
        Position::parse_seq(&stored.seq)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt("a notification has a malformed seq".into()))
    }

    /// The `by-feed` index's one partition.
    fn feed_partition(&self) -> Partition<'_> {
        Partition {
            table: &self.tables.notifications,
            index: schema::NOTIFICATIONS_BY_FEED,
            hash_attr: "feed",
            hash_value: NOTIFICATION_FEED,
        }
    }

    /// One page of the feed in `span`, oldest first.
    pub(super) async fn notifications_after(
        &self,
        span: &FeedSpan,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>> {
        let scope = "notifications-since";
        let from = match &page.cursor {
            None => span.after.clone(),
            Some(c) => {
                let key: NotificationCursor =
                    cursor::decode(scope, c).map_err(StoreError::BadCursor)?;
                Position::parse_seq(&key.seq)
                    .ok_or(StoreError::BadCursor(CursorError::BadCursor))?
            }
        };
        let mut start = to_item(&FeedKey { id: from.id.clone(), seq: from.seq() })?;
        start.insert("feed".into(), s(NOTIFICATION_FEED));
        let bound = seq_bound(span.until_millis);
        let (items, more) = self
            .query_range_page(
                &self.feed_partition(),
                Some(("seq", "<", &bound)),
                true,
                Some(start),
                page.limit,
            )
            .await?;
        feed_page(scope, items, more)
    }
}

/// Every seq created at or before `until_millis` sorts below this: "{until + 1}#".
fn seq_bound(until_millis: i64) -> String {
    format!("{:013}#", until_millis.saturating_add(1))
}

/// Only the `seq` of a notification item.
#[derive(Deserialize)]
struct SeqOnly {
    seq: String,
}

/// Notification items as a page whose cursor (in `scope`) continues after the last one.
fn feed_page(scope: &str, items: Vec<Item>, more: bool) -> StoreResult<Page<Notification>> {
    let mut notes = Vec::with_capacity(items.len());
    let mut last_key = None;
    for item in items {
        let stored: NotificationItem = from_item(item, "notification item")?;
        notes.push(notification_from_payload(&stored.payload)?);
        last_key = Some(NotificationCursor { seq: stored.seq, id: stored.id });
    }
    let next_cursor = last_key.filter(|_| more).map(|k| cursor::encode(scope, &k));
    Ok(Page { items: notes, next_cursor })
}
