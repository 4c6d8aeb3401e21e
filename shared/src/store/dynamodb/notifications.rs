//! Notification records: the item shape (the pushed JSON kept verbatim) and the feed's
//! paging through the `by-feed` index.

use serde::{Deserialize, Serialize};

use super::{get_s, n, s, DynamoStore, Item};
use crate::model::Notification;
use crate::store::{cursor, schema, Page, PageRequest, StoreError};

/// Partition value of the notifications `by-feed` index.
const NOTIFICATION_FEED: &str = "notification";

/// Sort key of the notifications feed: creation time, then id, so equal times stay ordered.
fn notification_seq(n: &Notification) -> String {
    format!("{:013}#{}", n.created_at.timestamp_millis(), n.id)
}

/// The item a notification is stored as (public so benchmarks can seed tables in bulk).
/// The JSON pushed to clients is stored verbatim in `payload`, so the stream handler
/// sends exactly what `GET /notifications` returns.
pub fn notification_item(note: &Notification) -> Item {
    Item::from([
        ("id".into(), s(&note.id)),
        ("type".into(), s(&note.kind)),
        ("ticket_id".into(), n(note.ticket.id)),
        ("created_at".into(), s(note.created_at.to_rfc3339())),
        ("feed".into(), s(NOTIFICATION_FEED)),
        ("seq".into(), s(notification_seq(note))),
        ("payload".into(), s(serde_json::to_string(note).unwrap_or_default())),
    ])
}

/// Reads a notification back from its `payload` attribute.
pub fn notification_from_payload(payload: &str) -> Result<Notification, StoreError> {
    serde_json::from_str(payload)
        .map_err(|e| StoreError::Corrupt(format!("notification payload: {e}")))
}

#[derive(Serialize, Deserialize)]
struct NotificationKey {
    seq: String,
    id: String,
}

impl DynamoStore {
    /// One page of the notifications feed, newest first.
    pub(super) async fn notifications_page(
        &self,
        page: &PageRequest,
    ) -> Result<Page<Notification>, StoreError> {
        let scope = "notifications";
        let start = match &page.cursor {
            None => None,
            Some(c) => {
                let key: NotificationKey =
                    cursor::decode(scope, c).map_err(StoreError::BadCursor)?;
                Some(Item::from([
                    ("id".into(), s(key.id)),
                    ("feed".into(), s(NOTIFICATION_FEED)),
                    ("seq".into(), s(key.seq)),
                ]))
            }
        };
        let (items, more) = self
            .query_page(
                &self.tables.notifications,
                schema::NOTIFICATIONS_BY_FEED,
                "feed",
                NOTIFICATION_FEED,
                start,
                page.limit,
            )
            .await?;
        let mut notes = Vec::with_capacity(items.len());
        let mut last_key = None;
        for item in &items {
            notes.push(notification_from_payload(&get_s(item, "payload")?)?);
            last_key = Some(NotificationKey { seq: get_s(item, "seq")?, id: get_s(item, "id")? });
        }
        let next_cursor = last_key.filter(|_| more).map(|k| cursor::encode(scope, &k));
        Ok(Page { items: notes, next_cursor })
    }
}
