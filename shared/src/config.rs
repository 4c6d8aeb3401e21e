//! Typed configuration, read once at cold start from the environment. It mirrors the
//! seed's `.env` (`RT_API_URL`, `RT_USERNAME`, `RT_PASSWORD`) plus a token option; table
//! names and endpoints come from the environment `template.yaml` sets.
//!
//! Every reader takes a lookup function so tests need not touch the process environment.
//! A missing or invalid value fails with one message naming the variable.

use std::{fmt::Display, ops::RangeInclusive, str::FromStr, time::Duration};

use url::Url;

use crate::{
    secret::Secret,
    store::schema::TableKind,
    usecases::push::{Sharding, DEFAULT_CONCURRENCY},
};

/// A configuration problem, naming the variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {var}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self { var, problem: problem.into() }
    }
}

/// Which of RT's REST APIs to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtApi {
    /// RT REST 1.0 (`/REST/1.0/`, form encoding), the seed's choice.
    Rest1,
    /// RT REST 2.0 (`/REST/2.0/`, JSON).
    Rest2,
}

/// How to authenticate to RT. Credentials are [`Secret`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtAuth {
    /// `Authorization: token <t>` (REST 2.0 only).
    Token(Secret),
    /// Username and password: HTTP Basic for REST 2.0, `user`/`pass` fields for REST 1.0.
    Basic {
        /// RT user name.
        username: String,
        /// RT password.
        password: Secret,
    },
}

/// Everything needed to reach RT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtConfig {
    /// Which API to speak.
    pub api: RtApi,
    /// RT's base URL, ending in `/` (e.g. `http://127.0.0.1:8080/`).
    pub base_url: Url,
    /// Credentials.
    pub auth: RtAuth,
    /// Queue used when a request names none.
    pub default_queue: String,
    /// Bound on every request to RT, connect included.
    pub timeout: Duration,
}

/// Default bound on one RT request.
pub const DEFAULT_RT_TIMEOUT: Duration = Duration::from_secs(10);

