//! A loopback TLS front for a plain-HTTP service (RT, moto), with its own throw-away CA:
//! the cold-start benchmark and `tests/tests/tls_stack.rs` put one before RT and one
//! before moto so the functions pay real TLS handshakes, as they do against RT's and AWS's
//! HTTPS endpoints. It terminates TLS, keeps the client's connection alive like DynamoDB
//! and API Gateway do, and relays each request to the upstream (moto itself closes every
//! connection after one answer, which a raw byte pipe would pass on to the client).
//!
//! The functions trust the CA through `EXTRA_CA_FILE` (`rt_relay_shared::net`), the same
//! root-loading path they use in production: [`TlsCa::pem_file`] writes it.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    body::{to_bytes, Bytes},
    extract::{Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Router,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::{
    pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    ServerConfig,
};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};

use crate::fault_proxy::relay;

/// A throw-away certificate authority and one server certificate it issued for
/// `127.0.0.1` and `localhost`.
#[derive(Debug)]
pub struct TlsCa {
    ca_pem: String,
    server: Arc<ServerConfig>,
}

impl TlsCa {
    /// Makes a new CA and server certificate (ECDSA P-256), in memory.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "rt-relay benchmark CA (test only)");
        let ca = CertifiedIssuer::self_signed(ca, ca_key).expect("self-signed CA");

        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        params.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        let cert = params.signed_by(&key, &ca).expect("server certificate");

        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], private)
            .expect("server TLS config");
        Self { ca_pem: ca.pem(), server: Arc::new(server) }
    }

    /// Writes the CA certificate (PEM) to a fresh file under the temp dir and returns its
    /// path, for `EXTRA_CA_FILE`.
    pub fn pem_file(&self) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "rt-relay-test-ca-{}-{}.pem",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::write(&path, &self.ca_pem).expect("write the CA file");
        path
    }

    /// Starts a TLS front on 127.0.0.1 for the plain-HTTP service at `upstream` (a
    /// loopback `http://` URL such as `RT_URL` or `AWS_ENDPOINT_URL`).
    pub async fn proxy(&self, upstream: &str) -> TlsProxy {
        let upstream =
            url::Url::parse(upstream).unwrap_or_else(|e| panic!("upstream {upstream:?}: {e}"));
        assert!(
            matches!(upstream.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
            "the TLS front only fronts loopback services, not {upstream}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("relay HTTP client");
        let app = Router::new().fallback(forward).with_state(Arc::new((http, upstream)));
        let listener = TlsListener {
            inner: listener,
            acceptor: TlsAcceptor::from(self.server.clone()),
            handshakes: handshakes.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TlsProxy { addr, handshakes, task }
    }
}

impl Default for TlsCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A running TLS front; stops when dropped.
#[derive(Debug)]
pub struct TlsProxy {
    addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TlsProxy {
    /// `https://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// TLS handshakes completed so far: one per client connection.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts TCP connections and completes each one's TLS handshake before handing it to
/// the HTTP server; a failed handshake (a client that does not trust the CA) is dropped.
struct TlsListener {
    inner: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.inner.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let handshake = self.acceptor.accept(stream);
            // Bounded, so a client that stalls mid-handshake cannot stop the front.
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                self.handshakes.fetch_add(1, Ordering::SeqCst);
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

async fn forward(State(target): State<Arc<(reqwest::Client, url::Url)>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, 64 * 1024 * 1024).await else {
        return (StatusCode::BAD_REQUEST, "unreadable request body").into_response();
    };
    let body: Bytes = body;
    match relay(&target.0, &target.1, &parts, body).await {
        Some(resp) => resp,
        None => (StatusCode::BAD_GATEWAY, "TLS front: upstream unreachable").into_response(),
    }
}
