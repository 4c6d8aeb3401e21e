//! Where a request carries its key: `Authorization: Bearer <key>` on the HTTP API, the
//! `api_key` query parameter of the WebSocket handshake (browsers cannot set headers there).

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
/// [`super::KeyAuthorizer::authorize`]: `None` when the header is absent or blank (API
/// Gateway treats both as a missing identity source: 401), the key of a Bearer credential,
/// or `""` for any other scheme (refused as malformed: keys travel only as Bearer
/// credentials).
pub fn http_credential(header: Option<&str>) -> Option<&str> {
    let header = header.map(str::trim).filter(|h| !h.is_empty())?;
    Some(bearer_key(header).unwrap_or(""))
}

/// The credential in a WebSocket `$connect` request's `api_key` query parameter: `None`
/// when absent or blank.
pub fn ws_credential(query_value: Option<&str>) -> Option<&str> {
    query_value.map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