/// How configuration is read: the process environment in production, a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads a variable, treating an empty value as absent.
pub fn get(lookup: Lookup<'_>, var: &str) -> Option<String> {
    lookup(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

pub(crate) fn required(lookup: Lookup<'_>, var: &'static str) -> Result<String, ConfigError> {
    get(lookup, var).ok_or_else(|| ConfigError::new(var, "is not set"))
}

/// An integer variable within `range`, or `default` when unset.
pub fn integer<T>(
    lookup: Lookup<'_>,
    var: &'static str,
    range: RangeInclusive<T>,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Display,
{
    in_range(lookup, var, range, default, "an integer")
}

/// A duration variable given in milliseconds within `range`, or `default` when unset.
pub fn millis(
    lookup: Lookup<'_>,
    var: &'static str,
    range: RangeInclusive<u64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    in_range(lookup, var, range, default, "milliseconds").map(Duration::from_millis)
}

fn in_range<T>(
    lookup: Lookup<'_>,
    var: &'static str,
    range: RangeInclusive<T>,
    default: T,
    what: &str,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Display,
{
    match get(lookup, var) {
        None => Ok(default),
        Some(v) => v.parse::<T>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            let (min, max) = (range.start(), range.end());
            ConfigError::new(var, format!("must be {what} from {min} to {max}, got {v:?}"))
        }),
    }
}

/// Whether `url` names this machine: `localhost` or a loopback address.
fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Splits an `RT_API_URL` into RT's base URL and the API it names. Accepts the seed's
/// `https://host/REST/1.0/`, a `/REST/2.0/` URL, or a bare base URL (then `default_api`).
/// Plain `http://` only to this machine (a local RT, a test proxy): elsewhere it would
/// send RT's credentials in clear text.
pub fn parse_rt_api_url(raw: &str, default_api: RtApi) -> Result<(RtApi, Url), String> {
    let mut url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials in the URL would end up in logs; they belong in RT_USERNAME/RT_PASSWORD.
        return Err("must not carry credentials; use RT_USERNAME/RT_PASSWORD or RT_TOKEN".into());
    }
    if url.scheme() == "http" && !is_loopback_host(&url) {
        // Every request carries RT's token or password (REST 1.0 even in the body).
        return Err(format!(
            "is plain http:// to {}, which is not this machine: RT's credentials would cross \
             the network in clear text; use https://",
            url.host_str().unwrap_or("?")
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_owned();
    let (api, base_path) = if let Some(p) = path.strip_suffix("/REST/1.0") {
        (RtApi::Rest1, p.to_owned())
    } else if let Some(p) = path.strip_suffix("/REST/2.0") {
        (RtApi::Rest2, p.to_owned())
    } else if path.contains("/REST/") {
        return Err("names an unknown RT REST version (want /REST/1.0/ or /REST/2.0/)".into());
    } else {
        (default_api, path)
    };
    url.set_path(&format!("{base_path}/"));
    Ok((api, url))
}

impl RtConfig {
    /// Reads `RT_API_URL`, `RT_API_VERSION` (1 or 2, for a bare base URL; default 2),
    /// `RT_TOKEN` or `RT_USERNAME` + `RT_PASSWORD`, `RT_DEFAULT_QUEUE` (default `General`)
    /// and `RT_TIMEOUT_MS` (default 10000).
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let default_api = match get(lookup, "RT_API_VERSION").as_deref() {
            None | Some("2") | Some("2.0") => RtApi::Rest2,
            Some("1") | Some("1.0") => RtApi::Rest1,
            Some(other) => {
                return Err(ConfigError::new(
                    "RT_API_VERSION",
                    format!("must be 1 or 2, got {other:?}"),
                ))
            }
        };
        let raw = required(lookup, "RT_API_URL")?;
        let (api, base_url) =
            parse_rt_api_url(&raw, default_api).map_err(|p| ConfigError::new("RT_API_URL", p))?;
        let auth =
            match (get(lookup, "RT_TOKEN"), get(lookup, "RT_USERNAME"), lookup("RT_PASSWORD")) {
                (Some(_), _, _) if api == RtApi::Rest1 => {
                    return Err(ConfigError::new(
                        "RT_TOKEN",
                        "RT REST 1.0 does not accept tokens; set RT_USERNAME and RT_PASSWORD",
                    ))
                }
                (Some(token), _, _) => RtAuth::Token(Secret::new(token)),
                (None, Some(username), Some(password)) if !password.is_empty() => {
                    RtAuth::Basic { username, password: Secret::new(password) }
                }
                (None, Some(_), _) => return Err(ConfigError::new("RT_PASSWORD", "is not set")),
                (None, None, _) => {
                    return Err(ConfigError::new(
                        "RT_USERNAME",
                        "is not set (set RT_USERNAME and RT_PASSWORD, or RT_TOKEN)",
                    ))
                }
            };
        let default_queue = get(lookup, "RT_DEFAULT_QUEUE").unwrap_or_else(|| "General".into());
        crate::model::validate_queue_name(&default_queue)
            .map_err(|e| ConfigError::new("RT_DEFAULT_QUEUE", e.message))?;
        let timeout = millis(lookup, "RT_TIMEOUT_MS", 1..=300_000, DEFAULT_RT_TIMEOUT)?;
        Ok(Self { api, base_url, auth, default_queue, timeout })
    }

    /// [`RtConfig::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }
}

/// DynamoDB table names, as `template.yaml` passes them: each function is given only the
/// tables it uses ([`FunctionTables`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// `TICKETS_TABLE`.
    pub tickets: String,
    /// `NOTIFICATIONS_TABLE` (its stream drives the push function).
    pub notifications: String,
    /// `CONNECTIONS_TABLE`.
    pub connections: String,
    /// `IDEMPOTENCY_TABLE`.
    pub idempotency: String,
    /// `API_KEYS_TABLE`: only the authorizer and the `rt-relay-keys` command use it.
    pub api_keys: Option<String>,
}

/// The variable each table's name travels in.
pub fn table_variable(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Tickets => "TICKETS_TABLE",
        TableKind::Notifications => "NOTIFICATIONS_TABLE",
        TableKind::Connections => "CONNECTIONS_TABLE",
        TableKind::Idempotency => "IDEMPOTENCY_TABLE",
        TableKind::ApiKeys => "API_KEYS_TABLE",
    }
}

/// The tables of one Lambda function: what its `main` reads and what `template.yaml` gives
/// it (`tests/tests/template.rs` checks the template against these lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionTables {
    /// The function's binary (its crate under `functions/`).
    pub function: &'static str,
    /// The tables it reads or writes.
    pub tables: &'static [TableKind],
}

