//! Idempotency records for `POST /tickets`: claims with leases, takeover of expired
//! leases, and the conditional writes made under a lease.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};

use super::{get_n, get_s, get_time, is_conditional_failure, n, s, DynamoStore, Item};
use crate::store::{Claim, IdempotencyStore, Lease, StoreError};

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
