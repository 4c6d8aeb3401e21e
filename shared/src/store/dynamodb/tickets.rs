//! Ticket records: the create transaction (ticket, notification, idempotency completion),
//! reads, refreshes and filtered listing through the tickets table's indexes.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, get_item, n, rfc3339, s, to_item, transact, PutIf, Read};
use super::{notification_item, DynamoStore, Item};
use crate::store::{
    cursor::{self, TicketCursor},
    schema, Creation, FeedSpan, IdempotencyCompletion, Page, PageRequest, StoreError, StoreResult,
    TicketFilter, TicketQuery, TicketStore,
};
use crate::{
    feed::Position,
    model::{Notification, Ticket},
};

/// Partition value of the tickets `by-feed` index.
const TICKET_FEED: &str = "ticket";
/// Separates queue and status in `queue_status`; queue names cannot hold control characters.
const QUEUE_STATUS_SEP: char = '\u{1f}';

fn queue_status(queue: &str, status: &str) -> String {
    format!("{queue}{QUEUE_STATUS_SEP}{status}")
}

/// A ticket as stored: the record plus the attributes its indexes are keyed on.
#[derive(Serialize, Deserialize)]
struct TicketItem {
    id: u64,
    title: String,
    description: String,
    status: String,
    queue: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requestor: Option<String>,
    #[serde(with = "rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    updated_at: DateTime<Utc>,
    rt_url: String,
    /// Partition of the `by-feed` index (written, not needed to read a ticket back).
    #[serde(default)]
    feed: String,
    /// Partition of the `by-queue-status` index.
    #[serde(default)]
    queue_status: String,
}

/// The item a ticket is stored as (public so benchmarks can seed tables in bulk).
pub fn ticket_item(t: &Ticket) -> StoreResult<Item> {
    to_item(&TicketItem {
        id: t.id,
        title: t.title.clone(),
        description: t.description.clone(),
        status: t.status.clone(),
        queue: t.queue.clone(),
        requestor: t.requestor.clone(),
        created_at: t.created_at,
        updated_at: t.updated_at,
        rt_url: t.rt_url.clone(),
        feed: TICKET_FEED.into(),
        queue_status: queue_status(&t.queue, &t.status),
    })
}

fn ticket_from_item(item: Item) -> StoreResult<Ticket> {
    let t: TicketItem = from_item(item, "ticket item")?;
    Ok(Ticket {
        id: t.id,
        title: t.title,
        description: t.description,
        status: t.status,
        queue: t.queue,
        requestor: t.requestor,
        created_at: t.created_at,
        updated_at: t.updated_at,
        rt_url: t.rt_url,
    })
}

/// Index, partition attribute and value for a ticket filter.
fn ticket_index(filter: &TicketFilter) -> (&'static str, &'static str, String) {
    match (&filter.queue, &filter.status) {
        (None, None) => (schema::TICKETS_BY_FEED, "feed", TICKET_FEED.into()),
        (None, Some(st)) => (schema::TICKETS_BY_STATUS, "status", st.clone()),
        (Some(q), None) => (schema::TICKETS_BY_QUEUE, "queue", q.clone()),
        (Some(q), Some(st)) => {
            (schema::TICKETS_BY_QUEUE_STATUS, "queue_status", queue_status(q, st))
        }
    }
}

impl DynamoStore {
    /// The idempotency record's completion, conditional on the lease, as a transaction item.
    fn completion_update(
        &self,
        done: &IdempotencyCompletion,
        ticket_id: u64,
    ) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.tables.idempotency)
            .key("key", s(&done.lease.key))
            .update_expression(
                "SET #state = :done, response_status = :st, response_body = :b, rt_ticket_id = :t",
            )
            .condition_expression("lease_id = :lease")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":st", n(done.status))
            .expression_attribute_values(":b", s(&done.body))
            .expression_attribute_values(":t", n(ticket_id))
            .expression_attribute_values(":lease", s(&done.lease.id))
            .build()
            .map_err(|e| StoreError::aws("build request", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl TicketStore for DynamoStore {
    async fn record_created(&self, creation: &Creation<'_>) -> StoreResult<()> {
        let Creation { ticket, notification, completion } = *creation;
        let build = |e| StoreError::aws("build request", e);
        // A put that fails the whole transaction if an item with this `id` exists.
        let insert = |table: &str, item: Item| -> StoreResult<TransactWriteItem> {
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(id)")
                .build()
                .map_err(build)?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let mut req = self
            .client
            .transact_write_items()
            .transact_items(insert(&self.tables.tickets, ticket_item(ticket)?)?)
            .transact_items(insert(&self.tables.notifications, notification_item(notification)?)?);
        if let Some(done) = completion {
            req = req.transact_items(self.completion_update(done, ticket.id)?);
        }
        transact(req).await
    }

    async fn complete_recorded(
        &self,
        ticket: &Ticket,
        completion: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        if let Some(done) = completion {
            let req = self
                .client
                .transact_write_items()
                .transact_items(self.completion_update(done, ticket.id)?);
            transact(req).await?;
        }
        // Not written when the event mirror read RT after this request did: keep its record.
        let item = ticket_item(ticket)?;
        PutIf::new(&self.tables.tickets, item, "attribute_not_exists(rt_txn)")
            .run(&self.client)
            .await?;
        Ok(())
    }

    async fn get_ticket(&self, id: u64) -> StoreResult<Option<Ticket>> {
        let item = get_item(&self.client, &self.tables.tickets, ("id", n(id)), Read::Eventual);
        item.await?.map(ticket_from_item).transpose()
    }

    async fn put_ticket(&self, ticket: &Ticket) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.tables.tickets)
            .set_item(Some(ticket_item(ticket)?))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", e))?;
        Ok(())
    }

    async fn list_tickets(&self, query: &TicketQuery) -> StoreResult<Page<Ticket>> {
        let TicketQuery { filter, page } = query;
        let (index, hash_attr, hash_value) = ticket_index(filter);
        let scope = format!("tickets|{index}|{hash_value}");
        let start = match &page.cursor {
            None => None,
            Some(c) => {
                let key: TicketCursor = cursor::decode(&scope, c).map_err(StoreError::BadCursor)?;
                Some(Item::from([("id".into(), n(key.id)), (hash_attr.into(), s(&hash_value))]))
            }
        };
        let (items, more) = self
            .query_page(&self.tables.tickets, index, hash_attr, &hash_value, start, page.limit)
            .await?;
        let tickets = items.into_iter().map(ticket_from_item).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match tickets.last() {
            Some(last) if more => Some(cursor::encode(&scope, &TicketCursor { id: last.id })),
            _ => None,
        };
        Ok(Page { items: tickets, next_cursor })
    }

    async fn list_notifications(&self, page: &PageRequest) -> StoreResult<Page<Notification>> {
        self.notifications_page(None, page).await
    }

    async fn list_notifications_of_type(
        &self,
        kind: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>> {
        self.notifications_page(Some(kind), page).await
    }

    async fn notification_position(&self, id: &str) -> StoreResult<Option<Position>> {
        self.notification_seq(id).await
    }

    async fn newest_position_until(&self, until_millis: i64) -> StoreResult<Option<Position>> {
        self.newest_notification_until(until_millis).await
    }

    async fn list_notifications_after(
        &self,
        span: &FeedSpan,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>> {
        self.notifications_after(span, page).await
    }
}
