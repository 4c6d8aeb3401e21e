//! Paging: `limit` and opaque cursors. Pure. A cursor is base64url JSON carrying the last
//! key of the previous page and a short hash of the query it belongs to, so a cursor made
//! for one filter cannot be replayed against another.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Page size when the client gives none.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 100;
/// Longest cursor accepted (ours are far shorter).
const MAX_CURSOR_LEN: usize = 1024;

/// A bad `limit` or `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// `limit` is not an integer in 1..=100.
    #[error("limit must be an integer from 1 to {MAX_LIMIT}")]
    BadLimit,
    /// The cursor is not one this API issued, or was issued for another query.
    #[error("cursor is invalid or belongs to a different query")]
    BadCursor,
}

/// A validated page request: the size and where to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// 1..=[`MAX_LIMIT`].
    pub limit: u32,
    /// The raw cursor, checked by [`decode`] against the query.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// Parses the `limit` and `cursor` query parameters.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, CursorError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or(CursorError::BadLimit)?,
        };
        let cursor = match cursor {
            None => None,
            Some(c) if c.is_empty() || c.len() > MAX_CURSOR_LEN => {
                return Err(CursorError::BadCursor)
            }
            Some(c) => Some(c.to_owned()),
        };
        Ok(Self { limit, cursor })
    }

    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { limit: limit.clamp(1, MAX_LIMIT), cursor: None }
    }
}

/// The last key of a page, as a cursor carries it. Checked when decoded, so a key with an
/// empty or broken field is a bad cursor (400), never a DynamoDB validation error (503).
pub trait CursorKey: Serialize + DeserializeOwned {
    /// Whether every field holds a value this API could have issued.
    fn is_well_formed(&self) -> bool;
}

/// Where a tickets page ended: the last ticket's id (RT ids start at 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketCursor {
    /// RT ticket id.
    pub id: u64,
}

impl CursorKey for TicketCursor {
    fn is_well_formed(&self) -> bool {
        self.id > 0
    }
}

/// Where a notifications page ended: the last notification's feed position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationCursor {
    /// Feed sort key: `<13-digit creation millis>#<id>`.
    pub seq: String,
    /// Notification id.
    pub id: String,
}

impl CursorKey for NotificationCursor {
    fn is_well_formed(&self) -> bool {
        let Some((millis, id)) = self.seq.split_once('#') else { return false };
        !self.id.is_empty()
            && id == self.id
            && !millis.is_empty()
            && millis.bytes().all(|b| b.is_ascii_digit())
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<K> {
    /// Version.
    v: u8,
    /// Query hash.
    q: String,
    /// Last key of the previous page.
    k: K,
}

fn scope_hash(scope: &str) -> String {
    hex::encode(&Sha256::digest(scope.as_bytes())[..6])
}

/// Encodes `key` as a cursor valid only for `scope` (a string naming the query and filters).
pub fn encode<K: Serialize>(scope: &str, key: &K) -> String {
    let env = Envelope { v: 1, q: scope_hash(scope), k: key };
    // Serializing plain structs of strings and numbers cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&env).unwrap_or_default())
}

/// Decodes a cursor made by [`encode`] for the same `scope`, refusing keys that are not
/// well formed.
pub fn decode<K: CursorKey>(scope: &str, cursor: &str) -> Result<K, CursorError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| CursorError::BadCursor)?;
    let env: Envelope<K> = serde_json::from_slice(&bytes).map_err(|_| CursorError::BadCursor)?;
    if env.v != 1 || env.q != scope_hash(scope) || !env.k.is_well_formed() {
        return Err(CursorError::BadCursor);
    }
    Ok(env.k)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Key = TicketCursor;

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(PageRequest::parse(Some("100"), None).unwrap().limit, 100);
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            assert_eq!(PageRequest::parse(Some(bad), None), Err(CursorError::BadLimit), "{bad}");
        }
    }

    #[test]
    fn cursor_round_trips_within_its_scope_only() {
        let c = encode("tickets|status=open", &Key { id: 7 });
        assert_eq!(decode::<Key>("tickets|status=open", &c).unwrap(), Key { id: 7 });
        assert_eq!(decode::<Key>("tickets|status=new", &c), Err(CursorError::BadCursor));
    }

    #[test]
    fn keys_with_empty_or_broken_fields_are_refused() {
        let note = |seq: &str, id: &str| NotificationCursor { seq: seq.into(), id: id.into() };
        let good = encode("notifications", &note("1700000000001#n-1", "n-1"));
        assert!(decode::<NotificationCursor>("notifications", &good).is_ok());
        for (seq, id) in [
            ("", ""),
            ("", "n-1"),
            ("1700000000001#n-1", ""),
            ("1700000000001#n-2", "n-1"),
            ("#n-1", "n-1"),
            ("17000x0000001#n-1", "n-1"),
            ("1700000000001", "n-1"),
        ] {
            let c = encode("notifications", &note(seq, id));
            assert_eq!(
                decode::<NotificationCursor>("notifications", &c),
                Err(CursorError::BadCursor),
                "{seq:?} {id:?}"
            );
        }
        // Right shape, wrong types or missing fields.
        for raw in [r#"{"seq":1,"id":"n"}"#, r#"{"id":"n"}"#, r#"{}"#] {
            let k: serde_json::Value = serde_json::from_str(raw).unwrap();
            let c = encode("notifications", &k);
            assert_eq!(
                decode::<NotificationCursor>("notifications", &c),
                Err(CursorError::BadCursor)
            );
        }
        let zero = encode("tickets", &TicketCursor { id: 0 });
        assert_eq!(decode::<TicketCursor>("tickets", &zero), Err(CursorError::BadCursor));
    }

    #[test]
    fn garbage_cursors_are_refused() {
        for bad in ["", "!!!", "e30", &"a".repeat(2000)] {
            let parsed = PageRequest::parse(None, Some(bad));
            if let Ok(p) = parsed {
                assert!(
                    decode::<Key>("s", p.cursor.as_deref().unwrap_or_default()).is_err(),
                    "{bad}"
                );
            }
        }
    }
}
