//! The local HTTP API: each request becomes an API Gateway HTTP API (payload 2.0) event,
//! goes through `lambda_http`'s own adapter (the code `lambda_http::run` drives on Lambda:
//! event JSON → `LambdaRequest` → `Request`, handler `Response` → `LambdaResponse` JSON), and
//! the function's answer is turned back into HTTP the way API Gateway does it.
//!
//! Routing comes from the routes table (`rt_relay_shared::routes`), which
//! `tests/tests/template.rs` keeps equal to `template.yaml`: the event gets API Gateway's
//! `routeKey` (`GET /tickets/{id}`) and `pathParameters` (`{"id": "42"}`, percent-decoded),
//! and a request path with a trailing slash matches the same route. Anything else gets the
//! API's own JSON error shape (404, or 405 with `Allow`). A route that needs a key first goes
//! through the template's Lambda authorizer (the same handler, the same event JSON), with API
//! Gateway's own 401/403/500 answers; CORS preflights, unknown routes and public routes
//! (`/openapi.json`) need no key.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration, time::Instant};

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2httpResponse,
};
use axum::{
    body::{to_bytes, Body as AxumBody},
    extract::{ConnectInfo, Request as AxumRequest, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    response::Response as AxumResponse,
    Router,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use lambda_http::{request::LambdaRequest, Adapter, Context, LambdaEvent, Service};
use rt_relay_shared::{
    handlers::{authorizer::RequestAuthorizer, HttpHandler},
    http::ApiError,
    routes::{self, Access, Function, Target},
    wiring::{self, HttpPorts},
};
use serde_json::{json, Map, Value};
use tracing::{error, info};

use crate::{ids, limits};

/// API Gateway's payload limit for HTTP APIs (10 MB).
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// API Gateway's integration timeout for HTTP APIs.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// API Gateway's timeout for a Lambda authorizer.
pub const AUTHORIZER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the routes table says about a request (`rt_relay_shared::routes::HttpMatch`).
pub use rt_relay_shared::routes::HttpMatch as Routing;

/// Routes a request from the routes table (`rt_relay_shared::routes::ROUTES`), as API
/// Gateway does: the matched route (its route key and function) with its `pathParameters`,
/// or 405 with `Allow`, or 404. A trailing slash is ignored.
pub fn route(method: &Method, path: &str) -> Routing {
    routes::match_http(method.as_str(), path)
}

/// The HTTP functions, built once like each Lambda's cold start: one handler per function of
/// the routes table, from `rt_relay_shared::wiring::http_handler` (a new HTTP function is
/// wired there, not here).
#[derive(Debug, Clone, Default)]
pub struct HttpFunctions {
    handlers: BTreeMap<&'static str, Arc<dyn HttpHandler>>,
}

impl HttpFunctions {
    /// Every HTTP function of the routes table that `wiring::http_handler` builds, over
    /// `ports` (the RT webhook is added with RT's events, [`Self::insert`]).
    pub fn wire(ports: &HttpPorts) -> Self {
        let handlers = routes::routes_of(routes::Api::Http)
            .filter_map(|r| r.function())
            .filter_map(|f| wiring::http_handler(f, ports).map(|h| (f.name, h)))
            .collect();
        Self { handlers }
    }

    /// Serves `function` with `handler` (replacing any handler it had).
    pub fn insert(&mut self, function: Function, handler: Arc<dyn HttpHandler>) {
        self.handlers.insert(function.name, handler);
    }

    /// Runs `function`'s handler; a function without one is [`NotWired`], except the RT
    /// webhook, which answers 404 when no webhook secret is configured (as a stack without
    /// the function would).
    async fn call(
        &self,
        function: Function,
        req: lambda_http::Request,
    ) -> Result<lambda_http::Response<lambda_http::Body>, NotWired> {
        match self.handlers.get(function.name) {
            Some(handler) => Ok(handler.handle(req).await),
            None if function == routes::RT_WEBHOOK => Ok(ApiError::NotFound(
                "no route for /webhooks/rt (no WEBHOOK_SECRET is configured)".into(),
            )
            .into_response()),
            None => Err(NotWired(function.name)),
        }
    }

    /// Invokes `function` with an API Gateway v2 event (JSON text) exactly as
    /// `lambda_http::run` would, returning the response JSON the runtime would post back.
    pub async fn invoke(
        &self,
        function: Function,
        event: &str,
        request_id: &str,
    ) -> Result<Value, InvokeError> {
        let request: LambdaRequest = serde_json::from_str(event).map_err(InvokeError::BadEvent)?;
        let functions = self.clone();
        let mut adapter =
            Adapter::from(lambda_http::service_fn(move |req: lambda_http::Request| {
                let functions = functions.clone();
                async move { functions.call(function, req).await }
            }));
        let mut context = Context::default();
        context.request_id = request_id.to_owned();
        context.deadline = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
            + u64::try_from(INTEGRATION_TIMEOUT.as_millis()).unwrap_or(0);
        context.invoked_function_arn =
            format!("arn:aws:lambda:local:000000000000:function:{}", function.name);
        let response = adapter.call(LambdaEvent::new(request, context)).await?;
        serde_json::to_value(&response).map_err(InvokeError::BadResponse)
    }
}

/// A function of the routes table that the local gateway has no handler for (a route row
/// added without its arm in `wiring::http_handler`).
#[derive(Debug, thiserror::Error)]
#[error("the local gateway has no handler for function {0}")]
pub struct NotWired(pub &'static str);

/// Why an invocation produced no usable response (API Gateway answers these with 500).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The event did not deserialize as a `LambdaRequest` (a gateway bug).
    #[error("event is not an API Gateway v2 request: {0}")]
    BadEvent(#[source] serde_json::Error),
    /// The function's response could not be serialized or read back.
    #[error("function response is malformed: {0}")]
    BadResponse(#[source] serde_json::Error),
    /// No handler is wired for the function.
    #[error(transparent)]
    NotWired(#[from] NotWired),
}

/// Builds the payload 2.0 event for one request.
pub fn build_event(
    parts: &axum::http::request::Parts,
    body: &[u8],
    route_key: &str,
    path_parameters: &[(String, String)],
    peer: SocketAddr,
    request_id: &str,
    now: DateTime<Utc>,
) -> Value {
    let path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or("");
    let source_ip = peer.ip().to_string();

    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name == header::COOKIE {
            // Payload 2.0 moves cookies out of the headers into their own array.
            cookies.extend(
                values
                    .iter()
                    .flat_map(|v| v.split(';'))
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(Value::as_str) {
        Some(prior) => format!("{prior}, {source_ip}"),
        None => source_ip.clone(),
    };
    headers.insert("x-forwarded-for".into(), json!(forwarded_for));
    headers.insert("x-forwarded-proto".into(), json!("http"));
    let host = headers.get("host").and_then(Value::as_str).unwrap_or("localhost").to_owned();
    if let Some(port) = host.rsplit_once(':').map(|(_, p)| p.to_owned()) {
        headers.insert("x-forwarded-port".into(), json!(port));
    }
    let user_agent = headers.get("user-agent").and_then(Value::as_str).unwrap_or("").to_owned();
    let domain_name = host.split(':').next().unwrap_or("localhost").to_owned();

    // API Gateway joins repeated query parameters with commas.
    let mut query = Map::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(prior)) => {
                prior.push(',');
                prior.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }

    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": domain_name,
            "domainPrefix": domain_name.split('.').next().unwrap_or(""),
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": format!("{:?}", parts.version),
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !path_parameters.is_empty() {
        event["pathParameters"] = path_parameters
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<_, _>>()
            .into();
    }
    set_body(&mut event, body);
    event
}

/// Puts a request body into its event: text as is, anything else base64-encoded.
fn set_body(event: &mut Value, body: &[u8]) {
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => event["body"] = json!(text),
            Err(_) => {
                event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
}

/// A bare API Gateway error (`{"message": ...}`), for failures outside the function.
pub(crate) fn gateway_error(status: StatusCode, message: &str) -> AxumResponse {
    let mut resp = AxumResponse::new(AxumBody::from(json!({ "message": message }).to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Headers a proxy must not copy from the function's response: hyper sets its own framing.
fn is_framing_header(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
}

/// Turns the runtime's response JSON into the HTTP answer, as API Gateway does for payload
/// 2.0: status, headers, `cookies` as `Set-Cookie`, and a base64 body decoded.
pub fn response_from_json(value: Value) -> AxumResponse {
    let parsed: ApiGatewayV2httpResponse = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "function returned a malformed response");
            return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    let Ok(status) = u16::try_from(parsed.status_code)
        .map_err(|_| ())
        .and_then(|c| StatusCode::from_u16(c).map_err(|_| ()))
    else {
        error!(status = parsed.status_code, "function returned an invalid status code");
        return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let body: Vec<u8> = match parsed.body {
        None | Some(lambda_http::Body::Empty) => Vec::new(),
        Some(lambda_http::Body::Text(text)) if parsed.is_base64_encoded => {
            match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                Ok(bytes) => bytes,
                Err(e) => {
                    error!(error = %e, "function returned a body marked base64 that is not");
                    return gateway_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error",
                    );
                }
            }
        }
        Some(lambda_http::Body::Text(text)) => text.into_bytes(),
        Some(lambda_http::Body::Binary(bytes)) => bytes,
        Some(_) => Vec::new(),
    };
    let mut resp = AxumResponse::new(AxumBody::from(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    for (name, value) in parsed.headers.iter().filter(|(n, _)| !is_framing_header(n)) {
        headers.append(name.clone(), value.clone());
    }
    for cookie in &parsed.cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Converts a handler response built outside the adapter (the route table's own errors).
fn direct_response(resp: lambda_http::Response<lambda_http::Body>) -> AxumResponse {
    let (parts, body) = resp.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => Vec::new(),
    };
    let mut out = AxumResponse::new(AxumBody::from(bytes));
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    out
}

/// The payload 2.0 REQUEST authorizer event for a request: the integration event without
/// its body, plus the identity sources the template declares (`$request.header.Authorization`,
/// `$context.routeKey`) and the route ARN.
pub fn build_authorizer_event(
    integration_event: &Value,
    authorization: &str,
    route_key: &str,
) -> Value {
    let mut event = integration_event.clone();
    if let Some(map) = event.as_object_mut() {
        map.remove("body");
        map.remove("isBase64Encoded");
    }
    let method = event
        .pointer("/requestContext/http/method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_owned();
    let path = event.get("rawPath").and_then(Value::as_str).unwrap_or("/").to_owned();
    event["type"] = json!("REQUEST");
    event["identitySource"] = json!([authorization, route_key]);
    event["routeArn"] =
        json!(format!("arn:aws:execute-api:local:000000000000:local/$default/{method}{path}"));
    event
}

/// What the authorizer said about one request.
enum AuthOutcome {
    /// Allowed; the simple response's context, for `requestContext.authorizer.lambda`.
    Allowed(Map<String, Value>),
    /// Refused: the response API Gateway would send.
    Refused(AxumResponse),
}

/// State shared by every HTTP API request.
#[derive(Debug)]
pub struct HttpApi {
    functions: HttpFunctions,
    cors_allow_origin: Option<HeaderValue>,
    authorizer: Option<RequestAuthorizer>,
}

impl HttpApi {
    /// The API over these functions; `cors_allow_origin` as in the template. No API keys are
    /// checked until [`HttpApi::with_authorizer`].
    pub fn new(functions: HttpFunctions, cors_allow_origin: Option<&str>) -> Self {
        Self {
            functions,
            cors_allow_origin: cors_allow_origin.and_then(|o| HeaderValue::from_str(o).ok()),
            authorizer: None,
        }
    }

    /// Puts the template's Lambda authorizer in front of every route, as API Gateway does.
    pub fn with_authorizer(mut self, authorizer: Option<RequestAuthorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// Runs the authorizer as API Gateway does for a payload 2.0 simple-response
    /// authorizer without caching: no `Authorization` header → 401 without invoking it;
    /// `isAuthorized: false` → 403; an error, timeout or malformed answer → 500. The
    /// bodies are API Gateway's own.
    async fn authorize(
        &self,
        authorizer: &RequestAuthorizer,
        parts: &axum::http::request::Parts,
        event: &Value,
        route_key: &str,
    ) -> AuthOutcome {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
        let Some(authorization) = header.filter(|h| !h.is_empty()) else {
            return AuthOutcome::Refused(gateway_error(StatusCode::UNAUTHORIZED, "Unauthorized"));
        };
        let auth_event = build_authorizer_event(event, &authorization, route_key);
        let authorizer = authorizer.clone();
        let call = tokio::spawn(async move { authorizer.handle(auth_event).await });
        let answer = match tokio::time::timeout(AUTHORIZER_TIMEOUT, call).await {
            Ok(Ok(Ok(answer))) => answer,
            Ok(Ok(Err(e))) => {
                error!(error = %e, "authorizer failed");
                return AuthOutcome::Refused(gateway_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                ));
            }
            Ok(Err(join)) => {
                error!(error = %join, "authorizer panicked");
                return AuthOutcome::Refused(gateway_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                ));
            }
            Err(_) => {
                error!("authorizer timed out");
                return AuthOutcome::Refused(gateway_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                ));
            }
        };
        match serde_json::from_value::<ApiGatewayV2CustomAuthorizerSimpleResponse>(answer) {
            Ok(r) if r.is_authorized => {
                AuthOutcome::Allowed(r.context.as_object().cloned().unwrap_or_default())
            }
            Ok(_) => AuthOutcome::Refused(gateway_error(StatusCode::FORBIDDEN, "Forbidden")),
            Err(e) => {
                error!(error = %e, "authorizer answered something other than a simple response");
                AuthOutcome::Refused(gateway_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                ))
            }
        }
    }

    /// The axum router: every path goes through [`route`].
    pub fn router(self) -> Router {
        Router::new().fallback(handle).with_state(Arc::new(self))
    }

    /// CORS as the template's `CorsConfiguration` makes API Gateway answer it.
    fn cors_preflight(&self, headers: &HeaderMap) -> Option<AxumResponse> {
        let origin = self.cors_allow_origin.as_ref()?;
        headers.get(header::ORIGIN)?;
        headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
        let mut resp = AxumResponse::new(AxumBody::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET,POST,OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization,content-type,idempotency-key"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        Some(resp)
    }

    fn add_cors(&self, request_headers: &HeaderMap, resp: &mut AxumResponse) {
        if let (Some(origin), true) =
            (&self.cors_allow_origin, request_headers.contains_key(header::ORIGIN))
        {
            resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            resp.headers_mut().insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("location"),
            );
        }
    }

    async fn serve(&self, peer: SocketAddr, req: AxumRequest, request_id: &str) -> AxumResponse {
        let (parts, body) = req.into_parts();
        if parts.method == Method::OPTIONS {
            if let Some(resp) = self.cors_preflight(&parts.headers) {
                return resp;
            }
        }
        let (route, path_parameters) = match route(&parts.method, parts.uri.path()) {
            Routing::Matched { route, path_parameters } => (route, path_parameters),
            Routing::MethodNotAllowed { allow } => {
                return direct_response(ApiError::MethodNotAllowed { allow }.into_response());
            }
            Routing::NotFound => {
                return direct_response(
                    ApiError::NotFound(format!("no route for {}", parts.uri.path()))
                        .into_response(),
                );
            }
        };
        let function = match route.target {
            Target::Function(function) => function,
            Target::OpenApiDocument => return crate::openapi::document(),
        };
        let route_key = route.route_key();
        if let Some(refused) = limits::declared_body_too_large(&parts.headers, MAX_REQUEST_BYTES) {
            return refused;
        }
        // The key is checked before the body is read: an unauthenticated client cannot make
        // the gateway buffer 10 MB (the authorizer's event carries no body anyway).
        let mut event =
            build_event(&parts, &[], &route_key, &path_parameters, peer, request_id, Utc::now());
        // As on AWS, only routes that need a key have the authorizer in front of them.
        if let (Some(authorizer), Access::Key(_)) = (&self.authorizer, route.access) {
            match self.authorize(authorizer, &parts, &event, &route_key).await {
                AuthOutcome::Allowed(context) => {
                    event["requestContext"]["authorizer"] = json!({ "lambda": context })
                }
                AuthOutcome::Refused(mut resp) => {
                    self.add_cors(&parts.headers, &mut resp);
                    return resp;
                }
            }
        }
        let body = match to_bytes(body, MAX_REQUEST_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
            }
        };
        set_body(&mut event, &body);
        let event = event.to_string();
        if let Some(refused) = limits::oversized_event(&event) {
            return refused;
        }
        // Like Lambda, the function runs to completion even if the gateway stops waiting.
        let functions = self.functions.clone();
        let id = request_id.to_owned();
        let invocation = tokio::spawn(async move { functions.invoke(function, &event, &id).await });
        let mut resp = match tokio::time::timeout(INTEGRATION_TIMEOUT, invocation).await {
            Ok(Ok(Ok(json))) => limits::oversized_function_response(&json, function.name)
                .unwrap_or_else(|| response_from_json(json)),
            Ok(Ok(Err(e))) => {
                error!(error = %e, "invocation failed");
                gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
            Ok(Err(join)) => {
                error!(error = %join, function = function.name, "function panicked");
                gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
            Err(_) => gateway_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        };
        self.add_cors(&parts.headers, &mut resp);
        resp
    }
}

async fn handle(
    State(api): State<Arc<HttpApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: AxumRequest,
) -> AxumResponse {
    let started = Instant::now();
    let request_id = ids::request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut resp = api.serve(peer, req, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(HeaderName::from_static("apigw-requestid"), v);
    }
    info!(
        request_id = %request_id,
        ip = %peer.ip(),
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "http api"
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::RequestExt;

    fn matched(method: Method, path: &str) -> (String, Vec<(String, String)>) {
        match route(&method, path) {
            Routing::Matched { route, path_parameters } => (route.route_key(), path_parameters),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn route_table_matches_the_template_with_and_without_trailing_slash() {
        for path in ["/tickets", "/tickets/"] {
            assert_eq!(matched(Method::POST, path).0, "POST /tickets");
            assert_eq!(matched(Method::GET, path).0, "GET /tickets");
            assert_eq!(
                route(&Method::DELETE, path),
                Routing::MethodNotAllowed { allow: "GET, POST" }
            );
        }
        for path in ["/notifications", "/notifications/"] {
            assert_eq!(matched(Method::GET, path).0, "GET /notifications");
            assert_eq!(route(&Method::POST, path), Routing::MethodNotAllowed { allow: "GET" });
        }
        assert_eq!(
            matched(Method::GET, "/tickets/42"),
            ("GET /tickets/{id}".to_owned(), vec![("id".into(), "42".into())])
        );
        assert_eq!(
            matched(Method::GET, "/tickets/a%20b"),
            ("GET /tickets/{id}".to_owned(), vec![("id".into(), "a b".into())])
        );
        assert_eq!(route(&Method::POST, "/tickets/42"), Routing::MethodNotAllowed { allow: "GET" });
        for path in ["/ticket", "/tickets/1/2", "/notifications/1", "//tickets", ""] {
            assert_eq!(route(&Method::GET, path), Routing::NotFound, "{path}");
        }
        assert_eq!(matched(Method::GET, "/").0, "GET /");
        assert_eq!(matched(Method::GET, "/board/board.js").0, "GET /board/{file}");
        assert_eq!(matched(Method::GET, "/openapi.json/").0, "GET /openapi.json");
        assert_eq!(
            route(&Method::POST, "/openapi.json"),
            Routing::MethodNotAllowed { allow: "GET" }
        );
    }

    /// A concrete request path for a route path: each `{name}` becomes `v-name%20x`.
    fn concrete(path: &str) -> String {
        path.split('/')
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!("v-{name}%20x"),
                None => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The event the gateway builds for a request to `r` at its concrete path.
    fn event_for(r: &routes::Route) -> Value {
        let path = concrete(r.path);
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let Routing::Matched { route, path_parameters } = route(&method, &path) else {
            panic!("{}: {path} is not routed to it", r.route_key())
        };
        assert_eq!(route, r, "{path}");
        let p = parts(r.method, &path, &[("Host", "h")]);
        build_event(&p, b"", &route.route_key(), &path_parameters, peer(), "rid", Utc::now())
    }

    #[test]
    fn every_route_gets_api_gateways_route_key_and_path_parameters() {
        // GIVEN every HTTP route of the table, requested at a concrete path
        for r in routes::routes_of(routes::Api::Http) {
            let event = event_for(r);
            // THEN the event carries its route key, as API Gateway sets it
            assert_eq!(event["routeKey"], r.route_key());
            assert_eq!(event["requestContext"]["routeKey"], r.route_key());
            // AND exactly its parameters, percent-decoded, which the handler reads
            let req = lambda_http::request::from_str(&event.to_string()).unwrap();
            let names: Vec<&str> = r
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            let given = event.get("pathParameters").and_then(Value::as_object);
            assert_eq!(given.map_or(0, |m| m.len()), names.len(), "{}", r.route_key());
            for name in names {
                assert_eq!(
                    req.path_parameters_ref().and_then(|p| p.first(name)),
                    Some(format!("v-{name} x").as_str()),
                    "{}: pathParameters.{name}",
                    r.route_key()
                );
            }
        }
    }

    #[tokio::test]
    async fn every_http_function_of_the_routes_table_is_wired() {
        use rt_relay_shared::{rt::memory::MemoryRt, store::memory::MemoryStore};
        let functions = crate::Functions::new(
            Arc::new(MemoryRt::new()),
            Arc::new(MemoryStore::new()),
            "General".into(),
            Duration::from_secs(5),
        );
        // GIVEN each HTTP route of the table that invokes a function
        let mut invoked = 0;
        for r in routes::routes_of(routes::Api::Http) {
            let Some(function) = r.function() else { continue };
            if routes::NOT_YET_SERVED_LOCALLY.contains(&function) {
                continue;
            }
            // WHEN the gateway invokes it with the event built for it
            let answer = functions.http.invoke(function, &event_for(r).to_string(), "rid").await;
            // THEN a handler answered (no NotWired): wiring::http_handler has its arm
            let json = answer.unwrap_or_else(|e| panic!("{}: {e}", r.route_key()));
            assert!(json["statusCode"].as_i64().is_some(), "{}: {json}", r.route_key());
            invoked += 1;
        }
        assert!(invoked >= 4, "only {invoked} HTTP functions in the table");
        // AND a function without a handler is an invocation error, not a panic
        let missing = functions
            .http
            .invoke(routes::WS_DEFAULT_FN, &event_for(&routes::ROUTES[0]).to_string(), "rid")
            .await;
        assert!(
            matches!(missing, Err(InvokeError::NotWired(NotWired("ws-default")))),
            "{missing:?}"
        );
    }

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> axum::http::request::Parts {
        let mut b = axum::http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:50000".parse().unwrap()
    }

    #[test]
    fn event_has_the_payload_2_0_shape_and_lambda_http_reads_it() {
        let p = parts(
            "GET",
            "/tickets/7?limit=5&status=open&status=new",
            &[
                ("Host", "127.0.0.1:3000"),
                ("User-Agent", "ua/1"),
                ("Cookie", "a=1; b=2"),
                ("X-Custom", "x"),
            ],
        );
        let now = Utc::now();
        let event = build_event(
            &p,
            b"",
            "GET /tickets/{id}",
            &[("id".into(), "7".into())],
            peer(),
            "rid",
            now,
        );
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "GET /tickets/{id}");
        assert_eq!(event["rawPath"], "/tickets/7");
        assert_eq!(event["rawQueryString"], "limit=5&status=open&status=new");
        assert_eq!(event["queryStringParameters"]["status"], "open,new");
        assert_eq!(event["pathParameters"]["id"], "7");
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(event["headers"]["x-custom"], "x");
        assert!(event["headers"].get("cookie").is_none());
        let ctx = &event["requestContext"];
        assert_eq!(ctx["http"]["method"], "GET");
        assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(ctx["http"]["userAgent"], "ua/1");
        assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
        assert_eq!(ctx["stage"], "$default");
        assert_eq!(ctx["requestId"], "rid");
        assert_eq!(ctx["timeEpoch"], now.timestamp_millis());
        assert!(event.get("body").is_none());

        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert_eq!(req.method(), "GET");
        assert_eq!(req.uri().path(), "/tickets/7");
        assert_eq!(req.path_parameters_ref().and_then(|p| p.first("id")), Some("7"));
        assert_eq!(req.query_string_parameters_ref().and_then(|q| q.first("limit")), Some("5"));
        assert_eq!(
            req.query_string_parameters_ref().map(|q| q.all("status").unwrap_or_default().len()),
            Some(2)
        );
        assert_eq!(req.headers()["cookie"], "a=1; b=2");
    }

    #[test]
    fn the_authorizer_event_and_context_have_api_gateways_shapes() {
        let p = parts("POST", "/tickets?x=1", &[("Host", "h"), ("Authorization", "Bearer k")]);
        let mut event = build_event(&p, b"{}", "POST /tickets", &[], peer(), "rid", Utc::now());
        let auth: aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_value(build_authorizer_event(&event, "Bearer k", "POST /tickets"))
                .unwrap();
        assert_eq!(auth.type_.as_deref(), Some("REQUEST"));
        assert_eq!(
            auth.identity_source,
            Some(vec!["Bearer k".to_owned(), "POST /tickets".to_owned()])
        );
        assert_eq!(auth.route_key.as_deref(), Some("POST /tickets"));
        assert_eq!(
            auth.route_arn.as_deref(),
            Some("arn:aws:execute-api:local:000000000000:local/$default/POST/tickets")
        );
        assert_eq!(auth.headers["authorization"], "Bearer k");

        // What the function sees of an allowed request: requestContext.authorizer.lambda.
        event["requestContext"]["authorizer"] =
            json!({ "lambda": { "key_id": "abc", "scopes": "tickets:write" } });
        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        let lambda_http::request::RequestContext::ApiGatewayV2(ctx) = req.request_context() else {
            panic!("v2 context")
        };
        assert_eq!(ctx.authorizer.expect("authorizer").fields["key_id"], "abc");
    }

    #[test]
    fn bodies_are_text_or_base64() {
        let p = parts("POST", "/tickets", &[("Host", "h")]);
        let text =
            build_event(&p, "ação".as_bytes(), "POST /tickets", &[], peer(), "r", Utc::now());
        assert_eq!(text["body"], "ação");
        assert_eq!(text["isBase64Encoded"], false);
        let binary =
            build_event(&p, &[0xff, 0x00, 0xfe], "POST /tickets", &[], peer(), "r", Utc::now());
        assert_eq!(binary["isBase64Encoded"], true);
        let req = lambda_http::request::from_str(&binary.to_string()).unwrap();
        assert_eq!(req.body().as_ref(), &[0xff, 0x00, 0xfe]);
    }

    #[tokio::test]
    async fn responses_come_back_as_api_gateway_returns_them() {
        let text = response_from_json(json!({
            "statusCode": 201, "headers": {"content-type": "application/json", "location": "/tickets/1", "content-length": "999"},
            "multiValueHeaders": {}, "body": "{\"id\":1}", "isBase64Encoded": false, "cookies": ["s=1"]
        }));
        assert_eq!(text.status(), 201);
        assert_eq!(text.headers()["location"], "/tickets/1");
        assert_eq!(text.headers()["set-cookie"], "s=1");
        assert!(text.headers().get("content-length").is_none());
        let body = to_bytes(text.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"{\"id\":1}");

        let binary = response_from_json(json!({
            "statusCode": 200, "headers": {}, "multiValueHeaders": {}, "body": "AP8=", "isBase64Encoded": true, "cookies": []
        }));
        assert_eq!(&to_bytes(binary.into_body(), 1024).await.unwrap()[..], &[0x00, 0xff]);

        let broken = response_from_json(json!({"statusCode": 99999, "cookies": []}));
        assert_eq!(broken.status(), 500);
    }
}
