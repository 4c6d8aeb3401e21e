//! The DynamoDB adapter for all four store traits. Table shapes are in [`super::schema`];
//! the design (keys, indexes, why) is in docs/ARCHITECTURE.md.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    error::SdkError,
    types::{AttributeValue, Put, ReturnConsumedCapacity, ReturnValue, TransactWriteItem, Update},
    Client,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    cursor, schema, Claim, Connection, ConnectionStore, IdempotencyCompletion, IdempotencyStore,
    Lease, Page, PageRequest, StoreError, TicketFilter, TicketStore,
};
use crate::config::Tables;
use crate::model::{Notification, Ticket};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Partition value of the tickets `by-feed` index.
const TICKET_FEED: &str = "ticket";
/// Partition value of the notifications `by-feed` index.
const NOTIFICATION_FEED: &str = "notification";
/// Separates queue and status in `queue_status`; queue names cannot hold control characters.
const QUEUE_STATUS_SEP: char = '\u{1f}';

/// All four stores over one DynamoDB client.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
    /// What the calls cost so far, for benchmarks; shared by clones.
    counters: Arc<Counters>,
}

/// Running totals behind [`StoreMetrics`].
#[derive(Debug, Default)]
struct Counters {
    db_nanos: AtomicU64,
    queries: AtomicU64,
    items_scanned: AtomicU64,
    /// Capacity units × 1000: DynamoDB bills reads in halves of a unit.
    read_milli_units: AtomicU64,
}

/// What this store's DynamoDB calls have cost since it was built (totals over all clones).
/// Benchmarks take a snapshot before and after and subtract.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreMetrics {
    /// Time spent awaiting DynamoDB, in nanoseconds (all calls).
    pub db_nanos: u64,
    /// Query calls made (a page may take more than one when DynamoDB's 1 MB limit cuts it).
    pub queries: u64,
    /// Items the Queries read (`ScannedCount`): what DynamoDB bills, filters or not.
    pub items_scanned: u64,
    /// Read capacity units the Queries consumed (`ConsumedCapacity`, total).
    pub read_capacity_units: f64,
}

impl StoreMetrics {
    /// The difference `self - earlier`, for one measured stretch.
    pub fn since(&self, earlier: &StoreMetrics) -> StoreMetrics {
        StoreMetrics {
            db_nanos: self.db_nanos.saturating_sub(earlier.db_nanos),
            queries: self.queries.saturating_sub(earlier.queries),
            items_scanned: self.items_scanned.saturating_sub(earlier.items_scanned),
            read_capacity_units: self.read_capacity_units - earlier.read_capacity_units,
        }
    }
}

impl DynamoStore {
    /// Wraps a client built once at cold start.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables, counters: Arc::new(Counters::default()) }
    }

    /// Total time spent awaiting DynamoDB since start, in nanoseconds.
    pub fn db_nanos(&self) -> u64 {
        self.counters.db_nanos.load(Ordering::Relaxed)
    }

    /// A snapshot of what the calls have cost so far.
    pub fn metrics(&self) -> StoreMetrics {
        let c = &self.counters;
        StoreMetrics {
            db_nanos: c.db_nanos.load(Ordering::Relaxed),
            queries: c.queries.load(Ordering::Relaxed),
            items_scanned: c.items_scanned.load(Ordering::Relaxed),
            read_capacity_units: c.read_milli_units.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    /// The table names in use.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    async fn timed<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        let start = Instant::now();
        let out = fut.await;
        let spent = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.db_nanos.fetch_add(spent, Ordering::Relaxed);
        out
    }

    /// Adds one Query's `ScannedCount` and consumed capacity to the totals.
    fn count_query(&self, out: &aws_sdk_dynamodb::operation::query::QueryOutput) {
        let c = &self.counters;
        c.queries.fetch_add(1, Ordering::Relaxed);
        c.items_scanned.fetch_add(u64::try_from(out.scanned_count).unwrap_or(0), Ordering::Relaxed);
        let units = out.consumed_capacity.as_ref().and_then(|cc| cc.capacity_units).unwrap_or(0.0);
        // Capacity units are small non-negative multiples of 0.5; milli-units are exact.
        c.read_milli_units.fetch_add((units.max(0.0) * 1000.0).round() as u64, Ordering::Relaxed);
    }
}

/// Builds the DynamoDB client from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` for moto), once at cold start.
pub async fn client_from_env() -> Client {
    let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Client::new(&conf)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::Corrupt(format!("attribute {name} missing or not a string"))),
    }
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => {
            v.parse().map_err(|_| StoreError::Corrupt(format!("attribute {name} is not a number")))
        }
        _ => Err(StoreError::Corrupt(format!("attribute {name} missing or not a number"))),
    }
}

