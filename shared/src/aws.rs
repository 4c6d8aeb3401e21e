//! The AWS SDK's configuration, built once per process from the environment Lambda sets,
//! with the SDK's HTTP client running over the shared reqwest + rustls stack ([`crate::net`]).
//!
//! Why not `aws-config`: its provider chain (profile files, SSO, STS web identity, ECS and
//! IMDS credentials) serves machines that are not a Lambda function, and brings its own STS
//! and SSO clients; the SDK's default HTTPS client is a second hyper + rustls client that
//! loads the OS root store. Lambda hands a function its region and its role's credentials
//! as variables: `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`. `AWS_ENDPOINT_URL` (optional) points every client elsewhere (moto,
//! locally). The local gateway, the tools and the tests use the same variables.

use std::time::Duration;

use aws_credential_types::{provider::SharedCredentialsProvider, Credentials};
use aws_smithy_runtime_api::client::{
    behavior_version::BehaviorVersion,
    http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    },
    orchestrator::{HttpRequest, HttpResponse},
    result::ConnectorError,
    runtime_components::RuntimeComponents,
};
use aws_smithy_types::{body::SdkBody, byte_stream::ByteStream};
use aws_types::{region::Region, SdkConfig};

use crate::{
    config::{get, required, ConfigError, Lookup},
    net,
};

/// The SDK configuration from the process environment; fails naming a missing variable.
pub fn sdk_config() -> Result<SdkConfig, ConfigError> {
    sdk_config_from(&|var| std::env::var(var).ok())
}

/// The SDK configuration from `lookup` (tests pass their own).
pub fn sdk_config_from(lookup: Lookup<'_>) -> Result<SdkConfig, ConfigError> {
    let region = get(lookup, "AWS_REGION")
        .or_else(|| get(lookup, "AWS_DEFAULT_REGION"))
        .ok_or(ConfigError { var: "AWS_REGION", problem: "is not set".into() })?;
    let credentials = Credentials::new(
        required(lookup, "AWS_ACCESS_KEY_ID")?,
        required(lookup, "AWS_SECRET_ACCESS_KEY")?,
        get(lookup, "AWS_SESSION_TOKEN"),
        None,
        "environment",
    );
    // Fails here, at start-up, if the TLS set-up (EXTRA_CA_FILE) is wrong.
    net::tls_config()?;
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(http_client());
    if let Some(url) = get(lookup, "AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(url);
    }
    Ok(builder.build())
}

/// The SDK's HTTP client over the shared stack. Every SDK client of the process shares it,
/// and with it one reqwest client (one connection pool) per distinct connect/read timeout
/// pair the SDK asks for; in practice one, [`SDK_TIMEOUTS`], which is also the pool
/// [`open_connection`] warms.
/// A TLS set-up that cannot be made (a bad `EXTRA_CA_FILE`) fails each request with the
/// reason; [`sdk_config`] checks it at start-up.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(ProcessHttpClient)
}

/// The connect and read timeouts the SDK asks its HTTP client for when nothing else is
/// configured (behavior version 2026-01-12 and later: connect 3.1 s, no read timeout).
pub const SDK_TIMEOUTS: (Option<Duration>, Option<Duration>) =
    (Some(Duration::from_millis(3100)), None);

type Timeouts = (Option<Duration>, Option<Duration>);

thread_local! {
    /// This thread's SDK connectors, by timeouts. Per thread rather than per process: a
    /// pooled connection is bound to the tokio runtime that opened it, and a process may run
    /// several runtimes one after another (each `#[tokio::test]` does). A Lambda's `main`
    /// builds, warms and serves on one thread, so the warm-up's connection is still reused.
    static CONNECTORS: std::cell::RefCell<Vec<(Timeouts, SharedHttpConnector)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn connector(key: Timeouts) -> SharedHttpConnector {
    let cached = CONNECTORS.with_borrow(|connectors| {
        connectors.iter().find(|(k, _)| *k == key).map(|(_, c)| c.clone())
    });
    if let Some(c) = cached {
        return c;
    }
    let connector = SharedHttpConnector::new(ReqwestConnector::new(key));
    CONNECTORS.with_borrow_mut(|connectors| connectors.push((key, connector.clone())));
    connector
}

/// Opens (or reuses) a connection of the SDK's pool to `url` with an unsigned `GET`: no
/// AWS API is called, so no permission is needed and nothing is logged in CloudTrail; any
/// HTTP answer (DynamoDB answers `healthy: …`, API Gateway 403) means the TCP and TLS
/// handshakes are done and the connection is pooled for the SDK's first request.
pub async fn open_connection(url: &str) -> Result<u16, String> {
    let request = http::Request::get(url).body(SdkBody::empty()).map_err(|e| e.to_string())?;
    let request = HttpRequest::try_from(request).map_err(|e| e.to_string())?;
    let response = connector(SDK_TIMEOUTS).call(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    // Read to the end: a connection whose answer was not read whole is not pooled.
    ByteStream::new(response.into_body()).collect().await.map_err(|e| e.to_string())?;
    Ok(status)
}

#[derive(Debug)]
struct ProcessHttpClient;

impl HttpClient for ProcessHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        connector((settings.connect_timeout(), settings.read_timeout()))
    }
}

