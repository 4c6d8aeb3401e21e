//! The authorizer's decision: whether a presented credential is a live key with the
//! scope a route needs. The authorizer Lambda (`crate::handlers::authorizer`) and the local
//! gateway both decide through [`KeyAuthorizer`].

use std::{collections::BTreeSet, sync::Arc};

use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::{
    key::{secret_matches, PresentedKey},
    scopes_text, ApiKeyStore, Scope,
};
use crate::store::StoreError;

/// The key a request was allowed or refused as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Public key id.
    pub key_id: String,
    /// The key's name.
    pub name: String,
    /// Its scopes.
    pub scopes: BTreeSet<Scope>,
    /// Its queue list, as stored (resolved against the default queue by the functions).
    pub queues: Vec<String>,
}

impl Principal {
    /// The authorizer context API Gateway hands to the integration
    /// (`requestContext.authorizer.lambda` on the HTTP API, `requestContext.authorizer`
    /// on the WebSocket API).
    pub fn context(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("key_id".into(), json!(self.key_id));
        m.insert("key_name".into(), json!(self.name));
        m.insert("scopes".into(), json!(scopes_text(&self.scopes)));
        // A JSON array in a string: WebSocket authorizer contexts carry only primitives.
        m.insert(
            crate::tenant::QUEUES_FIELD.into(),
            json!(serde_json::to_string(&self.queues).unwrap_or_else(|_| "[]".into())),
        );
        m
    }
}

/// Why a presented credential is not a live key (for logs; clients learn nothing more than
/// 401/403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// Not of the form `rtr_<id>_<secret>` (or not a Bearer credential).
    Malformed,
    /// Well-formed, but no key has this id.
    UnknownKey,
    /// The id exists, the secret is wrong.
    WrongSecret,
    /// The key was revoked.
    Revoked,
}

impl InvalidReason {
    fn as_str(self) -> &'static str {
        match self {
            InvalidReason::Malformed => "malformed",
            InvalidReason::UnknownKey => "unknown key",
            InvalidReason::WrongSecret => "wrong secret",
            InvalidReason::Revoked => "revoked",
        }
    }
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A live key with the route's scope.
    Allow(Principal),
    /// No credential at all. On AWS, API Gateway answers these 401 itself (the identity
    /// source is missing) without invoking the authorizer.
    Missing,
    /// A credential that is not a live key.
    Invalid(InvalidReason),
    /// A live key without the route's scope (or a route that needs a scope nobody has).
    Forbidden(Principal),
}

/// Decides whether a presented key may use a route. No cache: every call reads the key
/// (strongly consistent), so a revocation is refused on the next request.
#[derive(Debug, Clone)]
pub struct KeyAuthorizer {
    keys: Arc<dyn ApiKeyStore>,
}

