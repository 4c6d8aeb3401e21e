//! Connections opened during init. Before a function asks Lambda for its first event it
//! opens its connections to the services it uses (DynamoDB, RT, the API Gateway Management
//! API), so the first request after a cold start does not pay the TCP and TLS handshakes:
//! a published aws-sdk-dynamodb Lambda measurement put 745 of a first call's 912 ms in the
//! TLS handshake, and 21 ms once a warm-up call ran during init.
//!
//! The calls run concurrently, each bounded by `WARMUP_TIMEOUT_MS` (default 1000; `0`
//! turns warm-up off), and never fail the init: a call that fails or times out is logged
//! and the first request opens its connection itself.

use std::{future::Future, pin::Pin, time::Duration};

use aws_sdk_dynamodb::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_types::SdkConfig;

use crate::{
    aws,
    config::{millis, ConfigError, Lookup, RtApi, RtConfig},
};

/// Default bound on each warm-up call.
pub const DEFAULT_WARMUP_TIMEOUT: Duration = Duration::from_millis(1000);

/// One warm-up call: what it warms and the call, answering a short outcome for the log.
pub type Call<'a> =
    (&'static str, Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>);

/// How long each warm-up call may take; `None` when warm-up is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmUp {
    /// The bound on each call, or `None`: no warm-up.
    pub timeout: Option<Duration>,
}

impl WarmUp {
    /// Reads `WARMUP_TIMEOUT_MS` (milliseconds, 0 to 60000; default 1000; 0 = off).
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let timeout = millis(lookup, "WARMUP_TIMEOUT_MS", 0..=60_000, DEFAULT_WARMUP_TIMEOUT)?;
        let timeout = (!timeout.is_zero()).then_some(timeout);
        Ok(Self { timeout })
    }

    /// [`WarmUp::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Runs `calls` concurrently, each within the bound; logs each outcome, never fails.
    pub async fn run(&self, calls: Vec<Call<'_>>) {
        let Some(bound) = self.timeout else { return };
        let started = tokio::time::Instant::now();
        let outcomes =
            futures_util::future::join_all(calls.into_iter().map(|(what, call)| async move {
                let t0 = tokio::time::Instant::now();
                let outcome = tokio::time::timeout(bound, call).await;
                (what, t0.elapsed(), outcome)
            }))
            .await;
        for (what, took, outcome) in outcomes {
            let ms = took.as_secs_f64() * 1000.0;
            match outcome {
                Ok(Ok(answer)) => {
                    tracing::info!(target: "warmup", service = what, ms, answer = %answer, "connection opened during init")
                }
                Ok(Err(error)) => {
                    tracing::warn!(target: "warmup", service = what, ms, error = %error, "warm-up call failed; the first request will connect")
                }
                Err(_) => {
                    tracing::warn!(target: "warmup", service = what, ms, "warm-up call timed out; the first request will connect")
                }
            }
        }
        tracing::debug!(target: "warmup", ms = started.elapsed().as_secs_f64() * 1000.0, "warm-up done");
    }
}

/// Opens the SDK's connection to DynamoDB (`AWS_ENDPOINT_URL`, or the regional endpoint
/// the SDK resolves) with an unsigned `GET /` ([`aws::open_connection`]).
pub fn dynamodb(conf: &SdkConfig) -> Call<'static> {
    let conf = conf.clone();
    (
        "dynamodb",
        Box::pin(async move {
            let url = match conf.endpoint_url() {
                Some(url) => url.to_owned(),
                None => {
                    let region = conf.region().map(|r| r.as_ref().to_owned());
                    let params = Params::builder()
                        .set_region(region)
                        .use_fips(false)
                        .use_dual_stack(false)
                        .build()
                        .map_err(|e| e.to_string())?;
                    let endpoint = DefaultResolver::new()
                        .resolve_endpoint(&params)
                        .await
                        .map_err(|e| e.to_string())?;
                    endpoint.url().to_owned()
                }
            };
            let status = aws::open_connection(&url).await?;
            Ok(format!("HTTP {status}"))
        }),
    )
}

/// Opens the SDK's connection to the API Gateway Management API at `endpoint`.
pub fn management_api(endpoint: &url::Url) -> Call<'static> {
    let url = endpoint.to_string();
    (
        "apigateway-management",
        Box::pin(async move {
            let status = aws::open_connection(&url).await?;
            Ok(format!("HTTP {status}"))
        }),
    )
}

