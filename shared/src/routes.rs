//! The routes table: every route of both APIs, once. Everything else that knows about
//! routes reads it:
//!
//! - the local gateway routes HTTP requests with [`match_http`] (API Gateway's `routeKey` and
//!   `pathParameters`, 404 and 405 with `Allow`) and takes the WebSocket route keys from
//!   [`WS_CONNECT`], [`WS_DISCONNECT`] and [`WS_DEFAULT`];
//! - the authorizer takes each route's scope from [`required_scope`] (through
//!   `crate::auth::required_scope`), refusing any route key not in the table (fail closed);
//! - `tests/tests/template.rs` checks `template.yaml` against it both ways (each row's
//!   function serves exactly that route, with the API-key authorizer on or off as the row
//!   says; nothing else is routed), and `tests/tests/openapi.rs` does the same for
//!   `docs/openapi.json`.
//!
//! **Adding a route** is one row in [`ROUTES`] (plus a [`Function`] constant for a new
//! function), one handler (wired in `crate::wiring::http_handler`, from which the local
//! gateway builds every HTTP function), and the template resource serving it; the tests then demand its
//! `docs/openapi.json` entry. A route without an API key (say an RT webhook
//! `POST /webhooks/rt`, which proves itself with a signature instead) is a row with
//! [`Access::Public`]: the gateway then calls no authorizer for it and the template test
//! wants `Auth: {Authorizer: NONE}` on its event. Replay and subscription routes are rows
//! like the others, with the scope they need.
//!
//! Paths use API Gateway's syntax: literal segments and whole-segment parameters
//! (`/tickets/{id}`). Greedy parameters (`{proxy+}`) are not supported (a unit test refuses
//! them). A request path with one trailing slash matches the same route, as the local gateway
//! always allowed.

use crate::auth::Scope;

/// Which API a route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The HTTP API (payload 2.0).
    Http,
    /// The WebSocket API.
    WebSocket,
}

/// Whether a route needs an API key, and with which scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A live key with this scope, checked by the authorizer before the function runs.
    Key(Scope),
    /// No key: no authorizer runs (API Gateway's `Authorizer: NONE` / `AuthorizationType: NONE`).
    Public,
}

/// A Lambda function of the template: its crate under `functions/` (also the binary and the
/// function's name in invocation contexts) and its logical id in `template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Crate and binary name, e.g. `get-ticket`.
    pub name: &'static str,
    /// Logical id in `template.yaml`, e.g. `GetTicketFunction`.
    pub logical_id: &'static str,
}

/// `functions/post-ticket`.
pub const POST_TICKET: Function =
    Function { name: "post-ticket", logical_id: "PostTicketFunction" };
/// `functions/list-tickets`.
pub const LIST_TICKETS: Function =
    Function { name: "list-tickets", logical_id: "ListTicketsFunction" };
/// `functions/get-ticket`.
pub const GET_TICKET: Function = Function { name: "get-ticket", logical_id: "GetTicketFunction" };
/// `functions/list-notifications`.
pub const LIST_NOTIFICATIONS: Function =
    Function { name: "list-notifications", logical_id: "ListNotificationsFunction" };
/// `functions/rt-webhook`.
pub const RT_WEBHOOK: Function = Function { name: "rt-webhook", logical_id: "RtWebhookFunction" };
/// `functions/board`: the web board's page and files (`board/`).
pub const BOARD: Function = Function { name: "board", logical_id: "BoardFunction" };
/// `functions/ws-connect`.
pub const WS_CONNECT_FN: Function =
    Function { name: "ws-connect", logical_id: "WsConnectFunction" };
/// `functions/ws-disconnect`.
pub const WS_DISCONNECT_FN: Function =
    Function { name: "ws-disconnect", logical_id: "WsDisconnectFunction" };
/// `functions/ws-default`.
pub const WS_DEFAULT_FN: Function =
    Function { name: "ws-default", logical_id: "WsDefaultFunction" };

/// What answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A Lambda function (deployed by the template).
    Function(Function),
    /// The OpenAPI document, served by the local gateway only (on AWS it stays in the
    /// repository, so the template has no such route).
    OpenApiDocument,
}

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Which API.
    pub api: Api,
    /// HTTP method (`GET`, `POST`, ...); empty for WebSocket routes.
    pub method: &'static str,
    /// HTTP path in API Gateway syntax (`/tickets/{id}`), or the WebSocket route key
    /// (`$connect`).
    pub path: &'static str,
    /// What answers it.
    pub target: Target,
    /// Key and scope it needs.
    pub access: Access,
}

impl Route {
    const fn http(method: &'static str, path: &'static str, f: Function, scope: Scope) -> Self {
        Self {
            api: Api::Http,
            method,
            path,
            target: Target::Function(f),
            access: Access::Key(scope),
        }
    }

