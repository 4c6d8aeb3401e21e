//! A stand-in for the API Gateway Management API (`POST /@connections/{id}`) used where a
//! test needs to control each connection's answer: ids starting `gone-` answer 410
//! GoneException, ids in the failing set answer 500, every other id accepts and records
//! what it received.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
    Router,
};

#[derive(Debug, Default)]
struct Inner {
    received: HashMap<String, Vec<String>>,
    failing: HashSet<String>,
    posts: usize,
    /// Added before each answer, to stand in for the network round trip to API Gateway.
    latency: std::time::Duration,
}

/// A running server; dropped servers keep running until the test's runtime ends.
#[derive(Debug, Clone)]
pub struct ConnectionsServer {
    inner: Arc<Mutex<Inner>>,
    /// Base URL to give the SDK as its endpoint, e.g. `http://127.0.0.1:41234`.
    pub url: url::Url,
}

impl ConnectionsServer {
    /// Binds 127.0.0.1 on a free port and serves in the background.
    pub async fn start() -> Self {
        Self::start_with_latency(std::time::Duration::ZERO).await
    }

    /// Like [`ConnectionsServer::start`], answering each post after `latency`.
    pub async fn start_with_latency(latency: std::time::Duration) -> Self {
        let inner = Arc::new(Mutex::new(Inner { latency, ..Inner::default() }));
        let app = Router::new()
            .route("/@connections/{id}", post(post_to_connection))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = url::Url::parse(&format!("http://{}", listener.local_addr().expect("addr")))
            .expect("url");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { inner, url }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `id` answer 500 (or accept again).
    pub fn set_failing(&self, id: &str, failing: bool) {
        let mut st = self.lock();
        if failing {
            st.failing.insert(id.to_owned());
        } else {
            st.failing.remove(id);
        }
    }

    /// Messages `id` accepted, in arrival order.
    pub fn received(&self, id: &str) -> Vec<String> {
        self.lock().received.get(id).cloned().unwrap_or_default()
    }

    /// Connections that accepted at least one message.
    pub fn receivers(&self) -> usize {
        self.lock().received.len()
    }

    /// Posts answered, whatever the answer.
    pub fn posts(&self) -> usize {
        self.lock().posts
    }
}

async fn post_to_connection(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let latency = inner.lock().unwrap_or_else(|p| p.into_inner()).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut st = inner.lock().unwrap_or_else(|p| p.into_inner());
    st.posts += 1;
    if id.starts_with("gone-") {
        return (
            StatusCode::GONE,
            [("x-amzn-errortype", "GoneException"), ("content-type", "application/json")],
            r#"{"message":"connection is gone"}"#,
        )
            .into_response();
    }
    if st.failing.contains(&id) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("x-amzn-errortype", "InternalServerError")],
            "{}",
        )
            .into_response();
    }
    st.received.entry(id).or_default().push(String::from_utf8_lossy(&body).into_owned());
    StatusCode::OK.into_response()
}
