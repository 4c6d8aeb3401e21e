//! A stored key (everything but the secret) and the trait of the store that keeps them
//! (`dynamodb.rs`: the API keys table; `memory.rs`: a fake).

use std::{collections::BTreeSet, fmt};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Scope;
use crate::store::StoreError;

/// One stored key: everything but the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public id (partition key).
    pub key_id: String,
    /// Who or what the key is for, e.g. `ci-dashboard`.
    pub name: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// When it was minted.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key is refused.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The queues it may create in and read; empty: the relay's default queue only; `*`:
    /// every queue ([`crate::tenant::QueueRights`]).
    pub queues: Vec<String>,
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is not the secret, but it has no business in logs either.
        f.debug_struct("ApiKeyRecord")
            .field("key_id", &self.key_id)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

/// What revoking found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The key was live and is now revoked.
    Revoked,
    /// It had been revoked before, at this time.
    AlreadyRevoked(DateTime<Utc>),
    /// No key has this id.
    NotFound,
}

/// Where keys live (the API keys table, or a fake).
#[async_trait]
pub trait ApiKeyStore: Send + Sync + fmt::Debug {
    /// One key by id, read strongly consistent so a revocation counts at once.
    async fn get(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Stores a new key; `Conflict` if the id exists.
    async fn insert(&self, record: &ApiKeyRecord) -> Result<(), StoreError>;
    /// Marks a key revoked at `at` (kept, for the audit trail).
    async fn revoke(&self, key_id: &str, at: DateTime<Utc>) -> Result<RevokeOutcome, StoreError>;
    /// Every key, live and revoked.
    async fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Replaces a key's queue list; `false` if there is no such key.
    async fn set_queues(&self, key_id: &str, queues: &[String]) -> Result<bool, StoreError>;
}
