//! API keys for both APIs: what a key looks like, how it is stored (a hash, never the key),
//! how it is checked (constant time), and which scope each route needs. The authorizer
//! Lambda (`crate::handlers::authorizer`) and the local gateway decide through the same
//! [`KeyAuthorizer`]; the `rt-relay-keys` command mints, lists and revokes keys with [`mint()`]
//! and an [`ApiKeyStore`]. The design and AWS's part in it are in docs/ARCHITECTURE.md
//! ("Authentication").
//!
//! - [`key`]: the key format (`rtr_<id>_<secret>`), hashing, constant-time checks;
//! - [`scope`]: scopes, and each route's scope from the routes table (`crate::routes`);
//! - [`credential`]: where a request carries its key (Bearer header, `api_key` parameter);
//! - [`record`]: a stored key and the [`ApiKeyStore`] trait ([`dynamodb`], [`memory`]);
//! - [`mint`](mod@mint): minting keys;
//! - [`decide`]: [`KeyAuthorizer`], the authorizer's decision.

pub mod credential;
pub mod decide;
pub mod dynamodb;
pub mod key;
pub mod memory;
pub mod mint;
pub mod record;
pub mod scope;

pub use credential::{bearer_key, http_credential, ws_credential, WS_KEY_PARAM};
pub use decide::{Decision, InvalidReason, KeyAuthorizer, Principal};
pub use key::{constant_time_eq, secret_hash, PresentedKey, KEY_PREFIX};
pub use mint::{mint, MintError, MintedKey};
pub use record::{ApiKeyRecord, ApiKeyStore, RevokeOutcome};
pub use scope::{parse_scopes, required_scope, scopes_text, Scope};
