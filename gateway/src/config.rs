//! The gateway's configuration, read once from the environment (or a lookup function in
//! tests). Everything binds to loopback: the HTTP and WebSocket APIs elsewhere only when
//! explicitly allowed ([`ALLOW_NON_LOOPBACK_VAR`]), `@connections` never (it checks no
//! IAM signatures). The RT and table settings are the same variables the Lambda functions
//! read.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use rt_relay_shared::{
    config::{get, integer, millis, ConfigError, Lookup, RtConfig, Tables},
    events::{settings::webhook_secret_from_lookup, sync::SyncSettings},
    feed::FeedSettings,
    secret::Secret,
};
use url::Url;

/// Default HTTP API address.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:3000";
/// Default WebSocket API address.
pub const DEFAULT_WS_ADDR: &str = "127.0.0.1:3001";
/// Default `@connections` (Management API) address; always loopback.
pub const DEFAULT_MANAGEMENT_ADDR: &str = "127.0.0.1:3002";
/// Set to `1` (or `true`) to let the HTTP and WebSocket APIs bind beyond loopback (the
/// binary's `--allow-non-loopback` sets it too).
pub const ALLOW_NON_LOOPBACK_VAR: &str = "GATEWAY_ALLOW_NON_LOOPBACK";
/// Default table name prefix; names come from [`Tables::with_prefix`].
pub const DEFAULT_TABLE_PREFIX: &str = "rt-relay-local-";
/// Default stream checkpoint file.
pub const DEFAULT_CHECKPOINT: &str = ".run/stream-checkpoint.json";

fn addr(lookup: Lookup<'_>, var: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
    let raw = get(lookup, var).unwrap_or_else(|| default.to_owned());
    raw.parse().map_err(|_| ConfigError { var, problem: format!("must be IP:PORT, got {raw:?}") })
}

/// How the gateway reads the notifications table's stream, mirroring the template's event
/// source mapping (`BatchSize: 100`, `MaximumRetryAttempts: 5`, `MaximumRecordAgeInSeconds:
/// 900`, INSERT-only filter, `ReportBatchItemFailures`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// The DynamoDB Streams endpoint (moto: `AWS_ENDPOINT_URL`).
    pub endpoint: Url,
    /// Region named in the request's credential scope.
    pub region: String,
    /// Access key named in the credential scope (moto picks the account from it).
    pub access_key_id: String,
    /// Where the per-shard checkpoint is kept between runs.
    pub checkpoint_path: PathBuf,
    /// Pause between polls when the stream has nothing new.
    pub poll_interval: Duration,
    /// Records per batch (1..=1000; Lambda's default and the template's value is 100).
    pub batch_size: u32,
    /// Retries of a failing batch before it goes to the on-failure destination.
    pub max_retries: u32,
    /// First retry delay; doubled on each further retry, capped at 5 s.
    pub retry_backoff: Duration,
    /// Records older than this are not pushed (stale news), like `MaximumRecordAgeInSeconds`.
    pub max_record_age: Duration,
}

impl StreamSettings {
    /// Settings with the template's values for `endpoint`.
    pub fn new(endpoint: Url, checkpoint_path: PathBuf) -> Self {
        Self {
            endpoint,
            region: "us-east-1".into(),
            access_key_id: "test".into(),
            checkpoint_path,
            poll_interval: Duration::from_millis(150),
            batch_size: 100,
            max_retries: 5,
            retry_backoff: Duration::from_millis(200),
            max_record_age: Duration::from_secs(900),
        }
    }
}

/// WebSocket API behaviour, with API Gateway's limits as defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// Stage name put in events (the template's `WebSocketStageName`).
    pub stage: String,
    /// A connection with no traffic either way for this long is closed (API Gateway: 10 min).
    pub idle_timeout: Duration,
    /// A connection is closed after this long in any case (API Gateway: 2 h).
    pub max_lifetime: Duration,
    /// Largest client message (API Gateway: 128 KB).
    pub max_message_bytes: usize,
    /// Largest client frame (API Gateway: 32 KB).
    pub max_frame_bytes: usize,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            stage: "local".into(),
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(2 * 3600),
            max_message_bytes: 128 * 1024,
            max_frame_bytes: 32 * 1024,
        }
    }
}

