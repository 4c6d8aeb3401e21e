//! Who is calling, as the authorizer told API Gateway, and what that caller may touch.
//!
//! The authorizer puts the API key's public id, its scopes and its queue rights in the
//! request's context (`requestContext.authorizer.lambda` on the HTTP API,
//! `requestContext.authorizer` on the WebSocket API), on AWS and in the local gateway alike.
//! Every handler reads them through [`Caller`]:
//!
//! - idempotency records are keyed by (key id, `Idempotency-Key`), so two clients using the
//!   same header value never meet ([`Caller::idempotency_key`]);
//! - a key may create in and read only its queues ([`QueueRights`]; by default the relay's
//!   default queue): anything else is refused on create, 404 on `GET /tickets/{id}`, left
//!   out of lists and pushes;
//! - `requestor` (which makes RT mail an address) needs the `tickets:requestor` scope.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The context field holding the key's public id.
pub const KEY_ID_FIELD: &str = "key_id";
/// The context field holding the key's scopes (space separated).
pub const SCOPES_FIELD: &str = "scopes";
/// The context field holding the key's queues (a JSON array of names; `["*"]` is every
/// queue). A string, because WebSocket authorizer contexts carry only primitives.
pub const QUEUES_FIELD: &str = "queues";
/// The queue list entry that means every queue.
pub const ALL_QUEUES: &str = "*";
/// The scope that allows naming a `requestor` on create.
pub const REQUESTOR_SCOPE: &str = "tickets:requestor";

/// The queues a key may create tickets in and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueRights {
    /// Every queue RT lets the relay use (the key's list is `*`).
    All,
    /// Only these (never empty).
    Only(BTreeSet<String>),
}

impl QueueRights {
    /// Rights from a key's stored list; an empty or absent list means the relay's default
    /// queue only.
    pub fn from_list(list: &[String], default_queue: &str) -> Self {
        if list.iter().any(|q| q == ALL_QUEUES) {
            return QueueRights::All;
        }
        let queues: BTreeSet<String> = list.iter().filter(|q| !q.is_empty()).cloned().collect();
        if queues.is_empty() {
            QueueRights::Only(BTreeSet::from([default_queue.to_owned()]))
        } else {
            QueueRights::Only(queues)
        }
    }

    /// Whether `queue` is one of them.
    pub fn allows(&self, queue: &str) -> bool {
        match self {
            QueueRights::All => true,
            QueueRights::Only(q) => q.contains(queue),
        }
    }

    /// The context value: a JSON array.
    pub fn to_context(&self) -> String {
        let list: Vec<&str> = match self {
            QueueRights::All => vec![ALL_QUEUES],
            QueueRights::Only(q) => q.iter().map(String::as_str).collect(),
        };
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_owned())
    }

    /// The single queue a key is limited to, if it has exactly one.
    pub fn single(&self) -> Option<&str> {
        match self {
            QueueRights::Only(q) if q.len() == 1 => q.iter().next().map(String::as_str),
            _ => None,
        }
    }
}

/// Why a caller may not do what it asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The queue is not one of the key's.
    #[error("this API key may not use queue {0:?}")]
    Queue(String),
    /// `requestor` without the scope that allows it.
    #[error("setting requestor needs an API key with the tickets:requestor scope")]
    Requestor,
    /// A list without `queue` by a key that may read several (but not all) queues.
    #[error("this API key may read several queues: name one with the queue parameter")]
    SeveralQueues,
}

/// The relay's default queue (`RT_DEFAULT_QUEUE`, default `General`), read once: the queue
/// a key without a queue list may use.
pub fn relay_default_queue() -> &'static str {
    static QUEUE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    QUEUE.get_or_init(|| {
        std::env::var("RT_DEFAULT_QUEUE")
            .ok()
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| "General".to_owned())
    })
}

/// The caller of one request: the API key the authorizer admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's public id.
    pub key_id: String,
    /// Its scopes.
    pub scopes: BTreeSet<String>,
    /// Its queues.
    pub queues: QueueRights,
}

