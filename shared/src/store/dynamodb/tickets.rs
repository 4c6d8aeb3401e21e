//! Ticket records: the create transaction (ticket, notification, idempotency completion),
//! reads, refreshes and filtered listing through the tickets table's indexes.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::{get_n, get_s, get_time, n, notification_item, s, DynamoStore, Item};
use crate::model::{Notification, Ticket};
use crate::store::{
    cursor, schema, IdempotencyCompletion, Page, PageRequest, StoreError, TicketFilter, TicketStore,
};

/// Partition value of the tickets `by-feed` index.
const TICKET_FEED: &str = "ticket";
/// Separates queue and status in `queue_status`; queue names cannot hold control characters.
const QUEUE_STATUS_SEP: char = '\u{1f}';

fn queue_status(queue: &str, status: &str) -> String {
    format!("{queue}{QUEUE_STATUS_SEP}{status}")
}

/// The item a ticket is stored as (public so benchmarks can seed tables in bulk).
pub fn ticket_item(t: &Ticket) -> Item {
    let mut item = Item::from([
        ("id".into(), n(t.id)),
        ("title".into(), s(&t.title)),
        ("description".into(), s(&t.description)),
        ("status".into(), s(&t.status)),
        ("queue".into(), s(&t.queue)),
        ("created_at".into(), s(t.created_at.to_rfc3339())),
        ("updated_at".into(), s(t.updated_at.to_rfc3339())),
        ("rt_url".into(), s(&t.rt_url)),
        ("feed".into(), s(TICKET_FEED)),
        ("queue_status".into(), s(queue_status(&t.queue, &t.status))),
    ]);
    if let Some(r) = &t.requestor {
        item.insert("requestor".into(), s(r));
    }
    item
}

fn ticket_from_item(item: &Item) -> Result<Ticket, StoreError> {
    Ok(Ticket {
        id: get_n(item, "id")?,
        title: get_s(item, "title")?,
        description: get_s(item, "description")?,
        status: get_s(item, "status")?,
        queue: get_s(item, "queue")?,
        requestor: get_s(item, "requestor").ok(),
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
        rt_url: get_s(item, "rt_url")?,
    })
}

#[derive(Serialize, Deserialize)]
struct TicketKey {
    id: u64,
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

#[async_trait]
impl TicketStore for DynamoStore {
    async fn record_created(
        &self,
        ticket: &Ticket,
        notification: &Notification,
        completion: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError> {
        let build = |e| StoreError::aws("build request", e);
        // A put that fails the whole transaction if an item with this `id` exists.
        let insert = |table: &str, item: Item| -> Result<TransactWriteItem, StoreError> {
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
            .transact_items(insert(&self.tables.tickets, ticket_item(ticket))?)
            .transact_items(insert(&self.tables.notifications, notification_item(notification))?);
        if let Some(done) = completion {
            req = req.transact_items(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
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
                            .expression_attribute_values(":t", n(ticket.id))
                            .expression_attribute_values(":lease", s(&done.lease.id))
                            .build()
                            .map_err(build)?,
                    )
                    .build(),
            );
        }
        match self.timed(req.send()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let canceled =
                    e.as_service_error().filter(|se| se.is_transaction_canceled_exception());
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(tc)) = canceled {
                    let reasons: Vec<String> = tc
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None").to_owned())
                        .collect();
                    if reasons.iter().any(|r| r == "ConditionalCheckFailed") {
                        return Err(StoreError::Conflict(format!("transaction cancelled: {}", reasons.join(","))));
                    }
                }
                Err(StoreError::aws("TransactWriteItems", e))
            }
        }
    }

    async fn get_ticket(&self, id: u64) -> Result<Option<Ticket>, StoreError> {
        let out = self
            .timed(self.client.get_item().table_name(&self.tables.tickets).key("id", n(id)).send())
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        out.item.as_ref().map(ticket_from_item).transpose()
    }

    async fn put_ticket(&self, ticket: &Ticket) -> Result<(), StoreError> {
        self.timed(
            self.client
                .put_item()
                .table_name(&self.tables.tickets)
                .set_item(Some(ticket_item(ticket)))
                .send(),
        )
        .await
        .map_err(|e| StoreError::aws("PutItem", e))?;
        Ok(())
    }

    async fn list_tickets(
        &self,
        filter: &TicketFilter,
        page: &PageRequest,
    ) -> Result<Page<Ticket>, StoreError> {
        let (index, hash_attr, hash_value) = ticket_index(filter);
        let scope = format!("tickets|{index}|{hash_value}");
        let start = match &page.cursor {
            None => None,
            Some(c) => {
                let key: TicketKey = cursor::decode(&scope, c).map_err(StoreError::BadCursor)?;
                Some(Item::from([("id".into(), n(key.id)), (hash_attr.into(), s(&hash_value))]))
            }
        };
        let (items, more) = self
            .query_page(&self.tables.tickets, index, hash_attr, &hash_value, start, page.limit)
            .await?;
        let tickets = items.iter().map(ticket_from_item).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match tickets.last() {
            Some(last) if more => Some(cursor::encode(&scope, &TicketKey { id: last.id })),
            _ => None,
        };
        Ok(Page { items: tickets, next_cursor })
    }

    async fn list_notifications(
        &self,
        page: &PageRequest,
    ) -> Result<Page<Notification>, StoreError> {
        self.notifications_page(page).await
    }
}