/// Refuses listen addresses the gateway must not use: `@connections` beyond loopback
/// (anyone who reaches it can push to or close any connection: on AWS it needs an IAM
/// signature, which this stand-in does not check), and the APIs beyond loopback unless
/// `allow_non_loopback` (the API keys are checked, but this is a development server).
pub fn check_listen_addrs(
    http: SocketAddr,
    ws: SocketAddr,
    management: SocketAddr,
    allow_non_loopback: bool,
) -> Result<(), ConfigError> {
    if !management.ip().is_loopback() {
        return Err(ConfigError {
            var: "GATEWAY_MANAGEMENT_ADDR",
            problem: format!(
                "must be a loopback address, got {management}: @connections checks no signatures"
            ),
        });
    }
    for (var, addr) in [("GATEWAY_HTTP_ADDR", http), ("GATEWAY_WS_ADDR", ws)] {
        if !addr.ip().is_loopback() && !allow_non_loopback {
            return Err(ConfigError {
                var,
                problem: format!(
                    "{addr} is not a loopback address; the local gateway is a development \
                     server: set {ALLOW_NON_LOOPBACK_VAR}=1 (or pass --allow-non-loopback) to \
                     serve beyond this machine anyway"
                ),
            });
        }
    }
    Ok(())
}

/// RT's own events, locally: the webhook route and the sync, run on a timer instead of
/// an EventBridge schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    /// `WEBHOOK_SECRET`; without it `POST /webhooks/rt` answers 404.
    pub webhook_secret: Option<Secret>,
    /// Pause between sync runs (`GATEWAY_SYNC_INTERVAL_MS`, default 2000); `None` (0)
    /// turns the sync off.
    pub sync_interval: Option<Duration>,
    /// The sync's bounds (`RT_SYNC_*`).
    pub sync: SyncSettings,
}

/// Everything [`crate::Gateway::start`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// HTTP API listen address (`127.0.0.1:0` picks a free port).
    pub http_addr: SocketAddr,
    /// WebSocket API listen address.
    pub ws_addr: SocketAddr,
    /// `@connections` (Management API) listen address, loopback only.
    pub management_addr: SocketAddr,
    /// Whether the HTTP and WebSocket APIs may bind beyond loopback.
    pub allow_non_loopback: bool,
    /// DynamoDB table names.
    pub tables: Tables,
    /// How to reach RT.
    pub rt: RtConfig,
    /// The stream poller.
    pub stream: StreamSettings,
    /// WebSocket behaviour.
    pub ws: WsSettings,
    /// The feed's rules (`FEED_SETTLE_MS`, `FEED_RETENTION_DAYS`, `WS_RECONNECT_AFTER_SECS`),
    /// as the Lambda functions read them.
    pub feed: FeedSettings,
    /// Posts in flight at once in the push function (`PUSH_CONCURRENCY`).
    pub push_concurrency: usize,
    /// Open WebSockets one API key may hold (`MAX_CONNECTIONS_PER_KEY`, as `ws-connect`).
    pub max_connections_per_key: usize,
    /// `Access-Control-Allow-Origin` for the HTTP API (the template's `CorsAllowOrigin`);
    /// `None` disables CORS handling.
    pub cors_allow_origin: Option<String>,
    /// RT's own events: webhook and sync.
    pub events: EventSettings,
    /// The fan-out queue and its event source ([`crate::sqs::FanoutSettings`]).
    pub fanout: crate::sqs::FanoutSettings,
}

