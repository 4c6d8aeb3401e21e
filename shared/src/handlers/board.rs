//! The web board (`board/`): a single page that lists tickets, creates them and follows the
//! live feed, served by the product itself from files embedded at compile time, so what is
//! served is always what is checked in. `GET /` answers `board/index.html`,
//! `GET /board/{file}` its script and style sheet, and `GET /board/config.json` the one
//! value the page cannot know: the WebSocket API's URL (locally the gateway's own, on AWS
//! the template's `BOARD_WEBSOCKET_URL`). The routes are public: the page asks its user for
//! an API key and sends it on every API call itself.
//!
//! Every answer carries a Content-Security-Policy that allows only this origin's script and
//! style, API calls to this origin and the WebSocket API's origin: no CDN, no inline code,
//! no framing.

use lambda_http::{
    http::{header, HeaderValue, StatusCode},
    Body, Request, Response,
};
use serde_json::json;

use crate::http::{json_response, path_param, ApiError};

/// The environment variable holding the WebSocket API's URL on AWS.
pub const WEBSOCKET_URL_VAR: &str = "BOARD_WEBSOCKET_URL";

/// `board/index.html`.
pub const INDEX_HTML: &str = include_str!("../../../board/index.html");
/// `board/board.js`.
pub const BOARD_JS: &str = include_str!("../../../board/board.js");
/// `board/board.css`.
pub const BOARD_CSS: &str = include_str!("../../../board/board.css");

/// The embedded files under `/board/`, by name, with their content types.
const FILES: &[(&str, &str, &str)] = &[
    ("board.js", "text/javascript; charset=utf-8", BOARD_JS),
    ("board.css", "text/css; charset=utf-8", BOARD_CSS),
];

/// `GET /` and `GET /board/{file}`.
#[derive(Debug, Clone, Default)]
pub struct Board {
    websocket_url: Option<String>,
}

impl Board {
    /// A board whose page connects to `websocket_url` (`wss://…/prod`, `ws://127.0.0.1:3001`).
    pub fn new(websocket_url: Option<String>) -> Self {
        Self { websocket_url: websocket_url.filter(|u| !u.trim().is_empty()) }
    }

    /// The board as its Lambda `main` builds it: the URL from [`WEBSOCKET_URL_VAR`].
    pub fn from_env() -> Self {
        Self::new(std::env::var(WEBSOCKET_URL_VAR).ok())
    }

    /// The WebSocket URL the page is given, if any.
    pub fn websocket_url(&self) -> Option<&str> {
        self.websocket_url.as_deref()
    }

    /// Answers one request: the page without a `file` path parameter, else that file.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let resp = match path_param(&req, "file") {
            None => self.file("text/html; charset=utf-8", INDEX_HTML),
            Some(name) if name == "config.json" => {
                json_response(StatusCode::OK, &json!({ "websocket_url": self.websocket_url }))
            }
            Some(name) => match FILES.iter().find(|(n, _, _)| *n == name) {
                Some((_, content_type, text)) => self.file(content_type, text),
                None => {
                    ApiError::NotFound(format!("the board has no file {name:?}")).into_response()
                }
            },
        };
        self.with_security_headers(resp)
    }

    fn file(&self, content_type: &'static str, text: &'static str) -> Response<Body> {
        let mut resp = Response::new(Body::Text(text.to_owned()));
        *resp.status_mut() = StatusCode::OK;
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp
    }

    /// The policy: this origin only, plus the WebSocket API's origin for `connect-src`.
    fn content_security_policy(&self) -> String {
        let socket_origin = self
            .websocket_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "ws" | "wss"))
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null");
        let connect = match socket_origin {
            Some(origin) => format!("'self' {origin}"),
            None => "'self'".to_owned(),
        };
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    }

    fn with_security_headers(&self, mut resp: Response<Body>) -> Response<Body> {
        let headers = resp.headers_mut();
        if let Ok(csp) = HeaderValue::from_str(&self.content_security_policy()) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        // A new deployment's page is fetched again, never mixed with an old script.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use lambda_http::RequestExt;

    use super::*;

    fn request(file: Option<&str>) -> Request {
        let req = Request::default();
        match file {
            Some(f) => req.with_path_parameters(HashMap::from([("file".to_owned(), f.to_owned())])),
            None => req,
        }
    }

    fn text(resp: &Response<Body>) -> String {
        String::from_utf8_lossy(resp.body().as_ref()).into_owned()
    }

    #[tokio::test]
    async fn serves_the_checked_in_files_with_their_types_and_a_strict_policy() {
        // GIVEN a board whose WebSocket API is on another origin
        let board = Board::new(Some("wss://abc.execute-api.eu-west-1.amazonaws.com/prod".into()));
        // WHEN the page, its script and its style sheet are asked for
        for (file, content_type, body) in [
            (None, "text/html; charset=utf-8", INDEX_HTML),
            (Some("board.js"), "text/javascript; charset=utf-8", BOARD_JS),
            (Some("board.css"), "text/css; charset=utf-8", BOARD_CSS),
        ] {
            let resp = board.handle(request(file)).await;
            // THEN each is the embedded file, byte for byte, under the policy
            assert_eq!(resp.status(), StatusCode::OK, "{file:?}");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], content_type);
            assert_eq!(text(&resp), body);
            let csp = resp.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap_or("");
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(
                csp.contains("connect-src 'self' wss://abc.execute-api.eu-west-1.amazonaws.com;"),
                "{csp}"
            );
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert_eq!(resp.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }

    #[tokio::test]
    async fn the_page_loads_only_its_own_files() {
        // The page names its script and style sheet relative to the API's root, and nothing
        // from another origin (no CDN).
        assert!(INDEX_HTML.contains(r#"src="board/board.js""#));
        assert!(INDEX_HTML.contains(r#"href="board/board.css""#));
        for text in [INDEX_HTML, BOARD_JS, BOARD_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"), "no remote URL");
        }
        // The key is kept in session storage only.
        assert!(BOARD_JS.contains("sessionStorage") && !BOARD_JS.contains("localStorage"));
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_served_files() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/openapi.json")).unwrap_or_default();
        let listed = &doc["paths"]["/board/{file}"]["get"]["parameters"][0]["schema"]["enum"];
        let mut served: Vec<&str> = FILES.iter().map(|(name, _, _)| *name).collect();
        served.push("config.json");
        assert_eq!(*listed, json!(served));
    }

    #[tokio::test]
    async fn config_names_the_websocket_url_and_unknown_files_are_404() {
        let board = Board::new(Some("ws://127.0.0.1:3001".into()));
        let config = board.handle(request(Some("config.json"))).await;
        assert_eq!(config.status(), StatusCode::OK);
        let value: serde_json::Value = serde_json::from_str(&text(&config)).unwrap_or_default();
        assert_eq!(value, json!({"websocket_url": "ws://127.0.0.1:3001"}));
        let csp = config.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap_or("");
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:3001;"), "{csp}");

        let unset = Board::new(Some("  ".into())).handle(request(Some("config.json"))).await;
        assert_eq!(text(&unset), r#"{"websocket_url":null}"#);

        for missing in ["index.html", "../Cargo.toml", "board.js.map", ""] {
            let resp = board.handle(request(Some(missing))).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{missing:?}");
            assert!(text(&resp).contains("not_found"));
        }
    }
}
