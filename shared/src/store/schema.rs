//! The DynamoDB tables, as data. `template.yaml` declares the same tables for AWS; a
//! test (`tests/tests/template.rs`) fails when the two drift. The local stack and the
//! tests create tables from these definitions with [`create_tables`].

use aws_sdk_dynamodb::{
    types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
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
/// Notifications index: one type (`GET /notifications?type=`), newest first.
pub const NOTIFICATIONS_BY_TYPE: &str = "by-type";

/// The tables, in the order they are created.
pub const TABLES: [TableDef; 5] = [
    TableDef {
        kind: TableKind::Tickets,
        logical_id: "TicketsTable",
        hash: n("id"),
        indexes: &[
            IndexDef { name: TICKETS_BY_FEED, hash: s("feed"), range: n("id") },
            IndexDef { name: TICKETS_BY_STATUS, hash: s("status"), range: n("id") },
            IndexDef { name: TICKETS_BY_QUEUE, hash: s("queue"), range: n("id") },
            IndexDef { name: TICKETS_BY_QUEUE_STATUS, hash: s("queue_status"), range: n("id") },
        ],
        stream: None,
        ttl: None,
    },
    TableDef {
        kind: TableKind::Notifications,
        logical_id: "NotificationsTable",
        hash: s("id"),
        indexes: &[
            IndexDef { name: NOTIFICATIONS_BY_FEED, hash: s("feed"), range: s("seq") },
            IndexDef { name: NOTIFICATIONS_BY_TYPE, hash: s("type"), range: s("seq") },
        ],
        stream: Some("NEW_IMAGE"),
        ttl: None,
    },
    TableDef {
        kind: TableKind::Connections,
        logical_id: "ConnectionsTable",
        hash: s("connection_id"),
        indexes: &[IndexDef {
            name: CONNECTIONS_BY_KEY,
            hash: s("key_id"),
            range: s("connection_id"),
        }],
        stream: None,
        ttl: Some("expires_at"),
    },
    TableDef {
        kind: TableKind::Idempotency,
        logical_id: "IdempotencyTable",
        hash: s("key"),
        indexes: &[],
        stream: None,
        ttl: Some("expires_at"),
    },
    TableDef {
        kind: TableKind::ApiKeys,
        logical_id: "ApiKeysTable",
        hash: s("key_id"),
        indexes: &[],
        stream: None,
        // Revoked keys stay, for the audit trail (`rt-relay-keys list`).
        ttl: None,
    },
];

impl TableDef {
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
/// waits until all are active. Existing tables are left as they are.
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
            continue;
        }
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(def.hash, KeyType::Hash)?);
        for a in def.key_attributes() {
            let t = if a.numeric { ScalarAttributeType::N } else { ScalarAttributeType::S };
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(a.name)
                    .attribute_type(t)
                    .build()
                    .map_err(build_err)?,
            );
        }
        for index in def.indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .key_schema(key(index.hash, KeyType::Hash)?)
                    .key_schema(key(index.range, KeyType::Range)?)
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .map_err(build_err)?,
            );
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
            // Created concurrently by another process since we looked: that is fine.
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_in_use_exception()) => {
                continue
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