/// A hash no secret has, compared when the key id is unknown so both paths do the same work.
const NO_SUCH_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl KeyAuthorizer {
    /// Over any key store.
    pub fn new(keys: Arc<dyn ApiKeyStore>) -> Self {
        Self { keys }
    }

    /// Checks `presented` (from [`http_credential`] or [`ws_credential`]; `None` when the
    /// request carried no credential) against the scope the route needs (`None`: a route
    /// rt-relay does not serve, always refused). Fails only when the key store cannot be read.
    pub async fn authorize(
        &self,
        presented: Option<&str>,
        required: Option<Scope>,
    ) -> Result<Decision, StoreError> {
        let Some(raw) = presented else {
            info!(decision = "missing", "no API key");
            return Ok(Decision::Missing);
        };
        let Some(key) = PresentedKey::parse(raw) else {
            info!(
                decision = "invalid",
                reason = InvalidReason::Malformed.as_str(),
                "API key refused"
            );
            return Ok(Decision::Invalid(InvalidReason::Malformed));
        };
        let record = self.keys.get(key.key_id()).await?;
        let matches = secret_matches(
            record.as_ref().map_or(NO_SUCH_HASH, |r| r.secret_hash.as_str()),
            key.secret(),
        );
        let invalid = match &record {
            None => Some(InvalidReason::UnknownKey),
            Some(_) if !matches => Some(InvalidReason::WrongSecret),
            Some(r) if r.revoked_at.is_some() => Some(InvalidReason::Revoked),
            Some(_) => None,
        };
        if let Some(reason) = invalid {
            info!(decision = "invalid", reason = reason.as_str(), key_id = %key.key_id(), "API key refused");
            return Ok(Decision::Invalid(reason));
        }
        let Some(record) = record else { return Ok(Decision::Invalid(InvalidReason::UnknownKey)) };
        let principal = Principal {
            key_id: record.key_id,
            name: record.name,
            scopes: record.scopes,
            queues: record.queues,
        };
        match required {
            Some(scope) if principal.scopes.contains(&scope) => {
                info!(decision = "allow", key_id = %principal.key_id, scope = scope.as_str(), "API key allowed");
                Ok(Decision::Allow(principal))
            }
            Some(scope) => {
                info!(decision = "forbidden", key_id = %principal.key_id, scope = scope.as_str(), "API key lacks the scope");
                Ok(Decision::Forbidden(principal))
            }
            None => {
                warn!(decision = "forbidden", key_id = %principal.key_id, "no scope is defined for this route");
                Ok(Decision::Forbidden(principal))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::auth::{memory::MemoryApiKeys, mint, RevokeOutcome};

    #[tokio::test]
    async fn decisions_missing_invalid_forbidden_allow_and_revoked_at_once() {
        let store = Arc::new(MemoryApiKeys::new());
        let auth = KeyAuthorizer::new(store.clone());
        let reader = mint(store.as_ref(), "test key", [Scope::TicketsRead].into(), Utc::now())
            .await
            .expect("mint");
        let read = Some(Scope::TicketsRead);

        assert_eq!(auth.authorize(None, read).await.unwrap(), Decision::Missing);
        assert_eq!(
            auth.authorize(Some(""), read).await.unwrap(),
            Decision::Invalid(InvalidReason::Malformed)
        );
        assert_eq!(
            auth.authorize(Some("nonsense"), read).await.unwrap(),
            Decision::Invalid(InvalidReason::Malformed)
        );
        let unknown = format!("rtr_{}_{}", "f".repeat(16), "0".repeat(64));
        assert_eq!(
            auth.authorize(Some(&unknown), read).await.unwrap(),
            Decision::Invalid(InvalidReason::UnknownKey)
        );
        let wrong = format!("rtr_{}_{}", reader.record.key_id, "0".repeat(64));
        assert_eq!(
            auth.authorize(Some(&wrong), read).await.unwrap(),
            Decision::Invalid(InvalidReason::WrongSecret)
        );

        let Decision::Allow(p) = auth.authorize(Some(reader.key()), read).await.unwrap() else {
            panic!("allowed")
        };
        assert_eq!(p.name, "test key");
        assert_eq!(p.context()["scopes"], "tickets:read");
        assert!(matches!(
            auth.authorize(Some(reader.key()), Some(Scope::TicketsWrite)).await.unwrap(),
            Decision::Forbidden(_)
        ));
        assert!(matches!(
            auth.authorize(Some(reader.key()), None).await.unwrap(),
            Decision::Forbidden(_)
        ));

        assert_eq!(
            store.revoke(&reader.record.key_id, Utc::now()).await.unwrap(),
            RevokeOutcome::Revoked
        );
        assert_eq!(
            auth.authorize(Some(reader.key()), read).await.unwrap(),
            Decision::Invalid(InvalidReason::Revoked)
        );
        assert!(matches!(
            store.revoke(&reader.record.key_id, Utc::now()).await.unwrap(),
            RevokeOutcome::AlreadyRevoked(_)
        ));
        assert_eq!(
            store.revoke("0000000000000000", Utc::now()).await.unwrap(),
            RevokeOutcome::NotFound
        );
    }
}
