//! API keys for both APIs: what a key looks like, how it is stored (a hash, never the key),
//! how it is checked (constant time), and which scope each route needs. The authorizer
//! Lambda (`crate::handlers::authorizer`) and the local gateway decide through the same
//! [`KeyAuthorizer`]; the `rt-relay-keys` command mints, lists and revokes keys with [`mint`]
//! and an [`ApiKeyStore`]. The design and AWS's part in it are in docs/ARCHITECTURE.md
//! ("Authentication").
//!
//! A key is `rtr_<key id>_<secret>`: `rtr_`, 16 hex digits of public key id (the table's
//! partition key), `_`, 64 hex digits of secret (32 random bytes from the OS). Only
//! SHA-256(secret) is stored. A slow password hash (bcrypt, argon2) buys nothing here: it
//! protects guessable passwords, and a 256-bit random secret cannot be guessed, so a fast
//! hash is as strong and keeps the per-request authorizer cheap.

use std::{collections::BTreeSet, fmt, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use crate::{
    config::{required, ConfigError, Lookup},
    secret::Secret,
    store::StoreError,
};

pub mod dynamodb;
pub mod memory;

/// What a key may do. Each route needs exactly one scope ([`required_scope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `tickets:write`: `POST /tickets`.
    TicketsWrite,
    /// `tickets:read`: `GET /tickets`, `GET /tickets/{id}`.
    TicketsRead,
    /// `notifications:read`: `GET /notifications` and the WebSocket API (`$connect`).
    NotificationsRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Scope::TicketsWrite, Scope::TicketsRead, Scope::NotificationsRead];

    /// The scope's name, e.g. `tickets:write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TicketsWrite => "tickets:write",
            Scope::TicketsRead => "tickets:read",
            Scope::NotificationsRead => "notifications:read",
        }
    }

    /// The scope with this name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a comma-separated scope list (`tickets:read,notifications:read`), or `all`.
pub fn parse_scopes(list: &str) -> Result<BTreeSet<Scope>, String> {
    if list.trim() == "all" {
        return Ok(Scope::ALL.into_iter().collect());
    }
    let mut scopes = BTreeSet::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let scope = Scope::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown scope {name:?} (known: {}, or all)", known.join(", "))
        })?;
        scopes.insert(scope);
    }
    if scopes.is_empty() {
        return Err("no scopes given".into());
    }
    Ok(scopes)
}

/// Space-separated scope names, as they travel in the authorizer context.
pub fn scopes_text(scopes: &BTreeSet<Scope>) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

/// The scope a route needs, by API Gateway route key (`POST /tickets`, `$connect`, ...).
/// `None` for any other route key: the authorizer refuses those (fail closed).
pub fn required_scope(route_key: &str) -> Option<Scope> {
    match route_key {
        "POST /tickets" => Some(Scope::TicketsWrite),
        "GET /tickets" | "GET /tickets/{id}" => Some(Scope::TicketsRead),
        "GET /notifications" | "$connect" => Some(Scope::NotificationsRead),
        _ => None,
    }
}

/// Every key starts with this, so secret scanners and people can recognise one.
pub const KEY_PREFIX: &str = "rtr_";
/// Random bytes in a key id (16 hex digits).
const KEY_ID_BYTES: usize = 8;
/// Random bytes in a secret (64 hex digits).
const SECRET_BYTES: usize = 32;

/// The WebSocket `$connect` query parameter that carries the key (browsers cannot set
/// headers on a WebSocket handshake).
pub const WS_KEY_PARAM: &str = "api_key";

