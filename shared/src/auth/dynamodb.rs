//! The API keys table (`API_KEYS_TABLE`, partition key `key_id`): one item per key with
//! `name`, `scopes` (string set), `secret_hash` (SHA-256 hex), `created_at` and, once
//! revoked, `revoked_at`. The secret itself is never written anywhere.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::{operation::update_item::UpdateItemError, Client};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{ApiKeyRecord, ApiKeyStore, RevokeOutcome, Scope};
use crate::store::dynamodb::item::{
    condition_failed, from_item, get_item, rfc3339, s, to_item, Item, PutIf, Read,
};
use crate::store::StoreError;

/// [`ApiKeyStore`] over DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoApiKeys {
    client: Client,
    table: String,
}

impl DynamoApiKeys {
    /// Over `table`, with a client built once at cold start.
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// An API key as stored.
#[derive(Serialize, Deserialize)]
struct ApiKeyItem {
    key_id: String,
    name: String,
    /// A DynamoDB string set (absent when empty: DynamoDB has no empty sets).
    #[serde(default, with = "serde_dynamo::string_set", skip_serializing_if = "Vec::is_empty")]
    scopes: Vec<String>,
    secret_hash: String,
    #[serde(with = "rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(default, with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
    /// The queues the key may use (a string set; absent: the relay's default queue).
    #[serde(default, with = "serde_dynamo::string_set", skip_serializing_if = "Vec::is_empty")]
    queues: Vec<String>,
}

fn item(r: &ApiKeyRecord) -> Result<Item, StoreError> {
    to_item(&ApiKeyItem {
        key_id: r.key_id.clone(),
        name: r.name.clone(),
        scopes: r.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        secret_hash: r.secret_hash.clone(),
        created_at: r.created_at,
        revoked_at: r.revoked_at,
        queues: r.queues.clone(),
    })
}

fn record(item: Item) -> Result<ApiKeyRecord, StoreError> {
    let stored: ApiKeyItem = from_item(item, "API key item")?;
    let mut scopes = BTreeSet::new();
    for name in stored.scopes {
        match Scope::parse(&name) {
            Some(scope) => {
                scopes.insert(scope);
            }
            // Fail closed: a scope this code does not know grants nothing.
            None => {
                warn!(key_id = %stored.key_id, scope = %name, "API key has an unknown scope; ignored")
            }
        }
    }
    Ok(ApiKeyRecord {
        key_id: stored.key_id,
        name: stored.name,
        scopes,
        secret_hash: stored.secret_hash,
        created_at: stored.created_at,
        revoked_at: stored.revoked_at,
        queues: stored.queues,
    })
}

#[async_trait]
impl ApiKeyStore for DynamoApiKeys {
    async fn get(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        // Strongly consistent: a revocation written a moment ago must be seen.
        let item = get_item(&self.client, &self.table, ("key_id", s(key_id)), Read::Consistent);
        item.await?.map(record).transpose()
    }

    async fn insert(&self, r: &ApiKeyRecord) -> Result<(), StoreError> {
        let put = PutIf::new(&self.table, item(r)?, "attribute_not_exists(key_id)");
        if put.run(&self.client).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("API key {} exists", r.key_id)))
        }
    }

    async fn revoke(&self, key_id: &str, at: DateTime<Utc>) -> Result<RevokeOutcome, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("key_id", s(key_id))
            .update_expression("SET revoked_at = :at")
            .condition_expression("attribute_exists(key_id) AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(RevokeOutcome::Revoked),
            Err(e)
                if condition_failed(&e, UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(match self.get(key_id).await? {
                    None => RevokeOutcome::NotFound,
                    Some(r) => {
                        r.revoked_at.map_or(RevokeOutcome::NotFound, RevokeOutcome::AlreadyRevoked)
                    }
                })
            }
            Err(e) => Err(StoreError::aws("UpdateItem", e)),
        }
    }

    async fn set_queues(&self, key_id: &str, queues: &[String]) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("key_id", s(key_id))
            .condition_expression("attribute_exists(key_id)");
        // DynamoDB has no empty sets: an empty list is the attribute's absence.
        let update = if queues.is_empty() {
            update.update_expression("REMOVE queues")
        } else {
            update.update_expression("SET queues = :q").expression_attribute_values(
                ":q",
                aws_sdk_dynamodb::types::AttributeValue::Ss(queues.to_vec()),
            )
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if condition_failed(&e, UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::aws("UpdateItem", e)),
        }
    }

    async fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        // An operator command over a small table: a paged Scan is fine here.
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::aws("Scan", e))?;
            for i in out.items.unwrap_or_default() {
                keys.push(record(i)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.key_id.cmp(&b.key_id)));
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_unknown_scopes_grant_nothing() {
        let r = ApiKeyRecord {
            key_id: "0123456789abcdef".into(),
            name: "n".into(),
            scopes: [Scope::TicketsRead].into(),
            secret_hash: "ab".repeat(32),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            revoked_at: Some(DateTime::from_timestamp(1_700_000_100, 0).unwrap_or_default()),
            queues: vec!["General".into()],
        };
        let mut i = item(&r).unwrap();
        assert_eq!(
            i.get("scopes"),
            Some(&aws_sdk_dynamodb::types::AttributeValue::Ss(vec!["tickets:read".into()])),
            "scopes are a string set"
        );
        assert_eq!(i.get("revoked_at"), Some(&s("2023-11-14T22:15:00+00:00")));
        assert_eq!(record(i.clone()).unwrap(), r);
        i.insert(
            "scopes".into(),
            aws_sdk_dynamodb::types::AttributeValue::Ss(vec![
                "tickets:read".into(),
                "tickets:admin".into(),
            ]),
        );
        assert_eq!(record(i).unwrap().scopes, [Scope::TicketsRead].into());
    }
}