fn get_time(item: &Item, name: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(&get_s(item, name)?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not RFC 3339")))
}

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

fn is_conditional_failure<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

#[derive(Serialize, Deserialize)]
struct TicketKey {
    id: u64,
}

#[derive(Serialize, Deserialize)]
struct NotificationKey {
    seq: String,
    id: String,
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
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let want = limit as usize + 1;
        let mut items = Vec::with_capacity(want);
        let mut start = start;
        loop {
            let remaining = i32::try_from(want - items.len()).unwrap_or(i32::MAX);
            let out = self
                .timed(
                    self.client
                        .query()
                        .table_name(table)
                        .index_name(index)
                        .key_condition_expression("#h = :h")
                        .expression_attribute_names("#h", hash_attr)
                        .expression_attribute_values(":h", s(hash_value))
                        .scan_index_forward(false)
                        .limit(remaining)
                        .set_exclusive_start_key(start.take())
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send(),
                )
                .await
                .map_err(|e| StoreError::aws("Query", e))?;
            self.count_query(&out);
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

/// A random lease id (UUID v4 from the OS's generator).
fn new_lease_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// How long an idempotency record is kept: a day, as most payment APIs do.
const IDEMPOTENCY_RETENTION_SECS: i64 = 24 * 3600;

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn claim(
        &self,
        key: &str,
        body_hash: &str,
        now: DateTime<Utc>,
        lease_for: chrono::Duration,
    ) -> Result<Claim, StoreError> {
        let lease_until = (now + lease_for).timestamp_millis();
        // Bounded: each round either wins, reads a definite state, or saw the record vanish.
        for _ in 0..3 {
            let lease = Lease { key: key.to_owned(), id: new_lease_id() };
            let put = self
                .timed(
                    self.client
                        .put_item()
                        .table_name(&self.tables.idempotency)
                        .set_item(Some(Item::from([
                            ("key".into(), s(key)),
                            ("body_hash".into(), s(body_hash)),
                            ("state".into(), s("pending")),
                            ("lease_id".into(), s(&lease.id)),
                            ("lease_until".into(), n(lease_until)),
                            ("created_at".into(), s(now.to_rfc3339())),
                            ("expires_at".into(), n(now.timestamp() + IDEMPOTENCY_RETENTION_SECS)),
                        ])))
                        .condition_expression("attribute_not_exists(#k)")
                        .expression_attribute_names("#k", "key")
                        .send(),
                )
                .await;
            match put {
                Ok(_) => {
                    return Ok(Claim::Acquired {
                        lease,
                        rt_ticket_id: None,
                        previous_attempt: None,
                    })
                }
                Err(e) if is_conditional_failure(&e) => {}
                Err(e) => return Err(StoreError::aws("PutItem", e)),
            }
            let existing = self
                .timed(
                    self.client
                        .get_item()
                        .table_name(&self.tables.idempotency)
                        .key("key", s(key))
                        .consistent_read(true)
                        .send(),
                )
                .await
                .map_err(|e| StoreError::aws("GetItem", e))?;
            let Some(item) = existing.item else { continue };
            if get_s(&item, "body_hash")? != body_hash {
                return Ok(Claim::Mismatch);
            }
            if get_s(&item, "state")? == "done" {
                return Ok(Claim::Completed {
                    status: get_n(&item, "response_status")?,
                    body: get_s(&item, "response_body")?,
                });
            }
            if get_n::<i64>(&item, "lease_until")? > now.timestamp_millis() {
                return Ok(Claim::InProgress);
            }
            // The holder's lease ran out: take over, keeping any RT ticket it noted.
            let old = get_s(&item, "lease_id")?;
            let taken = self
                .timed(
                    self.client
                        .update_item()
                        .table_name(&self.tables.idempotency)
                        .key("key", s(key))
                        .update_expression("SET lease_id = :new, lease_until = :until")
                        .condition_expression("lease_id = :old AND #state = :pending")
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_values(":new", s(&lease.id))
                        .expression_attribute_values(":until", n(lease_until))
                        .expression_attribute_values(":old", s(old))
                        .expression_attribute_values(":pending", s("pending"))
                        .return_values(ReturnValue::AllNew)
                        .send(),
                )
                .await;
            return match taken {
                Ok(out) => {
                    let rt_ticket_id =
                        out.attributes.as_ref().and_then(|a| get_n(a, "rt_ticket_id").ok());
                    let previous_attempt = Some(get_time(&item, "created_at")?);
                    Ok(Claim::Acquired { lease, rt_ticket_id, previous_attempt })
                }
                Err(e) if is_conditional_failure(&e) => Ok(Claim::InProgress),
                Err(e) => Err(StoreError::aws("UpdateItem", e)),
            };
        }
        Ok(Claim::InProgress)
    }

    async fn note_rt_ticket(&self, lease: &Lease, rt_ticket_id: u64) -> Result<(), StoreError> {
        let out = self
            .timed(
                self.client
                    .update_item()
                    .table_name(&self.tables.idempotency)
                    .key("key", s(&lease.key))
                    .update_expression("SET rt_ticket_id = :t")
                    .condition_expression("lease_id = :lease")
                    .expression_attribute_values(":t", n(rt_ticket_id))
                    .expression_attribute_values(":lease", s(&lease.id))
                    .send(),
            )
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                Err(StoreError::Conflict("idempotency lease lost".into()))
            }
            Err(e) => Err(StoreError::aws("UpdateItem", e)),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let out = self
            .timed(
                self.client
                    .delete_item()
                    .table_name(&self.tables.idempotency)
                    .key("key", s(&lease.key))
                    .condition_expression("lease_id = :lease AND #state = :pending")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":lease", s(&lease.id))
                    .expression_attribute_values(":pending", s("pending"))
                    .send(),
            )
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::aws("DeleteItem", e)),
        }
    }

    async fn abandon(&self, lease: &Lease, retry_from: DateTime<Utc>) -> Result<(), StoreError> {
        let out = self
            .timed(
                self.client
                    .update_item()
                    .table_name(&self.tables.idempotency)
                    .key("key", s(&lease.key))
                    .update_expression("SET lease_until = :until")
                    .condition_expression("lease_id = :lease AND #state = :pending")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":until", n(retry_from.timestamp_millis()))
                    .expression_attribute_values(":lease", s(&lease.id))
                    .expression_attribute_values(":pending", s("pending"))
                    .send(),
            )
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::aws("UpdateItem", e)),
        }
    }
}

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
