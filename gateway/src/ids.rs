//! Random identifiers the gateway hands out: connection ids (URL-safe, so they need no
//! escaping in `@connections/{id}`) and request ids.

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn alphanumeric(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        // A v4 UUID carries 122 random bits from the OS generator (bytes 6 and 8 hold its
        // fixed version and variant bits); rejection sampling keeps characters equally likely.
        for (i, b) in uuid::Uuid::new_v4().into_bytes().into_iter().enumerate() {
            if out.len() == len {
                break;
            }
            if i == 6 || i == 8 {
                continue;
            }
            let b = usize::from(b);
            if b < 248 {
                out.push(char::from(ALPHABET[b % ALPHABET.len()]));
            }
        }
    }
    out
}

/// A fresh WebSocket connection id: 16 random alphanumerics.
pub fn connection_id() -> String {
    alphanumeric(16)
}

/// A fresh request id for an event's `requestContext.requestId`.
pub fn request_id() -> String {
    alphanumeric(20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_are_16_alphanumerics_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| connection_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_alphanumeric())));
    }
}