    const fn public_get(path: &'static str, f: Function) -> Self {
        Self {
            api: Api::Http,
            method: "GET",
            path,
            target: Target::Function(f),
            access: Access::Public,
        }
    }

    const fn ws(route_key: &'static str, f: Function, access: Access) -> Self {
        Self {
            api: Api::WebSocket,
            method: "",
            path: route_key,
            target: Target::Function(f),
            access,
        }
    }

    /// API Gateway's route key: `GET /tickets/{id}`, or `$connect`.
    pub fn route_key(&self) -> String {
        match self.api {
            Api::Http => format!("{} {}", self.method, self.path),
            Api::WebSocket => self.path.to_owned(),
        }
    }

    /// The function serving it, if any.
    pub fn function(&self) -> Option<Function> {
        match self.target {
            Target::Function(f) => Some(f),
            Target::OpenApiDocument => None,
        }
    }

    /// The scope it needs; `None` for a public route.
    pub fn scope(&self) -> Option<Scope> {
        match self.access {
            Access::Key(scope) => Some(scope),
            Access::Public => None,
        }
    }
}

/// `$connect`: the handshake, where the key is checked (the `api_key` query parameter).
pub const WS_CONNECT: Route =
    Route::ws("$connect", WS_CONNECT_FN, Access::Key(Scope::NotificationsRead));
/// `$disconnect`: no authorizer (API Gateway allows none on it; the connection was checked).
pub const WS_DISCONNECT: Route = Route::ws("$disconnect", WS_DISCONNECT_FN, Access::Public);
/// `$default`: client messages on an admitted connection; no authorizer.
pub const WS_DEFAULT: Route = Route::ws("$default", WS_DEFAULT_FN, Access::Public);

/// Every route of both APIs. Add new routes here (see the module docs).
pub const ROUTES: &[Route] = &[
    Route::http("POST", "/tickets", POST_TICKET, Scope::TicketsWrite),
    Route::http("GET", "/tickets", LIST_TICKETS, Scope::TicketsRead),
    Route::http("GET", "/tickets/{id}", GET_TICKET, Scope::TicketsRead),
    Route::http("GET", "/notifications", LIST_NOTIFICATIONS, Scope::NotificationsRead),
    // RT's scrip signs the call (HMAC-SHA256, checked by the function): no API key.
    Route {
        api: Api::Http,
        method: "POST",
        path: "/webhooks/rt",
        target: Target::Function(RT_WEBHOOK),
        access: Access::Public,
    },
    // The web board: a page and its files; it asks its user for a key and sends it itself.
    Route::public_get("/", BOARD),
    Route::public_get("/board/{file}", BOARD),
    Route {
        api: Api::Http,
        method: "GET",
        path: "/openapi.json",
        target: Target::OpenApiDocument,
        access: Access::Public,
    },
    WS_CONNECT,
    WS_DISCONNECT,
    WS_DEFAULT,
];

/// Functions with a row in [`ROUTES`] that the local gateway does not serve yet and
/// `docs/openapi.json` does not document yet. The gateway answers them 500 (no handler);
/// tests name them by this list instead of skipping silently. Empty it as each one is wired.
pub const NOT_YET_SERVED_LOCALLY: &[Function] = &[];

/// The routes of one API.
pub fn routes_of(api: Api) -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().filter(move |r| r.api == api)
}

/// The route with this API Gateway route key (`POST /tickets`, `$connect`).
pub fn by_route_key(route_key: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| match r.api {
        Api::Http => route_key.split_once(' ').is_some_and(|(m, p)| m == r.method && p == r.path),
        Api::WebSocket => route_key == r.path,
    })
}

/// The scope a route key needs. `None` for a public route and for any route key not in
/// the table: the authorizer refuses both (public routes never reach it).
pub fn required_scope(route_key: &str) -> Option<Scope> {
    by_route_key(route_key).and_then(Route::scope)
}

/// What the table says about an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpMatch {
    /// A route matched.
    Matched {
        /// The route.
        route: &'static Route,
        /// Its parameters from the request path (`{id}` → `42`), percent-decoded, in path
        /// order: API Gateway's `pathParameters`.
        path_parameters: Vec<(String, String)>,
    },
    /// Routes have this path, none with this method.
    MethodNotAllowed {
        /// Their methods, sorted, comma-separated (`GET, POST`).
        allow: &'static str,
    },
    /// No route has this path.
    NotFound,
}

/// Matches `path` against a route path; its parameters when it matches.
fn match_path(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    let mut params = Vec::new();
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) => match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !s.is_empty() => params.push((name.to_owned(), percent_decode(s))),
                Some(_) => return None,
                None if p == s => {}
                None => return None,
            },
            _ => return None,
        }
    }
}

/// How specific a route path is: literal segments beat parameters, left to right (API
/// Gateway picks the most specific match, so `/tickets/search` would beat `/tickets/{id}`).
fn specificity(pattern: &str) -> Vec<bool> {
    pattern.split('/').map(|s| !s.starts_with('{')).collect()
}