/// Opens the RT client's connection ([`crate::rt::http_client`], one pool per process) with
/// an unauthenticated `GET` of the API's root (`REST/2.0/` or `REST/1.0/`): RT refuses it at
/// once (401, or REST 1.0's `401 Credentials required`), no credential is sent, nothing is
/// read or written, and the TCP and TLS handshakes are done for the first request.
pub fn rt(config: &RtConfig) -> Call<'static> {
    let client = crate::rt::http_client(config);
    let path = match config.api {
        RtApi::Rest2 => "REST/2.0/",
        RtApi::Rest1 => "REST/1.0/",
    };
    let url = config.base_url.join(path);
    (
        "rt",
        Box::pin(async move {
            let client = client.map_err(|e| e.to_string())?;
            let url = url.map_err(|e| e.to_string())?;
            let response = client.get(url).send().await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            // Read to the end so the connection goes back to the pool.
            response.bytes().await.map_err(|e| e.to_string())?;
            Ok(format!("HTTP {status}"))
        }),
    )
}

/// The services a function warms at init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// DynamoDB (every function with a table).
    DynamoDb,
    /// RT (`RT_API_URL`; credentials from the secret or the environment).
    Rt,
    /// The API Gateway Management API (`WS_MANAGEMENT_ENDPOINT`).
    ManagementApi,
}

/// The one call a function's `main` makes after building its handler: opens the
/// connections to `services`, bounded by `WARMUP_TIMEOUT_MS`. Never fails: a configuration
/// the handler did not need, or a call that fails, is logged.
pub async fn at_init(services: &[Service]) {
    let warm = match WarmUp::from_env() {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(target: "warmup", error = %e, "no warm-up");
            return;
        }
    };
    if warm.timeout.is_none() {
        return;
    }
    let mut calls = Vec::new();
    for service in services {
        let call = match service {
            Service::DynamoDb => aws::sdk_config().map(|c| dynamodb(&c)).map_err(|e| e.to_string()),
            Service::Rt => match aws::sdk_config() {
                Ok(sdk) => crate::secret_store::rt_config_from_env(&sdk)
                    .await
                    .map(|c| rt(&c))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Service::ManagementApi => std::env::var("WS_MANAGEMENT_ENDPOINT")
                .map_err(|e| e.to_string())
                .and_then(|u| url::Url::parse(&u).map_err(|e| e.to_string()))
                .map(|u| management_api(&u)),
        };
        match call {
            Ok(call) => calls.push(call),
            Err(e) => {
                tracing::warn!(target: "warmup", service = ?service, error = %e, "not warmed")
            }
        }
    }
    warm.run(calls).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |var| (var == "WARMUP_TIMEOUT_MS").then(|| value.to_owned())
    }

    #[test]
    fn warm_up_is_on_with_a_one_second_bound_by_default() {
        let w = WarmUp::from_lookup(&|_| None).expect("default");
        assert_eq!(w.timeout, Some(Duration::from_millis(1000)));
    }

    #[test]
    fn zero_turns_it_off_and_a_bad_value_is_named() {
        assert_eq!(WarmUp::from_lookup(&with("0")).expect("off").timeout, None);
        assert_eq!(
            WarmUp::from_lookup(&with("250")).expect("set").timeout,
            Some(Duration::from_millis(250))
        );
        let err = WarmUp::from_lookup(&with("soon")).expect_err("refused");
        assert_eq!(err.var, "WARMUP_TIMEOUT_MS");
        assert!(WarmUp::from_lookup(&with("60001")).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_answers_is_cut_at_the_bound_and_init_goes_on() {
        let warm = WarmUp { timeout: Some(Duration::from_millis(1000)) };
        let started = tokio::time::Instant::now();
        let ok: Call<'_> = ("fast", Box::pin(async { Ok("answered".to_owned()) }));
        let hangs: Call<'_> = ("hangs", Box::pin(std::future::pending()));
        warm.run(vec![ok, hangs]).await;
        assert_eq!(started.elapsed(), Duration::from_millis(1000), "bounded, concurrently");
    }

    #[tokio::test(start_paused = true)]
    async fn off_means_no_call_is_made() {
        let warm = WarmUp { timeout: None };
        let started = tokio::time::Instant::now();
        warm.run(vec![("hangs", Box::pin(std::future::pending()))]).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