impl Caller {
    /// Reads the authorizer's context fields. `None` without a key id (a request the
    /// authorizer did not see: only in-process tests run functions that way). A context
    /// without queue rights (an authorizer from before they existed) gets the default
    /// queue only.
    pub fn from_context(fields: &HashMap<String, Value>, default_queue: &str) -> Option<Self> {
        let key_id = fields.get(KEY_ID_FIELD)?.as_str()?.to_owned();
        let scopes = fields
            .get(SCOPES_FIELD)
            .and_then(Value::as_str)
            .map(|s| s.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let list: Vec<String> = fields
            .get(QUEUES_FIELD)
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        Some(Self { key_id, scopes, queues: QueueRights::from_list(&list, default_queue) })
    }

    /// The caller of an HTTP API request (`requestContext.authorizer.lambda`).
    pub fn from_http(req: &lambda_http::Request, default_queue: &str) -> Option<Self> {
        use lambda_http::{request::RequestContext, RequestExt};
        match req.request_context_ref()? {
            RequestContext::ApiGatewayV2(ctx) => {
                Self::from_context(&ctx.authorizer.as_ref()?.fields, default_queue)
            }
            _ => None,
        }
    }

    /// The queue a list may read: the one asked for if the key may read it; without one,
    /// none for a key that reads every queue, or the key's only queue.
    pub fn list_queue(&self, requested: Option<String>) -> Result<Option<String>, Refusal> {
        match (requested, &self.queues) {
            (Some(q), rights) if !rights.allows(&q) => Err(Refusal::Queue(q)),
            (Some(q), _) => Ok(Some(q)),
            (None, QueueRights::All) => Ok(None),
            (None, rights) => {
                rights.single().map(|q| Some(q.to_owned())).ok_or(Refusal::SeveralQueues)
            }
        }
    }

    /// Whether the key has `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// The idempotency record's key: SHA-256 over the key id and the client's header, so
    /// each API key has its own `Idempotency-Key` space.
    pub fn idempotency_key(&self, header: &str) -> String {
        scoped_idempotency_key(Some(&self.key_id), header)
    }

    /// The queue a create goes to: the requested one, or the key's only queue, or the
    /// relay's default; refused unless the key may use it.
    pub fn create_queue(
        &self,
        requested: Option<&str>,
        default_queue: &str,
    ) -> Result<String, Refusal> {
        let queue = requested.or_else(|| self.queues.single()).unwrap_or(default_queue).to_owned();
        if self.queues.allows(&queue) {
            Ok(queue)
        } else {
            Err(Refusal::Queue(queue))
        }
    }

    /// Refuses a `requestor` unless the key has [`REQUESTOR_SCOPE`].
    pub fn check_requestor(&self, requestor: Option<&str>) -> Result<(), Refusal> {
        match requestor {
            Some(_) if !self.has_scope(REQUESTOR_SCOPE) => Err(Refusal::Requestor),
            _ => Ok(()),
        }
    }
}

/// SHA-256 over the key id (if any) and an `Idempotency-Key`, hex. The id and the header
/// are separated by a byte neither can hold, so no two pairs hash alike.
pub fn scoped_idempotency_key(key_id: Option<&str>, header: &str) -> String {
    let mut h = Sha256::new();
    if let Some(id) = key_id {
        h.update(id.as_bytes());
        h.update([0u8]);
    }
    h.update(header.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn caller(scopes: &str, queues: Option<&str>) -> Caller {
        let mut fields = HashMap::from([
            ("key_id".to_owned(), json!("0123456789abcdef")),
            ("scopes".to_owned(), json!(scopes)),
        ]);
        if let Some(q) = queues {
            fields.insert("queues".into(), json!(q));
        }
        Caller::from_context(&fields, "General").unwrap()
    }

    #[test]
    fn two_keys_never_share_an_idempotency_record() {
        let a = scoped_idempotency_key(Some("aaaaaaaaaaaaaaaa"), "1");
        let b = scoped_idempotency_key(Some("bbbbbbbbbbbbbbbb"), "1");
        assert_ne!(a, b);
        assert_eq!(a, scoped_idempotency_key(Some("aaaaaaaaaaaaaaaa"), "1"));
        assert_ne!(
            scoped_idempotency_key(Some("a"), "b1"),
            scoped_idempotency_key(Some("ab"), "1")
        );
    }

    #[test]
    fn without_a_queue_list_a_key_has_the_default_queue() {
        let c = caller("tickets:write", None);
        assert_eq!(c.queues, QueueRights::Only(BTreeSet::from(["General".to_owned()])));
        assert_eq!(c.create_queue(None, "General"), Ok("General".into()));
        assert_eq!(c.create_queue(Some("Sales"), "General"), Err(Refusal::Queue("Sales".into())));
    }

    #[test]
    fn a_key_creates_and_reads_only_in_its_queues() {
        let c = caller("tickets:write tickets:read", Some(r#"["A","B"]"#));
        assert!(c.queues.allows("A") && c.queues.allows("B") && !c.queues.allows("General"));
        assert_eq!(c.create_queue(Some("B"), "General"), Ok("B".into()));
        assert!(c.create_queue(None, "General").is_err(), "the default is not one of them");
        let one = caller("tickets:write", Some(r#"["A"]"#));
        assert_eq!(one.create_queue(None, "General"), Ok("A".into()), "its only queue");
        let all = caller("tickets:write", Some(r#"["*"]"#));
        assert_eq!(all.queues, QueueRights::All);
        assert_eq!(all.create_queue(Some("Anything"), "General"), Ok("Anything".into()));
        assert_eq!(QueueRights::from_list(&["A".into()], "G").to_context(), r#"["A"]"#);
    }

    #[test]
    fn requestor_needs_its_scope() {
        let writer = caller("tickets:write", None);
        assert_eq!(writer.check_requestor(Some("x@example.com")), Err(Refusal::Requestor));
        assert_eq!(writer.check_requestor(None), Ok(()));
        let trusted = caller("tickets:write tickets:requestor", None);
        assert_eq!(trusted.check_requestor(Some("x@example.com")), Ok(()));
    }

    #[test]
    fn no_key_id_is_no_caller() {
        assert_eq!(Caller::from_context(&HashMap::new(), "General"), None);
    }
}
