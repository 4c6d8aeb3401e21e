//! The key format and how a secret is checked. A key is `rtr_<key id>_<secret>`: `rtr_`,
//! 16 hex digits of public key id (the table's partition key), `_`, 64 hex digits of secret
//! (32 random bytes from the OS). Only SHA-256(secret) is stored. A slow password hash
//! (bcrypt, argon2) buys nothing here: it protects guessable passwords, and a 256-bit random
//! secret cannot be guessed, so a fast hash is as strong and keeps the per-request
//! authorizer cheap.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Every key starts with this, so secret scanners and people can recognise one.
pub const KEY_PREFIX: &str = "rtr_";
/// Random bytes in a key id (16 hex digits).
pub(super) const KEY_ID_BYTES: usize = 8;
/// Random bytes in a secret (64 hex digits).
pub(super) const SECRET_BYTES: usize = 32;

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

    /// The secret part, for [`secret_matches`].
    pub(super) fn secret(&self) -> &Secret {
        &self.secret
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
pub(super) fn secret_matches(stored_hash_hex: &str, secret: &Secret) -> bool {
    let computed = Sha256::digest(secret.expose().as_bytes());
    // A stored hash that is not 32 bytes of hex compares against zeros and fails.
    let stored = hex::decode(stored_hash_hex).ok().filter(|b| b.len() == computed.len());
    let stored = stored.unwrap_or_else(|| vec![0; computed.len()]);
    constant_time_eq(&stored, computed.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
