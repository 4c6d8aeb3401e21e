//! The DynamoDB tables, as data. `template.yaml` declares the same tables for AWS; a
//! test (`tests/tests/template.rs`) fails when the two drift. The local stack and the
//! tests create tables from these definitions with [`create_tables`].

use aws_sdk_dynamodb::{
    types::{
        AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
        GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection,
        ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
        TimeToLiveSpecification,
    },
    Client,
};

use crate::config::Tables;

use super::StoreError;

/// Which table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// Tickets, keyed by RT id.
    Tickets,
    /// Notifications; its stream drives the push function.
    Notifications,
    /// Live WebSocket connections.
    Connections,
    /// Idempotency records for `POST /tickets`.
    Idempotency,
    /// API keys (hashes only), read by the authorizer; see `crate::auth`.
    ApiKeys,
}

/// A key attribute: name and whether it is a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttr {
    /// Attribute name.
    pub name: &'static str,
    /// `N` when true, `S` otherwise.
    pub numeric: bool,
}

const fn s(name: &'static str) -> KeyAttr {
    KeyAttr { name, numeric: false }
}
const fn n(name: &'static str) -> KeyAttr {
    KeyAttr { name, numeric: true }
}

/// A global secondary index (projection ALL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDef {
    /// Index name.
    pub name: &'static str,
    /// Partition key.
    pub hash: KeyAttr,
    /// Sort key.
    pub range: KeyAttr,
}

/// One table's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// Which table.
    pub kind: TableKind,
    /// The template's logical resource id.
    pub logical_id: &'static str,
    /// Partition key (no table has a sort key).
    pub hash: KeyAttr,
    /// Global secondary indexes.
    pub indexes: &'static [IndexDef],
    /// Stream view, when the table has a stream.
    pub stream: Option<&'static str>,
    /// TTL attribute, when the table expires items.
    pub ttl: Option<&'static str>,
}

/// Tickets index: every ticket, newest (highest RT id) first.
pub const TICKETS_BY_FEED: &str = "by-feed";
/// Tickets index: one status.
pub const TICKETS_BY_STATUS: &str = "by-status";
/// Tickets index: one queue.
pub const TICKETS_BY_QUEUE: &str = "by-queue";
/// Tickets index: one queue and one status.
pub const TICKETS_BY_QUEUE_STATUS: &str = "by-queue-status";
/// Notifications index: every notification, newest first.
pub const NOTIFICATIONS_BY_FEED: &str = "by-feed";
/// Connections index: one API key's connections (for its connection limit and for closing
/// them when it is revoked).
pub const CONNECTIONS_BY_KEY: &str = "by-key";
/// Connections index: the connections on one channel (a queue, or
/// [`super::EVERY_QUEUE`]): the push's audience for a batch's queues. Only the channel items
/// (`connection_id` = `<id>#q#<channel>`) carry `channel`, so base items are not in it.
pub const CONNECTIONS_BY_CHANNEL: &str = "by-channel";
/// Notifications index: one type (`GET /notifications?type=`), newest first.
pub const NOTIFICATIONS_BY_TYPE: &str = "by-type";

/// The tables, in the order they are created.
pub const TABLES: [TableDef; 5] = [
    TableDef::new(TableKind::Tickets, "TicketsTable", n("id")).indexed(&[
        gsi(TICKETS_BY_FEED, s("feed"), n("id")),
        gsi(TICKETS_BY_STATUS, s("status"), n("id")),
        gsi(TICKETS_BY_QUEUE, s("queue"), n("id")),
        gsi(TICKETS_BY_QUEUE_STATUS, s("queue_status"), n("id")),
    ]),
    TableDef::new(TableKind::Notifications, "NotificationsTable", s("id"))
        .indexed(&[
            gsi(NOTIFICATIONS_BY_FEED, s("feed"), s("seq")),
            gsi(NOTIFICATIONS_BY_TYPE, s("type"), s("seq")),
        ])
        .streamed("NEW_IMAGE"),
    TableDef::new(TableKind::Connections, "ConnectionsTable", s("connection_id"))
        .indexed(&[
            gsi(CONNECTIONS_BY_KEY, s("key_id"), s("connection_id")),
            gsi(CONNECTIONS_BY_CHANNEL, s("channel"), s("connection_id")),
        ])
        .expiring("expires_at"),
    TableDef::new(TableKind::Idempotency, "IdempotencyTable", s("key")).expiring("expires_at"),
    // Revoked keys stay, for the audit trail (`rt-relay-keys list`): no TTL.
    TableDef::new(TableKind::ApiKeys, "ApiKeysTable", s("key_id")),
];

/// An index named `name` over `hash` and `range`.
const fn gsi(name: &'static str, hash: KeyAttr, range: KeyAttr) -> IndexDef {
    IndexDef { name, hash, range }
}

impl TableDef {
    /// A table keyed by `hash`, with no index, stream or TTL (the builders below add them).
    const fn new(kind: TableKind, logical_id: &'static str, hash: KeyAttr) -> Self {
        Self { kind, logical_id, hash, indexes: &[], stream: None, ttl: None }
    }

    /// With these global secondary indexes.
    const fn indexed(self, indexes: &'static [IndexDef]) -> Self {
        Self { indexes, ..self }
    }

    /// With a stream of this view type.
    const fn streamed(self, view: &'static str) -> Self {
        Self { stream: Some(view), ..self }
    }

