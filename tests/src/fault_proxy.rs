//! A loopback HTTP proxy that injects faults between rt-relay and a real service (RT, or
//! moto for DynamoDB and its stream). It forwards each request to the upstream unless a
//! rule says otherwise, and can be switched at run time to answer a status of its choice,
//! hang (never answer), or refuse connections (accept and close at once).
//!
//! Every answer carries `Connection: close`, so clients open a new connection per request
//! and a switch takes effect on the very next request (a pooled keep-alive connection would
//! otherwise carry requests past a "refuse").

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use axum::{
    body::{to_bytes, Body, Bytes},
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::Response,
    Router,
};
use rt_relay_shared::{config::Tables, store::dynamodb::DynamoStore};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the upstream and relay its answer.
    PassThrough,
    /// Answer this status, content type and body without contacting the upstream.
    Respond {
        /// HTTP status.
        status: u16,
        /// `Content-Type` of the answer.
        content_type: &'static str,
        /// The body.
        body: String,
    },
    /// Never answer (until the client gives up and closes the connection).
    Hang,
    /// Forward to the upstream, but relay its answer only after this delay: the upstream
    /// DID act, the client may have stopped waiting.
    Slow(Duration),
}

impl Fault {
    /// RT's (Starlet's) plain 500.
    pub fn rt_500() -> Self {
        Fault::Respond {
            status: 500,
            content_type: "text/plain",
            body: "Internal Server Error".into(),
        }
    }

    /// RT's 401 for credentials it no longer accepts.
    pub fn rt_401() -> Self {
        Fault::Respond {
            status: 401,
            content_type: "application/json",
            body: r#"{"message":"Unauthorized"}"#.into(),
        }
    }

    /// DynamoDB's retryable `InternalServerError` (the SDK retries it, then gives up).
    pub fn dynamodb_500() -> Self {
        Fault::Respond {
            status: 500,
            content_type: "application/x-amz-json-1.0",
            body: r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected by the fault proxy"}"#
                .into(),
        }
    }
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Every request.
    Any,
    /// Requests with this method whose path starts with this prefix.
    MethodPath(&'static str, &'static str),
    /// Requests whose header `name` starts with `prefix` (e.g. `x-amz-target`).
    HeaderPrefix(&'static str, &'static str),
    /// Requests whose path starts with the first string and whose body contains the second.
    PathBody(String, String),
}

impl Match {
    /// DynamoDB's `TransactWriteItems`: the write that records a ticket, its notification
    /// and the stored answer together.
    pub const TRANSACT_WRITE: Match =
        Match::HeaderPrefix("x-amz-target", "DynamoDB_20120810.TransactWriteItems");

    fn matches(&self, method: &str, path: &str, headers: &HeaderMap, body: &[u8]) -> bool {
        match self {
            Match::Any => true,
            Match::MethodPath(m, prefix) => {
                method.eq_ignore_ascii_case(m) && path.starts_with(prefix)
            }
            Match::HeaderPrefix(name, prefix) => headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(prefix)),
            Match::PathBody(prefix, needle) => {
                path.starts_with(prefix.as_str())
                    && body.windows(needle.len().max(1)).any(|w| w == needle.as_bytes())
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    when: Match,
    fault: Fault,
    /// How many more requests it applies to; `None` for all.
    remaining: Option<u32>,
}

#[derive(Debug)]
struct Shared {
    upstream: url::Url,
    http: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    refusing: AtomicBool,
    forwarded: AtomicUsize,
    faulted: AtomicUsize,
    refused: AtomicUsize,
    counters: Mutex<Vec<(Match, Arc<AtomicUsize>)>>,
}

impl Shared {
    fn rules(&self) -> MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fault for this request: the first matching rule (using up one of its count).
    fn fault_for(&self, method: &str, path: &str, headers: &HeaderMap, body: &[u8]) -> Fault {
        let mut rules = self.rules();
        let Some(i) = rules.iter().position(|r| r.when.matches(method, path, headers, body)) else {
            return Fault::PassThrough;
        };
        let fault = rules[i].fault.clone();
        if let Some(left) = rules[i].remaining.as_mut() {
            *left -= 1;
            if *left == 0 {
                rules.remove(i);
            }
        }
        fault
    }
}

/// A running proxy; it serves until the test's runtime ends.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (a loopback URL).
    pub async fn start(upstream: &str) -> Self {
        let upstream =
            url::Url::parse(upstream).unwrap_or_else(|e| panic!("upstream {upstream:?}: {e}"));
        assert!(
            matches!(upstream.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
            "the fault proxy only fronts loopback services, not {upstream}"
        );
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("proxy HTTP client");
        let shared = Arc::new(Shared {
            upstream,
            http,
            rules: Mutex::new(Vec::new()),
            refusing: AtomicBool::new(false),
            forwarded: AtomicUsize::new(0),
            faulted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            counters: Mutex::new(Vec::new()),
        });
        let listener =
            TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy on loopback");
        let addr = listener.local_addr().expect("proxy address");
        let app = Router::new().fallback(proxy).with_state(shared.clone());
        let listener = RefusingListener { inner: listener, shared: shared.clone() };
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared, addr }
    }

    /// The proxy's base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A store over `tables` that is DynamoDB through this proxy (in front of moto), with
    /// `base`'s configuration: the SDK's real error and retry path runs.
    pub fn dynamodb_store(&self, base: &aws_sdk_dynamodb::Client, tables: &Tables) -> DynamoStore {
        let conf = base.config().to_builder().endpoint_url(self.url()).build();
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), tables.clone())
    }

    /// From now on every request gets `fault` (replacing all rules); `PassThrough` heals.
    /// Also stops refusing connections.
    pub fn set(&self, fault: Fault) {
        self.shared.refusing.store(false, Ordering::SeqCst);
        let mut rules = self.shared.rules();
        rules.clear();
        if fault != Fault::PassThrough {
            rules.push(Rule { when: Match::Any, fault, remaining: None });
        }
    }

    /// Adds a rule after the existing ones: requests matching `when` get `fault`, for the
    /// next `times` of them (`None`: until the rules are replaced).
    pub fn add_rule(&self, when: Match, fault: Fault, times: Option<u32>) {
        assert_ne!(times, Some(0), "a rule for zero requests");
        self.shared.rules().push(Rule { when, fault, remaining: times });
    }

    /// Refuses connections (accepts and closes each at once, before reading a byte) until
    /// [`FaultProxy::set`] is called.
    pub fn refuse(&self) {
        self.shared.refusing.store(true, Ordering::SeqCst);
    }

    /// Requests relayed to the upstream so far.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Requests answered by a fault (a status or a hang) so far.
    pub fn faulted(&self) -> usize {
        self.shared.faulted.load(Ordering::SeqCst)
    }

    /// Connections refused so far.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Counts, from now on, the requests matching `when` as they arrive (whatever is done
    /// with them): a test waits on the count for proof that a client made its next call.
    pub fn count(&self, when: Match) -> RequestCount {
        let count = Arc::new(AtomicUsize::new(0));
        self.shared.counters.lock().unwrap_or_else(|p| p.into_inner()).push((when, count.clone()));
        RequestCount(count)
    }
}