/// Percent-decodes a path segment (`+` stays a plus: it means a space only in queries).
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The `Allow` value of every HTTP route path, computed once from [`ROUTES`].
fn allow_of(pattern: &str) -> &'static str {
    static ALLOW: std::sync::OnceLock<Vec<(&'static str, String)>> = std::sync::OnceLock::new();
    let table = ALLOW.get_or_init(|| {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for r in routes_of(Api::Http) {
            if out.iter().any(|(p, _)| *p == r.path) {
                continue;
            }
            let mut methods: Vec<&str> =
                routes_of(Api::Http).filter(|o| o.path == r.path).map(|o| o.method).collect();
            methods.sort_unstable();
            methods.dedup();
            out.push((r.path, methods.join(", ")));
        }
        out
    });
    table.iter().find(|(p, _)| *p == pattern).map_or("", |(_, allow)| allow.as_str())
}

/// Routes an HTTP request as API Gateway does, from [`ROUTES`]: of the routes with this
/// method whose path matches (one trailing slash ignored), the most specific; 405 with the
/// `Allow` of the most specific matching path when only other methods match.
pub fn match_http(method: &str, path: &str) -> HttpMatch {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    let matching =
        || routes_of(Api::Http).filter_map(|r| match_path(r.path, path).map(|params| (r, params)));
    let best =
        matching().filter(|(r, _)| r.method == method).max_by_key(|(r, _)| specificity(r.path));
    if let Some((route, path_parameters)) = best {
        return HttpMatch::Matched { route, path_parameters };
    }
    match matching().max_by_key(|(r, _)| specificity(r.path)) {
        Some((other, _)) => HttpMatch::MethodNotAllowed { allow: allow_of(other.path) },
        None => HttpMatch::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_well_formed() {
        let mut keys = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(keys.insert(r.route_key()), "{} is in the table twice", r.route_key());
            match r.api {
                Api::Http => {
                    assert!(
                        ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&r.method),
                        "{}",
                        r.route_key()
                    );
                    assert!(
                        r.path == "/" || (r.path.starts_with('/') && !r.path.ends_with('/')),
                        "{}",
                        r.path
                    );
                    for segment in r.path.split('/').skip(1).filter(|_| r.path != "/") {
                        assert!(!segment.is_empty(), "{}: empty segment", r.path);
                        let param = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
                        assert!(
                            param.is_none_or(|p| !p.is_empty() && !p.ends_with('+')),
                            "{}: only whole-segment, non-greedy parameters",
                            r.path
                        );
                    }
                }
                Api::WebSocket => {
                    assert!(r.method.is_empty() && !r.path.contains(' '), "{}", r.path);
                    assert!(
                        r.function().is_some(),
                        "{}: WebSocket routes invoke functions",
                        r.path
                    );
                }
            }
        }
    }

    #[test]
    fn scopes_come_from_the_table_and_unknown_route_keys_have_none() {
        assert_eq!(required_scope("POST /tickets"), Some(Scope::TicketsWrite));
        assert_eq!(required_scope("GET /tickets/{id}"), Some(Scope::TicketsRead));
        assert_eq!(required_scope("$connect"), Some(Scope::NotificationsRead));
        for refused in ["GET /openapi.json", "$default", "DELETE /tickets", "", "GET", "/tickets"] {
            assert_eq!(required_scope(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn http_requests_match_routes_with_parameters_and_trailing_slashes() {
        let HttpMatch::Matched { route, path_parameters } = match_http("GET", "/tickets/a%20b/")
        else {
            panic!("matched")
        };
        assert_eq!(route.route_key(), "GET /tickets/{id}");
        assert_eq!(path_parameters, vec![("id".to_owned(), "a b".to_owned())]);
        assert_eq!(
            match_http("DELETE", "/tickets"),
            HttpMatch::MethodNotAllowed { allow: "GET, POST" }
        );
        assert_eq!(
            match_http("POST", "/openapi.json"),
            HttpMatch::MethodNotAllowed { allow: "GET" }
        );
        let HttpMatch::Matched { route, .. } = match_http("GET", "/") else { panic!("the board") };
        assert_eq!((route.path, route.access), ("/", Access::Public));
        for path in ["", "/tickets//", "/tickets/1/2", "//tickets", "/Tickets"] {
            assert_eq!(match_http("GET", path), HttpMatch::NotFound, "{path:?}");
        }
    }

    #[test]
    fn literal_segments_beat_parameters() {
        assert_eq!(
            specificity("/tickets/search").cmp(&specificity("/tickets/{id}")),
            std::cmp::Ordering::Greater
        );
        assert_eq!(match_path("/a/{x}/c/{y}", "/a/1/c/2").unwrap().len(), 2);
        assert_eq!(match_path("/a/{x}", "/a/"), None);
    }
}
