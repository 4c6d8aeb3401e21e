//! Idempotency records for `POST /tickets`: claims with leases, takeover of expired
//! leases, and the conditional writes made under a lease.

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    error::SdkError, operation::delete_item::DeleteItemError, types::AttributeValue,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{
    condition_failed, from_item, get_item, n, rfc3339, s, to_item, Item, PutIf, Read, UpdateIf,
};
use super::DynamoStore;
use crate::store::{Claim, IdempotencyStore, Lease, StoreError, StoreResult, Term};

/// An idempotency record as stored. A claim writes the first seven attributes; the RT
/// ticket id and the answer are added under the lease.
#[derive(Serialize, Deserialize)]
struct IdempotencyItem {
    key: String,
    body_hash: String,
    /// `pending` until the answer is recorded, then `done`.
    state: String,
    lease_id: String,
    /// End of the current lease, in milliseconds since the epoch.
    lease_until: i64,
    /// When the first attempt claimed the key.
    #[serde(with = "rfc3339")]
    created_at: DateTime<Utc>,
    /// DynamoDB TTL, in seconds since the epoch.
    expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rt_ticket_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_body: Option<String>,
}

/// A random lease id (UUID v4 from the OS's generator).
fn new_lease_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The outcome of a write that ends a pending lease: a failed condition means the lease
/// already ended (taken over or completed), which is the state the write wanted.
fn gone_is_fine<O, E, R>(
    out: Result<O, SdkError<E, R>>,
    op: &'static str,
    check: fn(&E) -> bool,
) -> StoreResult<()>
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match out {
        Ok(_) => Ok(()),
        Err(e) if condition_failed(&e, check) => Ok(()),
        Err(e) => Err(StoreError::aws(op, e)),
    }
}

impl DynamoStore {
    /// A conditional update of idempotency record `key` while it is still pending and
    /// `condition` holds: the record afterwards, or `None` when it was not.
    async fn pending_update(
        &self,
        key: &str,
        update: &str,
        condition: &str,
        mut values: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<Option<Item>> {
        values.push((":pending", s("pending")));
        let condition = format!("{condition} AND #state = :pending");
        UpdateIf {
            table: &self.tables.idempotency,
            key: ("key", s(key)),
            update,
            condition: &condition,
            names: &[("#state", "state")],
            values,
        }
        .run(&self.client)
        .await
    }
}

/// How long an idempotency record is kept: a day, as most payment APIs do.
const IDEMPOTENCY_RETENTION_SECS: i64 = 24 * 3600;

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn claim(&self, key: &str, body_hash: &str, term: Term) -> StoreResult<Claim> {
        let (now, lease_until) = (term.now, term.until.timestamp_millis());
        // Bounded: each round either wins, reads a definite state, or saw the record vanish.
        for _ in 0..3 {
            let lease = Lease { key: key.to_owned(), id: new_lease_id() };
            let claim = IdempotencyItem {
                key: key.to_owned(),
                body_hash: body_hash.to_owned(),
                state: "pending".into(),
                lease_id: lease.id.clone(),
                lease_until,
                created_at: now,
                expires_at: now.timestamp() + IDEMPOTENCY_RETENTION_SECS,
                rt_ticket_id: None,
                response_status: None,
                response_body: None,
            };
            let item = to_item(&claim)?;
            let put = PutIf::new(&self.tables.idempotency, item, "attribute_not_exists(#k)");
            let put = PutIf { names: &[("#k", "key")], ..put };
            if put.run(&self.client).await? {
                return Ok(Claim::Acquired { lease, rt_ticket_id: None, previous_attempt: None });
            }
            let table = &self.tables.idempotency;
            let existing = get_item(&self.client, table, ("key", s(key)), Read::Consistent).await?;
            let Some(item) = existing else { continue };
            let record: IdempotencyItem = from_item(item, "idempotency item")?;
            if record.body_hash != body_hash {
                return Ok(Claim::Mismatch);
            }
            if record.state == "done" {
                let answer = record.response_status.zip(record.response_body);
                let (status, body) = answer.ok_or_else(|| {
                    StoreError::Corrupt("idempotency item done without its answer".into())
                })?;
                return Ok(Claim::Completed { status, body });
            }
            if record.lease_until > now.timestamp_millis() {
                return Ok(Claim::InProgress);
            }
            // The holder's lease ran out: take over, keeping any RT ticket it noted.
            let taken = self
                .pending_update(
                    key,
                    "SET lease_id = :new, lease_until = :until",
                    "lease_id = :old",
                    vec![
                        (":new", s(&lease.id)),
                        (":until", n(lease_until)),
                        (":old", s(record.lease_id)),
                    ],
                )
                .await?;
            return match taken {
                Some(item) => {
                    let now_held: IdempotencyItem = from_item(item, "idempotency item")?;
                    let rt_ticket_id = now_held.rt_ticket_id;
                    let previous_attempt = Some(record.created_at);
                    Ok(Claim::Acquired { lease, rt_ticket_id, previous_attempt })
                }
                None => Ok(Claim::InProgress),
            };
        }
        Ok(Claim::InProgress)
    }

    async fn note_rt_ticket(&self, lease: &Lease, rt_ticket_id: u64) -> StoreResult<()> {
        let noted = UpdateIf {
            table: &self.tables.idempotency,
            key: ("key", s(&lease.key)),
            update: "SET rt_ticket_id = :t",
            condition: "lease_id = :lease",
            names: &[],
            values: vec![(":t", n(rt_ticket_id)), (":lease", s(&lease.id))],
        };
        match noted.run(&self.client).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict("idempotency lease lost".into())),
        }
    }

    async fn release(&self, lease: &Lease) -> StoreResult<()> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.idempotency)
            .key("key", s(&lease.key))
            .condition_expression("lease_id = :lease AND #state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":lease", s(&lease.id))
            .expression_attribute_values(":pending", s("pending"))
            .send()
            .await;
        gone_is_fine(out, "DeleteItem", DeleteItemError::is_conditional_check_failed_exception)
    }

    async fn abandon(&self, lease: &Lease, retry_from: DateTime<Utc>) -> StoreResult<()> {
        // Gone (completed, released or taken over meanwhile) is fine.
        let values = vec![(":until", n(retry_from.timestamp_millis())), (":lease", s(&lease.id))];
        self.pending_update(&lease.key, "SET lease_until = :until", "lease_id = :lease", values)
            .await?;
        Ok(())
    }
}
