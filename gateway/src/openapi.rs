//! The HTTP API's OpenAPI 3 document (`docs/openapi.json`), served by the local gateway at
//! `GET /openapi.json`, byte for byte. It is public: a row of the routes table
//! (`rt_relay_shared::routes`) with no API key. On AWS the document stays in the repository
//! (no function serves it). `tests/tests/openapi.rs` keeps it true to the route table and to real
//! responses; `scripts/test.sh` runs schemathesis against it.

use axum::{
    body::Body,
    http::{header, HeaderValue, StatusCode},
    response::Response,
};

/// The path the document is served at.
pub const PATH: &str = "/openapi.json";

/// The document, as written in `docs/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// The document's answer. The routes table makes [`PATH`] a public `GET` route
/// (`Target::OpenApiDocument`), so the gateway's routing answers other methods (405) and
/// trailing slashes as for every route, and no key is asked for.
pub fn document() -> Response {
    let mut resp = Response::new(Body::from(DOCUMENT));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use rt_relay_shared::routes::{Access, Target};

    use super::*;
    use crate::http_api::{route, Routing};

    #[test]
    fn the_document_is_json_and_served_only_at_its_path() {
        let doc: serde_json::Value =
            serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let ok = document();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], "application/json");
        for path in [PATH, "/openapi.json/"] {
            let Routing::Matched { route, .. } = route(&Method::GET, path) else {
                panic!("{path} is routed")
            };
            assert_eq!((route.target, route.access), (Target::OpenApiDocument, Access::Public));
        }
        assert_eq!(route(&Method::POST, PATH), Routing::MethodNotAllowed { allow: "GET" });
        for other in ["/openapi", "/openapi.json/x", "/docs/openapi.json"] {
            assert_eq!(route(&Method::GET, other), Routing::NotFound, "{other}");
        }
    }
}