impl FunctionTables {
    /// `POST /tickets`: the ticket, its notification and the idempotency record are
    /// written in one transaction.
    pub const POST_TICKET: Self = Self {
        function: "post-ticket",
        tables: &[TableKind::Tickets, TableKind::Notifications, TableKind::Idempotency],
    };
    /// `GET /tickets/{id}`: reads and refreshes the ticket record.
    pub const GET_TICKET: Self = Self { function: "get-ticket", tables: &[TableKind::Tickets] };
    /// `GET /tickets`.
    pub const LIST_TICKETS: Self = Self { function: "list-tickets", tables: &[TableKind::Tickets] };
    /// `GET /notifications`.
    pub const LIST_NOTIFICATIONS: Self =
        Self { function: "list-notifications", tables: &[TableKind::Notifications] };
    /// WebSocket `$connect`: records the connection; resolves a `since` position.
    pub const WS_CONNECT: Self = Self {
        function: "ws-connect",
        tables: &[TableKind::Notifications, TableKind::Connections],
    };
    /// WebSocket `$disconnect`.
    pub const WS_DISCONNECT: Self =
        Self { function: "ws-disconnect", tables: &[TableKind::Connections] };
    /// WebSocket `$default`: reads the notifications feed for a `reconnect` position and
    /// stores a connection's subscription.
    pub const WS_DEFAULT: Self = Self {
        function: "ws-default",
        tables: &[TableKind::Notifications, TableKind::Connections],
    };
    /// The push: reads connections, deletes gone ones (the notifications reach it by stream).
    pub const PUSH_NOTIFICATIONS: Self =
        Self { function: "push-notifications", tables: &[TableKind::Connections] };
    /// The push worker: deletes gone connections (delivery tasks carry everything else);
    /// resumes read the feed and move a connection from replaying to live.
    pub const PUSH_WORKER: Self = Self {
        function: "push-worker",
        tables: &[TableKind::Notifications, TableKind::Connections],
    };
    /// The authorizer.
    pub const AUTHORIZER: Self = Self { function: "authorizer", tables: &[TableKind::ApiKeys] };
    /// `rt-sync`: mirrors tickets, stores notifications, keeps its cursor in the
    /// idempotency table.
    pub const RT_SYNC: Self = Self {
        function: "rt-sync",
        tables: &[TableKind::Tickets, TableKind::Notifications, TableKind::Idempotency],
    };
    /// `rt-webhook`: ingests like `rt-sync`; remembers accepted calls in the idempotency table.
    pub const RT_WEBHOOK: Self = Self {
        function: "rt-webhook",
        tables: &[TableKind::Tickets, TableKind::Notifications, TableKind::Idempotency],
    };
    /// The web board: embedded files, no table.
    pub const BOARD: Self = Self { function: "board", tables: &[] };
    /// Every function.
    pub const ALL: [Self; 13] = [
        Self::POST_TICKET,
        Self::GET_TICKET,
        Self::LIST_TICKETS,
        Self::LIST_NOTIFICATIONS,
        Self::WS_CONNECT,
        Self::WS_DISCONNECT,
        Self::WS_DEFAULT,
        Self::PUSH_NOTIFICATIONS,
        Self::PUSH_WORKER,
        Self::AUTHORIZER,
        Self::RT_SYNC,
        Self::RT_WEBHOOK,
        Self::BOARD,
    ];

