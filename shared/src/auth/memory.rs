//! An in-memory [`ApiKeyStore`] for unit tests and the in-memory gateway, with failure
//! injection for the "key store is down" path.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, MutexGuard,
    },
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ApiKeyRecord, ApiKeyStore, RevokeOutcome};
use crate::store::StoreError;

/// Keys in memory.
#[derive(Debug, Default)]
pub struct MemoryApiKeys {
    keys: Mutex<BTreeMap<String, ApiKeyRecord>>,
    failing: AtomicBool,
}

impl MemoryApiKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `true`, every call fails as if DynamoDB were down.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<String, ApiKeyRecord>>, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::aws(
                "GetItem",
                std::io::Error::other("injected key store failure"),
            ));
        }
        Ok(self.keys.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl ApiKeyStore for MemoryApiKeys {
    async fn get(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.lock()?.get(key_id).cloned())
    }

    async fn insert(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut keys = self.lock()?;
        if keys.contains_key(&record.key_id) {
            return Err(StoreError::Conflict(format!("API key {} exists", record.key_id)));
        }
        keys.insert(record.key_id.clone(), record.clone());
        Ok(())
    }

    async fn revoke(&self, key_id: &str, at: DateTime<Utc>) -> Result<RevokeOutcome, StoreError> {
        let mut keys = self.lock()?;
        Ok(match keys.get_mut(key_id) {
            None => RevokeOutcome::NotFound,
            Some(r) => match r.revoked_at {
                Some(earlier) => RevokeOutcome::AlreadyRevoked(earlier),
                None => {
                    r.revoked_at = Some(at);
                    RevokeOutcome::Revoked
                }
            },
        })
    }

    async fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(self.lock()?.values().cloned().collect())
    }

    async fn set_queues(&self, key_id: &str, queues: &[String]) -> Result<bool, StoreError> {
        Ok(self.lock()?.get_mut(key_id).map(|r| r.queues = queues.to_vec()).is_some())
    }
}
