//! Minting keys (`rt-relay-keys mint`): a random id and secret, the secret's hash stored,
//! the full key shown once.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{
    key::{secret_hash, KEY_ID_BYTES, KEY_PREFIX, SECRET_BYTES},
    ApiKeyRecord, ApiKeyStore, Scope,
};
use crate::{secret::Secret, store::StoreError};

/// A freshly minted key: the one moment the full key exists on our side. `Debug` hides it.
#[derive(Debug)]
pub struct MintedKey {
    /// What was stored.
    pub record: ApiKeyRecord,
    key: Secret,
}

impl MintedKey {
    /// The full key, to show the operator once.
    pub fn key(&self) -> &str {
        self.key.expose()
    }
}

/// Why minting failed.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The name is empty, too long or has control characters.
    #[error("the key name must be 1 to 100 characters without control characters")]
    BadName,
    /// No scopes.
    #[error("a key needs at least one scope")]
    NoScopes,
    /// The OS gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The table refused the write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn random_hex(bytes: usize) -> Result<String, MintError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| MintError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// Mints a key named `name` with `scopes` and stores its hash.
pub async fn mint(
    store: &dyn ApiKeyStore,
    name: &str,
    scopes: BTreeSet<Scope>,
    now: DateTime<Utc>,
) -> Result<MintedKey, MintError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(MintError::BadName);
    }
    if scopes.is_empty() {
        return Err(MintError::NoScopes);
    }
    let key_id = random_hex(KEY_ID_BYTES)?;
    let secret = random_hex(SECRET_BYTES)?;
    let record = ApiKeyRecord {
        key_id: key_id.clone(),
        name: name.to_owned(),
        scopes,
        secret_hash: secret_hash(&secret),
        created_at: now,
        revoked_at: None,
        queues: Vec::new(),
    };
    // Random 64-bit ids collide only after billions of keys; the conditional insert
    // turns a collision into an error rather than an overwrite.
    store.insert(&record).await?;
    let key = Secret::new(format!("{KEY_PREFIX}{key_id}_{secret}"));
    Ok(MintedKey { record, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::memory::MemoryApiKeys;

    fn all() -> BTreeSet<Scope> {
        Scope::ALL.into_iter().collect()
    }

    #[tokio::test]
    async fn minted_keys_are_stored_as_hashes_only() {
        let store = MemoryApiKeys::new();
        let k = mint(&store, "test key", all(), Utc::now()).await.expect("mint");
        let key = k.key().to_owned();
        assert!(key.starts_with("rtr_") && key.len() == 4 + 16 + 1 + 64, "{}", key.len());
        let secret = key.rsplit('_').next().unwrap();
        let stored = store.get(&k.record.key_id).await.unwrap().unwrap();
        assert_eq!(stored.secret_hash, secret_hash(secret));
        assert!(!format!("{stored:?}{k:?}").contains(secret), "Debug shows neither secret nor key");
        let again = mint(&store, "test key", all(), Utc::now()).await.expect("mint");
        assert_ne!(again.key(), key, "keys are random");
    }

    #[tokio::test]
    async fn mint_refuses_bad_names_and_empty_scopes() {
        let store = MemoryApiKeys::new();
        assert!(matches!(mint(&store, " ", all(), Utc::now()).await, Err(MintError::BadName)));
        assert!(matches!(mint(&store, "a\nb", all(), Utc::now()).await, Err(MintError::BadName)));
        assert!(matches!(
            mint(&store, "ok", BTreeSet::new(), Utc::now()).await,
            Err(MintError::NoScopes)
        ));
    }
}