/// Sends the SDK's requests with one reqwest client.
#[derive(Debug)]
struct ReqwestConnector {
    /// `Err` when the client could not be built: every call then reports it.
    client: Result<reqwest::Client, String>,
}

impl ReqwestConnector {
    fn new((connect, read): Timeouts) -> Self {
        let client = net::client_builder().map_err(|e| e.to_string()).and_then(|mut b| {
            if let Some(t) = connect {
                b = b.connect_timeout(t);
            }
            if let Some(t) = read {
                b = b.read_timeout(t);
            }
            // AWS endpoints answer directly; the SDK handles redirects itself where a service
            // uses them (S3), so the HTTP client must not follow them.
            b.redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(Duration::from_secs(50))
                .build()
                .map_err(|e| e.to_string())
        });
        Self { client }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|e| ConnectorError::other(e.into(), None))?;
            send(&client, request).await
        })
    }
}

async fn send(
    client: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let other = |e: Box<dyn std::error::Error + Send + Sync>| ConnectorError::other(e, None);
    let request = request.try_into_http1x().map_err(|e| other(e.into()))?;
    let request = request.map(|body| match body.bytes() {
        // The SDK's DynamoDB and Management API bodies are in memory: send them as they are.
        Some(bytes) => reqwest::Body::from(bytes.to_vec()),
        None => reqwest::Body::wrap(body),
    });
    let request = reqwest::Request::try_from(request).map_err(|e| other(e.into()))?;
    let response = client.execute(request).await.map_err(classify)?;
    let response = http::Response::from(response).map(SdkBody::from_body_1_x);
    HttpResponse::try_from(response).map_err(|e| other(e.into()))
}

/// Maps reqwest's errors onto the kinds the SDK's retry policy knows: timeouts and transport
/// failures (connect, reset, closed) are retried, anything else is not.
fn classify(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lookup_in;

    /// The configuration built from `vars` and a key pair.
    fn config_with_keys(vars: &[(&'static str, &'static str)]) -> SdkConfig {
        let mut all =
            vec![("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "secret")];
        all.extend_from_slice(vars);
        let lookup = lookup_in(&all);
        sdk_config_from(&lookup).expect("builds")
    }

    #[test]
    fn lambda_s_variables_make_the_config() {
        let conf = config_with_keys(&[("AWS_REGION", "eu-west-1"), ("AWS_SESSION_TOKEN", "token")]);
        assert_eq!(conf.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert!(conf.credentials_provider().is_some());
        assert!(conf.http_client().is_some());
        assert_eq!(conf.endpoint_url(), None);
    }

    #[test]
    fn aws_endpoint_url_points_every_client_elsewhere() {
        let conf = config_with_keys(&[
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5055"),
        ]);
        assert_eq!(conf.region().map(|r| r.as_ref()), Some("us-east-1"));
        assert_eq!(conf.endpoint_url(), Some("http://127.0.0.1:5055"));
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = sdk_config_from(&lookup_in(&[("AWS_ACCESS_KEY_ID", "test")])).expect_err("fails");
        assert_eq!(err.var, "AWS_REGION");
        let err = sdk_config_from(&lookup_in(&[("AWS_REGION", "us-east-1")])).expect_err("fails");
        assert_eq!(err.var, "AWS_ACCESS_KEY_ID");
        let err =
            sdk_config_from(&lookup_in(&[("AWS_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "k")]))
                .expect_err("fails");
        assert_eq!(err.var, "AWS_SECRET_ACCESS_KEY");
    }
}
