//! Connections opened during init. Before a function asks Lambda for its first event it
//! opens its connections to the services it uses (DynamoDB, RT, the API Gateway Management
//! API), so the first request after a cold start does not pay the TCP and TLS handshakes:
//! a published aws-sdk-dynamodb Lambda measurement put 745 of a first call's 912 ms in the
//! TLS handshake, and 21 ms once a warm-up call ran during init. The DynamoDB call is a
//! signed read of a key no item has ([`Probe`]), so the SDK's first signed request (its
//! credentials, SigV4, endpoint and operation code) is paid during init too: an unsigned
//! `GET /` left `ws-disconnect`'s first request at 1.8x a warm one (docs/PERFORMANCE.md).
//!
//! The calls run concurrently, each bounded by `WARMUP_TIMEOUT_MS` (default 1000; `0`
//! turns warm-up off), and never fail the init: a call that fails or times out is logged
//! and the first request opens its connection itself.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use aws_sdk_dynamodb::{error::DisplayErrorContext, types::AttributeValue};
use aws_types::SdkConfig;

use crate::{
    aws,
    config::{millis, table_variable, ConfigError, FunctionTables, Lookup, RtApi, RtConfig},
    rt::RtClient,
    store::schema::{KeyAttr, TableKind, TABLES, TICKETS_BY_FEED},
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

/// The key a DynamoDB warm-up reads: no item has it (ticket ids are positive numbers, the
/// other tables' ids never hold a space).
pub const PROBE_KEY: &str = "rt-relay warm-up probe";

/// The signed DynamoDB call a function makes during init: a read its role is already
/// granted (`template.yaml`; `tests/tests/template.rs` checks each), of a key no item has.
/// Signed, so the first request finds the credentials, SigV4 signing, the endpoint and the
/// SDK's request and response code paths warm, not only the connection; it costs half a
/// read capacity unit per cold start and finds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GetItem` of [`PROBE_KEY`] in the table.
    Get(TableKind),
    /// `Query` of the table's index (named) for [`PROBE_KEY`], at most one item.
    Query(TableKind, &'static str),
}

impl Probe {
    /// The table the probe reads.
    pub fn table(self) -> TableKind {
        match self {
            Probe::Get(kind) | Probe::Query(kind, _) => kind,
        }
    }
}

/// Each function's warm-up read: the same operation as its first store call where its role
/// allows it (`list-tickets` may only `Query` the tickets indexes).
pub const PROBES: [(&str, Probe); 12] = [
    ("post-ticket", Probe::Get(TableKind::Idempotency)),
    ("get-ticket", Probe::Get(TableKind::Tickets)),
    ("list-tickets", Probe::Query(TableKind::Tickets, TICKETS_BY_FEED)),
    ("list-notifications", Probe::Get(TableKind::Notifications)),
    ("ws-connect", Probe::Get(TableKind::Connections)),
    ("ws-disconnect", Probe::Get(TableKind::Connections)),
    ("ws-default", Probe::Get(TableKind::Connections)),
    ("push-notifications", Probe::Get(TableKind::Connections)),
    ("push-worker", Probe::Get(TableKind::Connections)),
    ("authorizer", Probe::Get(TableKind::ApiKeys)),
    ("rt-sync", Probe::Get(TableKind::Idempotency)),
    ("rt-webhook", Probe::Get(TableKind::Tickets)),
];

/// The warm-up read of `function` (its crate's name), if it has one.
pub fn probe_of(function: &str) -> Option<Probe> {
    PROBES.iter().find(|(f, _)| *f == function).map(|(_, p)| *p)
}

/// [`PROBE_KEY`] as a value of `attr`'s type (`-1` for a number).
fn probe_value(attr: KeyAttr) -> AttributeValue {
    if attr.numeric {
        AttributeValue::N("-1".into())
    } else {
        AttributeValue::S(PROBE_KEY.into())
    }
}

/// Makes `probe` on `table` through the SDK (signed, over the SDK's connection pool, which
/// it opens).
pub fn dynamodb(conf: &SdkConfig, probe: Probe, table: &str) -> Call<'static> {
    let client = aws_sdk_dynamodb::Client::new(conf);
    let table = table.to_owned();
    (
        "dynamodb",
        Box::pin(async move {
            let def = TABLES
                .iter()
                .find(|d| d.kind == probe.table())
                .ok_or_else(|| format!("no schema for {:?}", probe.table()))?;
            match probe {
                Probe::Get(_) => {
                    let out = client
                        .get_item()
                        .table_name(&table)
                        .key(def.hash.name, probe_value(def.hash))
                        .send()
                        .await
                        .map_err(|e| DisplayErrorContext(e).to_string())?;
                    Ok(format!("GetItem {table}: {} item", u8::from(out.item.is_some())))
                }
                Probe::Query(_, index) => {
                    let hash = def
                        .indexes
                        .iter()
                        .find(|i| i.name == index)
                        .ok_or_else(|| format!("{table} has no index {index}"))?
                        .hash;
                    let out = client
                        .query()
                        .table_name(&table)
                        .index_name(index)
                        .key_condition_expression("#k = :v")
                        .expression_attribute_names("#k", hash.name)
                        .expression_attribute_values(":v", probe_value(hash))
                        .limit(1)
                        .send()
                        .await
                        .map_err(|e| DisplayErrorContext(e).to_string())?;
                    Ok(format!("Query {table}/{index}: {} items", out.count))
                }
            }
        }),
    )
}