    /// Reads this function's table variables, each required. A table the function is not
    /// given keeps an empty name: DynamoDB refuses an empty table name, so reaching a table
    /// the function was not given fails loudly and can never touch another table.
    pub fn from_lookup(&self, lookup: Lookup<'_>) -> Result<Tables, ConfigError> {
        let mut tables = Tables {
            tickets: String::new(),
            notifications: String::new(),
            connections: String::new(),
            idempotency: String::new(),
            api_keys: None,
        };
        for kind in self.tables {
            let name = required(lookup, table_variable(*kind))?;
            match kind {
                TableKind::Tickets => tables.tickets = name,
                TableKind::Notifications => tables.notifications = name,
                TableKind::Connections => tables.connections = name,
                TableKind::Idempotency => tables.idempotency = name,
                TableKind::ApiKeys => tables.api_keys = Some(name),
            }
        }
        Ok(tables)
    }

    /// [`FunctionTables::from_lookup`] over the process environment.
    pub fn from_env(&self) -> Result<Tables, ConfigError> {
        self.from_lookup(&|k| std::env::var(k).ok())
    }
}

impl Tables {
    /// Names with a common prefix, as the local stack and tests use them.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            tickets: format!("{prefix}tickets"),
            notifications: format!("{prefix}notifications"),
            connections: format!("{prefix}connections"),
            idempotency: format!("{prefix}idempotency"),
            api_keys: Some(format!("{prefix}api-keys")),
        }
    }
}

/// Where the push function posts to connections: `WS_MANAGEMENT_ENDPOINT` if set
/// (the local gateway, or a custom domain), else derived from each event's domain and stage.
pub fn management_endpoint_from_lookup(lookup: Lookup<'_>) -> Result<Option<Url>, ConfigError> {
    match get(lookup, "WS_MANAGEMENT_ENDPOINT") {
        None => Ok(None),
        Some(v) => Url::parse(&v)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(Some)
            .ok_or_else(|| {
                ConfigError::new("WS_MANAGEMENT_ENDPOINT", format!("not an http(s) URL: {v:?}"))
            }),
    }
}

/// When and how the push shards: `PUSH_SHARD_OVER` (connections a batch delivers inline;
/// 0 shards every batch), `PUSH_SHARDS` (FIFO message groups = workers posting at once,
/// 1..=1000) and `PUSH_TASK_CONNECTIONS` (connection ids per task, 1..=5000).
pub fn sharding_from_lookup(lookup: Lookup<'_>) -> Result<Sharding, ConfigError> {
    let d = Sharding::default();
    Ok(Sharding {
        over: integer(lookup, "PUSH_SHARD_OVER", 0..=10_000_000, d.over)?,
        shards: integer(lookup, "PUSH_SHARDS", 1..=1000, d.shards)?,
        task_connections: integer(lookup, "PUSH_TASK_CONNECTIONS", 1..=5000, d.task_connections)?,
        task_bytes: d.task_bytes,
    })
}

/// The push function's settings (the worker's too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// `WS_MANAGEMENT_ENDPOINT` (required): the Management API of the WebSocket stage.
    pub management_endpoint: Url,
    /// `PUSH_CONCURRENCY` (1..=1000, default [`DEFAULT_CONCURRENCY`]).
    pub concurrency: usize,
    /// `PUSH_QUEUE_URL`: the FIFO fan-out queue; without it the push never shards.
    pub queue_url: Option<String>,
    /// [`sharding_from_lookup`].
    pub sharding: Sharding,
}