/// The number of requests that matched a [`FaultProxy::count`].
#[derive(Debug, Clone)]
pub struct RequestCount(Arc<AtomicUsize>);

impl RequestCount {
    /// Matching requests so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A listener that closes connections while the proxy is refusing.
struct RefusingListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for RefusingListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.shared.refusing.load(Ordering::SeqCst) {
                        self.shared.refused.fetch_add(1, Ordering::SeqCst);
                        // Closed before reading a byte: the client's request fails as it
                        // would against a dead server (a reset once it has sent data).
                        drop(stream);
                        continue;
                    }
                    return (stream, addr);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

fn with_close(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn plain(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    with_close(resp)
}

async fn proxy(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = match to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return plain(StatusCode::BAD_REQUEST, "text/plain", "unreadable request body"),
    };
    for (when, count) in shared.counters.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        if when.matches(parts.method.as_str(), parts.uri.path(), &parts.headers, &body) {
            count.fetch_add(1, Ordering::SeqCst);
        }
    }
    let fault = shared.fault_for(parts.method.as_str(), parts.uri.path(), &parts.headers, &body);
    let delay = match fault {
        Fault::PassThrough => None,
        Fault::Slow(d) => Some(d),
        Fault::Respond { status, content_type, body } => {
            shared.faulted.fetch_add(1, Ordering::SeqCst);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return plain(status, content_type, body);
        }
        Fault::Hang => {
            shared.faulted.fetch_add(1, Ordering::SeqCst);
            // Dropped when the client closes the connection.
            return std::future::pending::<Response>().await;
        }
    };
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let Some(resp) = relay(&shared.http, &shared.upstream, &parts, body).await else {
        return plain(StatusCode::BAD_GATEWAY, "text/plain", "fault proxy: upstream unreachable");
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    with_close(resp)
}

/// Sends the request (`parts` and its whole `body`) to `upstream` with `http` and returns
/// the upstream's answer, read whole, with its hop-by-hop headers left out; `None` when
/// the upstream cannot be reached. Shared with the TLS front (`crate::tls_proxy`).
pub(crate) async fn relay(
    http: &reqwest::Client,
    upstream: &url::Url,
    parts: &axum::http::request::Parts,
    body: Bytes,
) -> Option<Response> {
    let path_and_query =
        parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let mut target = upstream.clone();
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query.as_str(), None), |(p, q)| (p, Some(q)));
    target.set_path(path);
    target.set_query(query);
    let mut outbound = http.request(parts.method.clone(), target).body(body);
    for (name, value) in &parts.headers {
        if name != header::HOST
            && name != header::CONNECTION
            && name != header::CONTENT_LENGTH
            && name != header::TRANSFER_ENCODING
        {
            outbound = outbound.header(name, value);
        }
    }
    let upstream = outbound.send().await.ok()?;
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    for (name, value) in &headers {
        if name != header::CONNECTION
            && name != header::CONTENT_LENGTH
            && name != header::TRANSFER_ENCODING
        {
            resp.headers_mut().append(name, value.clone());
        }
    }
    Some(resp)
}