/// The signed warm-up read of `function`, on the table its variable names.
fn dynamodb_of(function: FunctionTables) -> Result<Call<'static>, String> {
    let probe = probe_of(function.function)
        .ok_or_else(|| format!("no warm-up read for {}", function.function))?;
    let var = table_variable(probe.table());
    let table = std::env::var(var).map_err(|e| format!("{var}: {e}"))?;
    let conf = aws::sdk_config().map_err(|e| e.to_string())?;
    Ok(dynamodb(&conf, probe, &table))
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

/// `rt`'s connection ([`rt`]), then the adapter's own authenticated warm-up call
/// ([`RtClient::warm_up`]) on it: the first request finds RT's per-connection work done and
/// the adapter's caches filled (REST 2.0: queue names, without which a ticket read is two
/// requests to RT).
pub fn rt_adapter(config: &RtConfig, adapter: Arc<dyn RtClient>) -> Call<'static> {
    let (_, connect) = rt(config);
    (
        "rt",
        Box::pin(async move {
            let connected = connect.await?;
            let warmed = adapter.warm_up().await.map_err(|e| e.to_string())?;
            Ok(format!("{connected}; {warmed}"))
        }),
    )
}

/// The services a function warms at init.
#[derive(Debug, Clone)]
pub enum Service {
    /// DynamoDB (every function with a table): its [`Probe`], signed.
    DynamoDb,
    /// RT (`RT_API_URL`; credentials from the secret or the environment): the connection.
    Rt,
    /// RT through the function's own adapter, with its configuration: the connection, then
    /// the adapter's authenticated warm-up ([`rt_adapter`]).
    RtAdapter(RtConfig, Arc<dyn RtClient>),
    /// The API Gateway Management API (`WS_MANAGEMENT_ENDPOINT`).
    ManagementApi,
}

/// The one call a function's `main` makes after building its handler: opens the
/// connections of `function` to `services` (DynamoDB with its signed [`Probe`]), bounded by
/// `WARMUP_TIMEOUT_MS`. Never fails: a configuration the handler did not need, or a call
/// that fails, is logged.
pub async fn at_init(function: FunctionTables, services: &[Service]) {
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
            Service::DynamoDb => dynamodb_of(function),
            Service::Rt => match aws::sdk_config() {
                Ok(sdk) => crate::secret_store::rt_config_from_env(&sdk)
                    .await
                    .map(|c| rt(&c))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Service::RtAdapter(config, adapter) => Ok(rt_adapter(config, adapter.clone())),
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

    #[test]
    fn every_function_with_a_table_reads_one_of_its_own_tables_at_init() {
        for function in FunctionTables::ALL {
            let probe = probe_of(function.function);
            if function.tables.is_empty() {
                assert_eq!(probe, None, "{} has no table to read", function.function);
                continue;
            }
            let probe = probe.unwrap_or_else(|| panic!("{} has no probe", function.function));
            assert!(
                function.tables.contains(&probe.table()),
                "{}: {probe:?} reads a table it is not given",
                function.function
            );
            let def = TABLES.iter().find(|d| d.kind == probe.table()).expect("schema");
            if let Probe::Query(_, index) = probe {
                assert!(def.indexes.iter().any(|i| i.name == index), "{index} exists");
            }
        }
        assert_eq!(probe_of("ws-disconnect"), Some(Probe::Get(TableKind::Connections)));
        assert_eq!(probe_of("rt-sync"), Some(Probe::Get(TableKind::Idempotency)));
    }

    #[test]
    fn the_probe_key_is_no_item_s_key() {
        assert_eq!(
            probe_value(KeyAttr { name: "id", numeric: true }),
            AttributeValue::N("-1".into())
        );
        assert!(PROBE_KEY.contains(' '), "connection, notification and key ids hold no space");
    }

    #[tokio::test(start_paused = true)]
    async fn off_means_no_call_is_made() {
        let warm = WarmUp { timeout: None };
        let started = tokio::time::Instant::now();
        warm.run(vec![("hangs", Box::pin(std::future::pending()))]).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
