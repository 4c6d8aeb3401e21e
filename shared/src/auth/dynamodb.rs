//! The API keys table (`API_KEYS_TABLE`, partition key `key_id`): one item per key with
//! `name`, `scopes` (string set), `secret_hash` (SHA-256 hex), `created_at` and, once
//! revoked, `revoked_at`. The secret itself is never written anywhere.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    error::ProvideErrorMetadata, error::SdkError, types::AttributeValue, Client,
};
use chrono::{DateTime, Utc};
use tracing::warn;

use super::{ApiKeyRecord, ApiKeyStore, RevokeOutcome, Scope};
use crate::store::StoreError;

type Item = HashMap<String, AttributeValue>;

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

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn is_conditional_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

fn item(r: &ApiKeyRecord) -> Item {
    let mut item = Item::from([
        ("key_id".into(), s(&r.key_id)),
        ("name".into(), s(&r.name)),
        (
            "scopes".into(),
            AttributeValue::Ss(r.scopes.iter().map(|s| s.as_str().to_owned()).collect()),
        ),
        ("secret_hash".into(), s(&r.secret_hash)),
        ("created_at".into(), s(r.created_at.to_rfc3339())),
    ]);
    if let Some(at) = r.revoked_at {
        item.insert("revoked_at".into(), s(at.to_rfc3339()));
    }
    item
}

fn text(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::Corrupt(format!("API key attribute {name} missing or not a string"))),
    }
}

fn time(raw: &str, name: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("API key attribute {name} is not RFC 3339")))
}

fn record(item: &Item) -> Result<ApiKeyRecord, StoreError> {
    let key_id = text(item, "key_id")?;
    let names = match item.get("scopes") {
        Some(AttributeValue::Ss(v)) => v.clone(),
        _ => Vec::new(),
    };
    let mut scopes = BTreeSet::new();
    for name in names {
        match Scope::parse(&name) {
            Some(scope) => {
                scopes.insert(scope);
            }
            // Fail closed: a scope this code does not know grants nothing.
            None => warn!(key_id = %key_id, scope = %name, "API key has an unknown scope; ignored"),
        }
    }
    let revoked_at = match item.get("revoked_at") {
        Some(AttributeValue::S(v)) => Some(time(v, "revoked_at")?),
        _ => None,
    };
    Ok(ApiKeyRecord {
        name: text(item, "name")?,
        scopes,
        secret_hash: text(item, "secret_hash")?,
        created_at: time(&text(item, "created_at")?, "created_at")?,
        revoked_at,
        key_id,
    })
}

#[async_trait]
impl ApiKeyStore for DynamoApiKeys {
    async fn get(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key_id", s(key_id))
            // Strongly consistent: a revocation written a moment ago must be seen.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        out.item.as_ref().map(record).transpose()
    }

    async fn insert(&self, r: &ApiKeyRecord) -> Result<(), StoreError> {
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(r)))
            .condition_expression("attribute_not_exists(key_id)")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                Err(StoreError::Conflict(format!("API key {} exists", r.key_id)))
            }
            Err(e) => Err(StoreError::aws("PutItem", e)),
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
            Err(e) if is_conditional_failure(&e) => Ok(match self.get(key_id).await? {
                None => RevokeOutcome::NotFound,
                Some(r) => {
                    r.revoked_at.map_or(RevokeOutcome::NotFound, RevokeOutcome::AlreadyRevoked)
                }
            }),
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
                keys.push(record(&i)?);
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
        };
        let mut i = item(&r);
        assert_eq!(record(&i).unwrap(), r);
        i.insert(
            "scopes".into(),
            AttributeValue::Ss(vec!["tickets:read".into(), "tickets:admin".into()]),
        );
        assert_eq!(record(&i).unwrap().scopes, [Scope::TicketsRead].into());
    }
}