    /// With items expiring at this TTL attribute.
    const fn expiring(self, attribute: &'static str) -> Self {
        Self { ttl: Some(attribute), ..self }
    }

    /// The configured name of this table; `None` for the API keys table when
    /// `API_KEYS_TABLE` is not configured.
    pub fn name<'a>(&self, tables: &'a Tables) -> Option<&'a str> {
        match self.kind {
            TableKind::Tickets => Some(&tables.tickets),
            TableKind::Notifications => Some(&tables.notifications),
            TableKind::Connections => Some(&tables.connections),
            TableKind::Idempotency => Some(&tables.idempotency),
            TableKind::ApiKeys => tables.api_keys.as_deref(),
        }
    }

    /// Every attribute that appears in a key, once.
    pub fn key_attributes(&self) -> Vec<KeyAttr> {
        let mut attrs = vec![self.hash];
        for index in self.indexes {
            for a in [index.hash, index.range] {
                if !attrs.iter().any(|x| x.name == a.name) {
                    attrs.push(a);
                }
            }
        }
        attrs
    }
}

fn build_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::aws("build request", e)
}

fn key(attr: KeyAttr, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder().attribute_name(attr.name).key_type(kind).build().map_err(build_err)
}

/// Creates each configured table that does not exist yet (with its indexes, stream and TTL) and
/// waits until all are active. An existing table gets the indexes it lacks (one
/// `UpdateTable` each, e.g. the connections table's `by-channel` on a table made before
/// it); nothing else of it is changed.
pub async fn create_tables(client: &Client, tables: &Tables) -> Result<(), StoreError> {
    let existing = client
        .list_tables()
        .send()
        .await
        .map_err(|e| StoreError::aws("ListTables", e))?
        .table_names
        .unwrap_or_default();
    for def in TABLES {
        let Some(name) = def.name(tables) else { continue };
        if existing.iter().any(|t| t == name) {
            add_missing_indexes(client, name, &def).await?;
            continue;
        }
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(def.hash, KeyType::Hash)?);
        req = req.set_attribute_definitions(Some(attribute_definitions(&def)?));
        for index in def.indexes {
            req = req.global_secondary_indexes(global_index(index)?);
        }
        if let Some(view) = def.stream {
            req = req.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(view))
                    .build()
                    .map_err(build_err)?,
            );
        }
        match req.send().await {
            Ok(_) => {}
            // Created concurrently by another process since we looked, or not on the first
            // page of ListTables (100 names): it exists, so it only gets missing indexes.
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_in_use_exception()) => {
                add_missing_indexes(client, name, &def).await?;
                continue;
            }
            Err(e) => return Err(StoreError::aws("CreateTable", e)),
        }
        if let Some(attr) = def.ttl {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(attr)
                        .build()
                        .map_err(build_err)?,
                )
                .send()
                .await
                .map_err(|e| StoreError::aws("UpdateTimeToLive", e))?;
        }
    }
    Ok(())
}

/// The definitions of every key attribute of `def`.
fn attribute_definitions(def: &TableDef) -> Result<Vec<AttributeDefinition>, StoreError> {
    def.key_attributes()
        .into_iter()
        .map(|a| {
            let t = if a.numeric { ScalarAttributeType::N } else { ScalarAttributeType::S };
            AttributeDefinition::builder()
                .attribute_name(a.name)
                .attribute_type(t)
                .build()
                .map_err(build_err)
        })
        .collect()
}

fn global_index(index: &IndexDef) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(index.name)
        .key_schema(key(index.hash, KeyType::Hash)?)
        .key_schema(key(index.range, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build_err)
}

/// Adds to the existing table `name` each index of `def` it does not have, one at a time
/// (DynamoDB creates one index per `UpdateTable`), waiting for each to be active.
async fn add_missing_indexes(
    client: &Client,
    name: &str,
    def: &TableDef,
) -> Result<(), StoreError> {
    for index in def.indexes {
        if index_status(client, name, index.name).await?.is_some() {
            continue;
        }
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(index.name)
            .key_schema(key(index.hash, KeyType::Hash)?)
            .key_schema(key(index.range, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build_err)?;
        client
            .update_table()
            .table_name(name)
            .set_attribute_definitions(Some(attribute_definitions(def)?))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(create).build(),
            )
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateTable", e))?;
        // Backfilling takes a while on AWS; moto answers at once. Bounded: 10 minutes.
        for _ in 0..600 {
            if index_status(client, name, index.name).await? == Some(IndexStatus::Active) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

/// The status of index `index` of table `name`; `None` when it has no such index.
async fn index_status(
    client: &Client,
    name: &str,
    index: &str,
) -> Result<Option<IndexStatus>, StoreError> {
    let table = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| StoreError::aws("DescribeTable", e))?
        .table;
    Ok(table
        .and_then(|t| t.global_secondary_indexes)
        .unwrap_or_default()
        .into_iter()
        .find(|i| i.index_name.as_deref() == Some(index))
        .map(|i| i.index_status.unwrap_or(IndexStatus::Active)))
}

/// The ARN of the notifications table's latest stream, for the local stream poller.
pub async fn notifications_stream_arn(
    client: &Client,
    tables: &Tables,
) -> Result<String, StoreError> {
    client
        .describe_table()
        .table_name(&tables.notifications)
        .send()
        .await
        .map_err(|e| StoreError::aws("DescribeTable", e))?
        .table
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| StoreError::Corrupt(format!("table {} has no stream", tables.notifications)))
}