impl PushConfig {
    /// Reads `WS_MANAGEMENT_ENDPOINT`, `PUSH_CONCURRENCY`, `PUSH_QUEUE_URL` and the
    /// sharding variables.
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let management_endpoint = management_endpoint_from_lookup(lookup)?
            .ok_or_else(|| ConfigError::new("WS_MANAGEMENT_ENDPOINT", "is not set"))?;
        let concurrency = integer(lookup, "PUSH_CONCURRENCY", 1..=1000, DEFAULT_CONCURRENCY)?;
        Ok(Self {
            management_endpoint,
            concurrency,
            queue_url: get(lookup, "PUSH_QUEUE_URL"),
            sharding: sharding_from_lookup(lookup)?,
        })
    }

    /// [`PushConfig::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }
}

/// A lookup over fixed `(variable, value)` pairs, for the readers' tests.
#[cfg(test)]
pub(crate) fn lookup_in<'a>(
    pairs: &'a [(&'a str, &'a str)],
) -> impl Fn(&str) -> Option<String> + 'a {
    move |var| pairs.iter().find(|(k, _)| *k == var).map(|(_, v)| (*v).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(pairs: &[(&str, &str)]) -> Result<RtConfig, ConfigError> {
        RtConfig::from_lookup(&lookup_in(pairs))
    }

    /// [`rt`] with `pairs` plus a username and password.
    fn rt_with_login(pairs: &[(&str, &str)]) -> Result<RtConfig, ConfigError> {
        rt(&[pairs, &[("RT_USERNAME", "u"), ("RT_PASSWORD", "p")]].concat())
    }

    #[test]
    fn seed_rest1_url_selects_rest1_and_strips_the_path() {
        let c = rt_with_login(&[("RT_API_URL", "https://rt.example.com/REST/1.0/")]).unwrap();
        assert_eq!(c.api, RtApi::Rest1);
        assert_eq!(c.base_url.as_str(), "https://rt.example.com/");
        assert_eq!(c.default_queue, "General");
        assert_eq!(c.timeout, DEFAULT_RT_TIMEOUT);
    }

    #[test]
    fn rest2_url_under_a_prefix_keeps_the_prefix() {
        let c = rt(&[("RT_API_URL", "https://h:8080/rt/REST/2.0"), ("RT_TOKEN", "t")]).unwrap();
        assert_eq!(c.api, RtApi::Rest2);
        assert_eq!(c.base_url.as_str(), "https://h:8080/rt/");
        assert_eq!(c.auth, RtAuth::Token(Secret::new("t")));
    }

    #[test]
    fn bare_base_url_uses_rt_api_version() {
        let c = rt_with_login(&[("RT_API_URL", "https://h"), ("RT_API_VERSION", "1")]).unwrap();
        assert_eq!(c.api, RtApi::Rest1);
        assert_eq!(c.base_url.as_str(), "https://h/");
    }

    #[test]
    fn each_problem_names_its_variable() {
        assert_eq!(rt(&[]).unwrap_err().var, "RT_API_URL");
        assert_eq!(rt(&[("RT_API_URL", "ftp://x")]).unwrap_err().var, "RT_API_URL");
        assert_eq!(rt(&[("RT_API_URL", "https://x/REST/3.0/")]).unwrap_err().var, "RT_API_URL");
        assert_eq!(rt(&[("RT_API_URL", "https://x")]).unwrap_err().var, "RT_USERNAME");
        assert_eq!(
            rt(&[("RT_API_URL", "https://x"), ("RT_USERNAME", "u")]).unwrap_err().var,
            "RT_PASSWORD"
        );
        assert_eq!(
            rt(&[("RT_API_URL", "https://x/REST/1.0/"), ("RT_TOKEN", "t")]).unwrap_err().var,
            "RT_TOKEN"
        );
        assert_eq!(
            rt(&[("RT_API_URL", "https://x"), ("RT_TOKEN", "t"), ("RT_TIMEOUT_MS", "soon")])
                .unwrap_err()
                .var,
            "RT_TIMEOUT_MS"
        );
        assert_eq!(
            rt(&[("RT_API_URL", "https://x"), ("RT_TOKEN", "t"), ("RT_DEFAULT_QUEUE", "a\nb")])
                .unwrap_err()
                .var,
            "RT_DEFAULT_QUEUE"
        );
    }

    #[test]
    fn plain_http_is_refused_unless_rt_is_on_this_machine() {
        for remote in
            ["http://rt.example.com/REST/1.0/", "http://10.0.0.5:8080/", "http://[2001:db8::1]/"]
        {
            let e = rt(&[("RT_API_URL", remote), ("RT_TOKEN", "t")]).unwrap_err();
            assert_eq!(e.var, "RT_API_URL", "{remote}");
            assert!(e.to_string().contains("https://"), "{e}");
        }
        for local in ["http://127.0.0.1:8080/", "http://localhost/REST/2.0/", "http://[::1]:8080/"]
        {
            assert!(rt(&[("RT_API_URL", local), ("RT_TOKEN", "t")]).is_ok(), "{local}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_not_echoed() {
        let e = rt(&[("RT_API_URL", "http://u:hunter2@x/"), ("RT_TOKEN", "t")]).unwrap_err();
        assert_eq!(e.var, "RT_API_URL");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn secrets_do_not_appear_in_debug() {
        let c =
            rt(&[("RT_API_URL", "https://x"), ("RT_USERNAME", "u"), ("RT_PASSWORD", "hunter2")])
                .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn each_function_reads_only_its_own_tables() {
        let only_tickets = lookup_in(&[("TICKETS_TABLE", "t")]);
        let tables = FunctionTables::GET_TICKET.from_lookup(&only_tickets).unwrap();
        assert_eq!((tables.tickets.as_str(), tables.connections.as_str()), ("t", ""));
        let keys = lookup_in(&[("API_KEYS_TABLE", "k")]);
        let tables = FunctionTables::AUTHORIZER.from_lookup(&keys).unwrap();
        assert_eq!(tables.api_keys.as_deref(), Some("k"));
        assert_eq!(Tables::with_prefix("p-").api_keys.as_deref(), Some("p-api-keys"));
    }

    #[test]
    fn push_settings_name_their_variable() {
        let push = |pairs: &[(&str, &str)]| PushConfig::from_lookup(&lookup_in(pairs));
        assert_eq!(push(&[]).unwrap_err().var, "WS_MANAGEMENT_ENDPOINT");
        let endpoint = ("WS_MANAGEMENT_ENDPOINT", "https://x.example/prod");
        assert_eq!(push(&[endpoint]).unwrap().concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(
            push(&[endpoint, ("PUSH_CONCURRENCY", "0")]).unwrap_err().var,
            "PUSH_CONCURRENCY"
        );
        let plain = push(&[endpoint]).unwrap();
        assert_eq!((plain.queue_url, plain.sharding), (None, Sharding::default()));
        let sharded = push(&[
            endpoint,
            ("PUSH_QUEUE_URL", "https://sqs.example/1/q.fifo"),
            ("PUSH_SHARD_OVER", "0"),
            ("PUSH_SHARDS", "16"),
        ])
        .unwrap();
        assert_eq!(sharded.queue_url.as_deref(), Some("https://sqs.example/1/q.fifo"));
        assert_eq!((sharded.sharding.over, sharded.sharding.shards), (0, 16));
        assert_eq!(push(&[endpoint, ("PUSH_SHARDS", "0")]).unwrap_err().var, "PUSH_SHARDS");
    }

    #[test]
    fn tables_name_the_missing_variable() {
        let tickets = lookup_in(&[("TICKETS_TABLE", "t")]);
        let e = FunctionTables::POST_TICKET.from_lookup(&tickets).unwrap_err();
        assert_eq!(e.var, "NOTIFICATIONS_TABLE");
    }
}