impl GatewayConfig {
    /// Reads `GATEWAY_HTTP_ADDR` (default 127.0.0.1:3000), `GATEWAY_WS_ADDR`
    /// (127.0.0.1:3001), `GATEWAY_MANAGEMENT_ADDR` (127.0.0.1:3002, loopback only),
    /// `GATEWAY_ALLOW_NON_LOOPBACK` (off; see [`check_listen_addrs`]), `TABLE_PREFIX` (`rt-relay-local-`), the `RT_*` variables
    /// ([`RtConfig::from_lookup`]), `AWS_ENDPOINT_URL` (required: the local DynamoDB and
    /// Streams endpoint), `AWS_REGION` (us-east-1), `GATEWAY_CHECKPOINT`
    /// (`.run/stream-checkpoint.json`), `GATEWAY_POLL_MS` (150), `GATEWAY_STREAM_BATCH`
    /// (100), `GATEWAY_STREAM_RETRIES` (5), `GATEWAY_WS_STAGE` (`local`),
    /// `PUSH_CONCURRENCY` (100), `CORS_ALLOW_ORIGIN` (`*`; `none` disables),
    /// `WEBHOOK_SECRET` (optional), `GATEWAY_SYNC_INTERVAL_MS` (2000; 0 = no sync) and the
    /// `RT_SYNC_*` bounds.
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let http_addr = addr(lookup, "GATEWAY_HTTP_ADDR", DEFAULT_HTTP_ADDR)?;
        let ws_addr = addr(lookup, "GATEWAY_WS_ADDR", DEFAULT_WS_ADDR)?;
        let management_addr = addr(lookup, "GATEWAY_MANAGEMENT_ADDR", DEFAULT_MANAGEMENT_ADDR)?;
        let allow_non_loopback = match get(lookup, ALLOW_NON_LOOPBACK_VAR).as_deref() {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(ConfigError {
                    var: ALLOW_NON_LOOPBACK_VAR,
                    problem: format!("must be 1/true or 0/false, got {other:?}"),
                })
            }
        };
        check_listen_addrs(http_addr, ws_addr, management_addr, allow_non_loopback)?;
        let prefix = get(lookup, "TABLE_PREFIX").unwrap_or_else(|| DEFAULT_TABLE_PREFIX.to_owned());
        if !prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || prefix.len() > 200
        {
            return Err(ConfigError {
                var: "TABLE_PREFIX",
                problem:
                    "may hold only letters, digits, '-', '_' and '.' (DynamoDB table name rules)"
                        .into(),
            });
        }
        let rt = RtConfig::from_lookup(lookup)?;
        let raw_endpoint = get(lookup, "AWS_ENDPOINT_URL").ok_or(ConfigError {
            var: "AWS_ENDPOINT_URL",
            problem: "is not set; the gateway runs against a local DynamoDB such as moto (scripts/moto.sh env)".into(),
        })?;
        let endpoint = Url::parse(&raw_endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or(ConfigError {
                var: "AWS_ENDPOINT_URL",
                problem: format!("not an http(s) URL: {raw_endpoint:?}"),
            })?;
        let checkpoint =
            get(lookup, "GATEWAY_CHECKPOINT").unwrap_or_else(|| DEFAULT_CHECKPOINT.to_owned());
        let mut stream = StreamSettings::new(endpoint, PathBuf::from(checkpoint));
        if let Some(region) =
            get(lookup, "AWS_REGION").or_else(|| get(lookup, "AWS_DEFAULT_REGION"))
        {
            stream.region = region;
        }
        if let Some(key) = get(lookup, "AWS_ACCESS_KEY_ID") {
            stream.access_key_id = key;
        }
        stream.poll_interval =
            millis(lookup, "GATEWAY_POLL_MS", 10..=60_000, Duration::from_millis(150))?;
        stream.batch_size = integer(lookup, "GATEWAY_STREAM_BATCH", 1..=1000, 100)?;
        stream.max_retries = integer(lookup, "GATEWAY_STREAM_RETRIES", 0..=10_000, 5)?;
        let mut ws = WsSettings::default();
        if let Some(stage) = get(lookup, "GATEWAY_WS_STAGE") {
            ws.stage = stage;
        }
        let push_concurrency = integer(lookup, "PUSH_CONCURRENCY", 1..=1000, 100)?;
        let max_connections_per_key =
            rt_relay_shared::handlers::ws::max_connections_per_key(lookup)?;
        let cors_allow_origin = match get(lookup, "CORS_ALLOW_ORIGIN") {
            None => Some("*".to_owned()),
            Some(v) if v.eq_ignore_ascii_case("none") => None,
            Some(v) => Some(v),
        };
        let webhook_secret = match get(lookup, "WEBHOOK_SECRET") {
            None => None,
            Some(_) => Some(webhook_secret_from_lookup(lookup)?),
        };
        let sync_ms = integer(lookup, "GATEWAY_SYNC_INTERVAL_MS", 0..=3_600_000, 2000u64)?;
        let events = EventSettings {
            webhook_secret,
            sync_interval: (sync_ms > 0).then(|| Duration::from_millis(sync_ms)),
            sync: SyncSettings::from_lookup(lookup)?,
        };
        Ok(Self {
            events,
            http_addr,
            ws_addr,
            management_addr,
            allow_non_loopback,
            fanout: crate::sqs::FanoutSettings {
                sharding: rt_relay_shared::config::sharding_from_lookup(lookup)?,
                queue_name: format!("{prefix}fanout.fifo"),
                dlq_name: format!("{prefix}fanout-dlq.fifo"),
                batch_size: integer(lookup, "GATEWAY_SQS_BATCH", 1..=10, 1)?,
                visibility: Duration::from_secs(integer(
                    lookup,
                    "GATEWAY_SQS_VISIBILITY_SECS",
                    1..=43_200,
                    360,
                )?),
                max_receive_count: 5,
                worker_time: millis(
                    lookup,
                    "GATEWAY_WORKER_TIME_MS",
                    1..=900_000,
                    Duration::from_millis(54_000),
                )?,
            },
            tables: Tables::with_prefix(&prefix),
            rt,
            stream,
            ws,
            feed: FeedSettings::from_lookup(lookup)?,
            push_concurrency,
            max_connections_per_key,
            cors_allow_origin,
        })
    }

    /// [`GatewayConfig::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        let mut map: HashMap<String, String> = [
            ("RT_API_URL", "http://127.0.0.1:8080/REST/2.0/"),
            ("RT_TOKEN", "t"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5055"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        GatewayConfig::from_lookup(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_bind_to_loopback_with_local_tables() {
        let c = config(&[]).unwrap();
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.ws_addr.to_string(), "127.0.0.1:3001");
        assert_eq!(c.management_addr.to_string(), "127.0.0.1:3002");
        assert!(!c.allow_non_loopback);
        assert_eq!(c.tables, Tables::with_prefix("rt-relay-local-"));
        assert_eq!(c.stream.checkpoint_path, PathBuf::from(".run/stream-checkpoint.json"));
        assert_eq!(c.stream.batch_size, 100);
        assert_eq!(c.stream.max_retries, 5);
        assert_eq!(c.cors_allow_origin.as_deref(), Some("*"));
    }

    #[test]
    fn each_problem_names_its_variable() {
        assert_eq!(
            config(&[("GATEWAY_HTTP_ADDR", "localhost")]).unwrap_err().var,
            "GATEWAY_HTTP_ADDR"
        );
        assert_eq!(config(&[("AWS_ENDPOINT_URL", "")]).unwrap_err().var, "AWS_ENDPOINT_URL");
        assert_eq!(config(&[("TABLE_PREFIX", "a b")]).unwrap_err().var, "TABLE_PREFIX");
        assert_eq!(
            config(&[("GATEWAY_STREAM_BATCH", "0")]).unwrap_err().var,
            "GATEWAY_STREAM_BATCH"
        );
        assert_eq!(config(&[("RT_API_URL", "")]).unwrap_err().var, "RT_API_URL");
    }

    #[test]
    fn a_non_loopback_bind_is_refused_unless_explicitly_allowed() {
        for var in ["GATEWAY_HTTP_ADDR", "GATEWAY_WS_ADDR"] {
            let err = config(&[(var, "0.0.0.0:3000")]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.problem.contains(ALLOW_NON_LOOPBACK_VAR), "{}", err.problem);
            let allowed = config(&[(var, "0.0.0.0:3000"), (ALLOW_NON_LOOPBACK_VAR, "1")]).unwrap();
            assert!(allowed.allow_non_loopback);
        }
        assert_eq!(
            config(&[(ALLOW_NON_LOOPBACK_VAR, "yes")]).unwrap_err().var,
            ALLOW_NON_LOOPBACK_VAR
        );
        // @connections stays on loopback even when the APIs may leave it.
        let err =
            config(&[("GATEWAY_MANAGEMENT_ADDR", "0.0.0.0:3002"), (ALLOW_NON_LOOPBACK_VAR, "1")])
                .unwrap_err();
        assert_eq!(err.var, "GATEWAY_MANAGEMENT_ADDR");
    }

    #[test]
    fn overrides_apply() {
        let c = config(&[
            ("GATEWAY_WS_ADDR", "127.0.0.1:0"),
            ("TABLE_PREFIX", "t1-"),
            ("CORS_ALLOW_ORIGIN", "none"),
        ])
        .unwrap();
        assert_eq!(c.ws_addr.port(), 0);
        assert_eq!(c.tables.connections, "t1-connections");
        assert_eq!(c.cors_allow_origin, None);
    }
}
