//! The DynamoDB adapter of the event stores. Tickets and notifications go to their tables
//! in the items `crate::store::dynamodb` defines (one mapping); the sync cursor and the
//! webhook's replay memory are items of the idempotency table, the table of "records that
//! make retries safe", under keys that cannot collide with its hashed idempotency keys:
//!
//! | key | attributes |
//! |---|---|
//! | `rt-sync#cursor` | `position_id` (N), `position_created` (S), `lease_id` (S), `lease_until` (N, ms), `updated_at` (S) |
//! | `rt-webhook#{signature hex}` | `expires_at` (N, epoch s: the table's TTL) |

use async_trait::async_trait;
use aws_sdk_dynamodb::{types::AttributeValue, Client};
use chrono::{DateTime, Utc};

use super::store::{CursorClaim, EventStore, ReplayGuard, SyncCursorStore};
use crate::{
    config::Tables,
    model::{Notification, Ticket},
    rt::transactions::TxnPosition,
    store::{
        dynamodb::{
            item::{get_item, n, s, PutIf, Read, UpdateIf},
            notification_item, ticket_item, DynamoStore, Item,
        },
        StoreError, StoreResult, Term, TicketStore,
    },
};

/// Key of the sync cursor item.
pub const CURSOR_KEY: &str = "rt-sync#cursor";
/// Prefix of the webhook's replay items.
pub const REPLAY_PREFIX: &str = "rt-webhook#";

/// The event stores over one DynamoDB client.
#[derive(Debug, Clone)]
pub struct DynamoEvents {
    client: Client,
    tables: Tables,
    tickets: DynamoStore,
}

impl DynamoEvents {
    /// Wraps a client built once at cold start.
    pub fn new(client: Client, tables: Tables) -> Self {
        let tickets = DynamoStore::new(client.clone(), tables.clone());
        Self { client, tables, tickets }
    }

    /// A conditional update of the sync cursor's item: the item afterwards, or `None` when
    /// `condition` did not hold.
    async fn cursor_update(
        &self,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<Option<Item>> {
        let table = &self.tables.idempotency;
        let key = ("key", s(CURSOR_KEY));
        UpdateIf { table, key, update, condition, names: &[], values }.run(&self.client).await
    }
}

fn position_of(item: &Item) -> StoreResult<Option<TxnPosition>> {
    let Some(AttributeValue::N(id)) = item.get("position_id") else { return Ok(None) };
    let id = id.parse().map_err(|_| StoreError::Corrupt("position_id is not a number".into()))?;
    let created = match item.get("position_created") {
        Some(AttributeValue::S(t)) => DateTime::parse_from_rfc3339(t)
            .map_err(|_| StoreError::Corrupt("position_created is not RFC 3339".into()))?
            .with_timezone(&Utc),
        _ => return Err(StoreError::Corrupt("position_created missing".into())),
    };
    Ok(Some(TxnPosition { id, created }))
}

#[async_trait]
impl EventStore for DynamoEvents {
    async fn stored_ticket(&self, id: u64) -> StoreResult<Option<Ticket>> {
        self.tickets.get_ticket(id).await
    }

    async fn mirror_ticket(&self, ticket: &Ticket, as_of: u64) -> StoreResult<bool> {
        let mut item = ticket_item(ticket)?;
        item.insert("rt_txn".into(), n(as_of));
        // A record written by POST /tickets or GET /tickets/{id} has no `rt_txn`; the state
        // read after a later transaction is never overwritten by an older read.
        let newer = "attribute_not_exists(rt_txn) OR rt_txn <= :t";
        let put = PutIf::new(&self.tables.tickets, item, newer);
        PutIf { values: vec![(":t", n(as_of))], ..put }.run(&self.client).await
    }

    async fn add_notification(&self, notification: &Notification) -> StoreResult<bool> {
        let item = notification_item(notification)?;
        let put = PutIf::new(&self.tables.notifications, item, "attribute_not_exists(id)");
        put.run(&self.client).await
    }
}

#[async_trait]
impl SyncCursorStore for DynamoEvents {
    async fn claim(&self, term: Term) -> StoreResult<CursorClaim> {
        let lease = uuid::Uuid::new_v4().to_string();
        let claimed = self
            .cursor_update(
                "SET lease_id = :lease, lease_until = :until",
                "attribute_not_exists(lease_until) OR lease_until < :now",
                vec![
                    (":lease", s(&lease)),
                    (":until", n(term.until.timestamp_millis())),
                    (":now", n(term.now.timestamp_millis())),
                ],
            )
            .await?;
        match claimed {
            Some(item) => Ok(CursorClaim::Acquired { lease, position: position_of(&item)? }),
            None => Ok(CursorClaim::Busy),
        }
    }

    async fn commit(&self, lease: &str, position: TxnPosition) -> StoreResult<()> {
        let committed = self
            .cursor_update(
                "SET position_id = :p, position_created = :c, updated_at = :now",
                "lease_id = :lease AND (attribute_not_exists(position_id) OR position_id <= :p)",
                vec![
                    (":p", n(position.id)),
                    (":c", s(position.created.to_rfc3339())),
                    (":now", s(Utc::now().to_rfc3339())),
                    (":lease", s(lease)),
                ],
            )
            .await?;
        match committed {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict("the sync lost its lease on the cursor".into())),
        }
    }

    async fn release(&self, lease: &str) -> StoreResult<()> {
        // Not holding it any more (taken over after the lease ended) is fine too.
        self.cursor_update(
            "REMOVE lease_id, lease_until",
            "lease_id = :lease",
            vec![(":lease", s(lease))],
        )
        .await?;
        Ok(())
    }

    async fn position(&self) -> StoreResult<Option<TxnPosition>> {
        let table = &self.tables.idempotency;
        let item = get_item(&self.client, table, ("key", s(CURSOR_KEY)), Read::Consistent).await?;
        match &item {
            Some(item) => position_of(item),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl ReplayGuard for DynamoEvents {
    async fn first_use(&self, signature: &str, term: Term) -> StoreResult<bool> {
        let Term { now, until } = term;
        let item = Item::from([
            ("key".to_owned(), s(format!("{REPLAY_PREFIX}{signature}"))),
            ("expires_at".to_owned(), n(until.timestamp())),
        ]);
        // DynamoDB's TTL deletes late; an expired memory counts as gone.
        let unseen = "attribute_not_exists(#k) OR expires_at < :now";
        let put = PutIf::new(&self.tables.idempotency, item, unseen);
        let values = vec![(":now", n(now.timestamp()))];
        PutIf { names: &[("#k", "key")], values, ..put }.run(&self.client).await
    }
}
