//! The HTTP API's OpenAPI 3 document (`docs/openapi.json`), served by the local gateway at
//! `GET /openapi.json`, byte for byte. It is public: the gateway answers it before any
//! route or API-key check. On AWS the document stays in the repository (no function
//! serves it). `tests/tests/openapi.rs` keeps it true to the route table and to real
//! responses; `scripts/test.sh` runs schemathesis against it.

use axum::{
    body::Body,
    http::{header, HeaderValue, Method, StatusCode},
    response::Response,
};
use rt_relay_shared::http::ApiError;

/// The path the document is served at.
pub const PATH: &str = "/openapi.json";

/// The document, as written in `docs/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// The answer for a request to [`PATH`] (with or without a trailing slash, like every
/// route): the document for `GET`, 405 with `Allow` otherwise. `None` for every other path.
pub fn response(method: &Method, path: &str) -> Option<Response> {
    if path.strip_suffix('/').unwrap_or(path) != PATH {
        return None;
    }
    if *method != Method::GET {
        let (parts, body) =
            ApiError::MethodNotAllowed { allow: "GET" }.into_response().into_parts();
        let bytes: Vec<u8> = match body {
            lambda_http::Body::Text(t) => t.into_bytes(),
            lambda_http::Body::Binary(b) => b,
            _ => Vec::new(),
        };
        let mut resp = Response::new(Body::from(bytes));
        *resp.status_mut() = parts.status;
        *resp.headers_mut() = parts.headers;
        return Some(resp);
    }
    let mut resp = Response::new(Body::from(DOCUMENT));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_json_and_served_only_at_its_path() {
        let doc: serde_json::Value =
            serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let ok = response(&Method::GET, "/openapi.json").expect("served");
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], "application/json");
        assert!(response(&Method::GET, "/openapi.json/").is_some());
        let wrong = response(&Method::POST, "/openapi.json").expect("answered");
        assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(wrong.headers()[header::ALLOW], "GET");
        for other in ["/tickets", "/openapi", "/openapi.json/x", "/docs/openapi.json"] {
            assert!(response(&Method::GET, other).is_none(), "{other}");
        }
    }
}