/// The key inside an `Authorization: Bearer <key>` header value; `None` for any other
/// scheme. The scheme name is case-insensitive (RFC 9110).
pub fn bearer_key(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// The credential in an HTTP API request's `Authorization` header value, for
/// [`KeyAuthorizer::authorize`]: `None` when the header is absent or blank (API Gateway
/// treats both as a missing identity source: 401), the key of a Bearer credential, or `""`
/// for any other scheme (refused as malformed: keys travel only as Bearer credentials).
pub fn http_credential(header: Option<&str>) -> Option<&str> {
    let header = header.map(str::trim).filter(|h| !h.is_empty())?;
    Some(bearer_key(header).unwrap_or(""))
}

/// The credential in a WebSocket `$connect` request's `api_key` query parameter: `None`
/// when absent or blank.
pub fn ws_credential(query_value: Option<&str>) -> Option<&str> {
    query_value.map(str::trim).filter(|v| !v.is_empty())
}

/// A key as a client presented it, split into id and secret. `Debug` hides the secret.
#[derive(Debug)]
pub struct PresentedKey {
    key_id: String,
    secret: Secret,
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl PresentedKey {
    /// Parses `rtr_<16 hex>_<64 hex>`; anything else is `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (key_id, secret) = raw.strip_prefix(KEY_PREFIX)?.split_once('_')?;
        (is_lower_hex(key_id, KEY_ID_BYTES * 2) && is_lower_hex(secret, SECRET_BYTES * 2))
            .then(|| Self { key_id: key_id.to_owned(), secret: Secret::new(secret) })
    }

    /// The public key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// SHA-256 of a secret, hex: what the table stores.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two byte strings in time that depends only on their lengths (here always 32
/// bytes), never on where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `secret` hashes to the stored hex hash, compared in constant time.
fn secret_matches(stored_hash_hex: &str, secret: &Secret) -> bool {
    let computed = Sha256::digest(secret.expose().as_bytes());
    // A stored hash that is not 32 bytes of hex compares against zeros and fails.
    let stored = hex::decode(stored_hash_hex).ok().filter(|b| b.len() == computed.len());
    let stored = stored.unwrap_or_else(|| vec![0; computed.len()]);
    constant_time_eq(&stored, computed.as_slice())
}

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
}

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
    };
    // Random 64-bit ids collide only after billions of keys; the conditional insert
    // turns a collision into an error rather than an overwrite.
    store.insert(&record).await?;
    let key = Secret::new(format!("{KEY_PREFIX}{key_id}_{secret}"));
    Ok(MintedKey { record, key })
}

/// The key a request was allowed or refused as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Public key id.
    pub key_id: String,
    /// The key's name.
    pub name: String,
    /// Its scopes.
    pub scopes: BTreeSet<Scope>,
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

/// Where the authorizer finds the API keys table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeysConfig {
    /// `API_KEYS_TABLE`.
    pub table: String,
}

impl ApiKeysConfig {
    /// Reads `API_KEYS_TABLE` (required).
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        Ok(Self { table: required(lookup, "API_KEYS_TABLE")? })
    }

    /// [`ApiKeysConfig::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }
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

    /// Over the API keys table named by `API_KEYS_TABLE`, built once at cold start.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = ApiKeysConfig::from_env()?;
        let client = crate::store::dynamodb::client_from_env().await;
        Ok(Self::new(Arc::new(dynamodb::DynamoApiKeys::new(client, config.table))))
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
            &key.secret,
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
        let principal =
            Principal { key_id: record.key_id, name: record.name, scopes: record.scopes };
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
    use super::*;
    use crate::auth::memory::MemoryApiKeys;

    fn all() -> BTreeSet<Scope> {
        Scope::ALL.into_iter().collect()
    }

    async fn minted(store: &MemoryApiKeys, scopes: BTreeSet<Scope>) -> MintedKey {
        mint(store, "test key", scopes, Utc::now()).await.expect("mint")
    }

    #[test]
    fn scopes_parse_and_print() {
        assert_eq!(parse_scopes("tickets:read, notifications:read").unwrap().len(), 2);
        assert_eq!(parse_scopes("all").unwrap(), all());
        assert!(parse_scopes("tickets:admin").unwrap_err().contains("tickets:admin"));
        assert!(parse_scopes(" , ").is_err());
        assert_eq!(scopes_text(&all()), "tickets:write tickets:read notifications:read");
    }

    #[test]
    fn every_route_of_both_apis_needs_a_scope_and_others_need_the_impossible() {
        assert_eq!(required_scope("POST /tickets"), Some(Scope::TicketsWrite));
        assert_eq!(required_scope("GET /tickets"), Some(Scope::TicketsRead));
        assert_eq!(required_scope("GET /tickets/{id}"), Some(Scope::TicketsRead));
        assert_eq!(required_scope("GET /notifications"), Some(Scope::NotificationsRead));
        assert_eq!(required_scope("$connect"), Some(Scope::NotificationsRead));
        assert_eq!(required_scope("DELETE /tickets"), None);
        assert_eq!(required_scope("$default"), None);
    }

    #[test]
    fn keys_parse_only_in_their_exact_shape() {
        let good = format!("rtr_{}_{}", "0123456789abcdef", "ab".repeat(32));
        let k = PresentedKey::parse(&good).expect("parses");
        assert_eq!(k.key_id(), "0123456789abcdef");
        assert!(!format!("{k:?}").contains(&"ab".repeat(32)), "Debug hides the secret");
        for bad in [
            "",
            "rtr_",
            "rtr_0123456789abcdef",
            &format!("rtx_0123456789abcdef_{}", "ab".repeat(32)),
            &format!("rtr_0123456789ABCDEF_{}", "ab".repeat(32)),
            &format!("rtr_0123456789abcdef_{}", "ab".repeat(31)),
            &format!("rtr_0123456789abcdef_{}x", "ab".repeat(32)),
            &format!("rtr_0123456789abcdef_{}_", "ab".repeat(32)),
        ] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn bearer_scheme_only() {
        assert_eq!(bearer_key("Bearer abc"), Some("abc"));
        assert_eq!(bearer_key("bearer   abc "), Some("abc"));
        assert_eq!(bearer_key("Basic abc"), None);
        assert_eq!(bearer_key("abc"), None);
        assert_eq!(http_credential(None), None);
        assert_eq!(http_credential(Some("  ")), None);
        assert_eq!(http_credential(Some("Bearer rtr_x")), Some("rtr_x"));
        assert_eq!(
            http_credential(Some("rtr_x")),
            Some(""),
            "a bare key is not a Bearer credential"
        );
        assert_eq!(ws_credential(Some("")), None);
        assert_eq!(ws_credential(Some("rtr_x")), Some("rtr_x"));
    }

    #[test]
    fn constant_time_comparison_agrees_with_equality() {
        // GIVEN digests that differ in the first byte, the last byte, or not at all
        let a = Sha256::digest(b"one");
        let mut first = a;
        first[0] ^= 1;
        let mut last = a;
        last[31] ^= 0x80;
        // THEN only the identical one compares equal
        assert!(constant_time_eq(&a, &a.clone()));
        assert!(!constant_time_eq(&a, &first));
        assert!(!constant_time_eq(&a, &last));
        assert!(!constant_time_eq(&a, &a[..31]), "a length mismatch never matches");
        // AND a stored hash that is not hex never matches
        assert!(!secret_matches("zz", &Secret::new("one")));
        assert!(secret_matches(&secret_hash("one"), &Secret::new("one")));
    }

    #[tokio::test]
    async fn minted_keys_are_stored_as_hashes_only() {
        let store = MemoryApiKeys::new();
        let k = minted(&store, all()).await;
        let key = k.key().to_owned();
        assert!(key.starts_with("rtr_") && key.len() == 4 + 16 + 1 + 64, "{}", key.len());
        let secret = key.rsplit('_').next().unwrap();
        let stored = store.get(&k.record.key_id).await.unwrap().unwrap();
        assert_eq!(stored.secret_hash, secret_hash(secret));
        assert!(!format!("{stored:?}{k:?}").contains(secret), "Debug shows neither secret nor key");
        assert_ne!(minted(&store, all()).await.key(), key, "keys are random");
    }

    #[tokio::test]
    async fn decisions_missing_invalid_forbidden_allow_and_revoked_at_once() {
        let store = Arc::new(MemoryApiKeys::new());
        let auth = KeyAuthorizer::new(store.clone());
        let reader = minted(&store, [Scope::TicketsRead].into()).await;
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
