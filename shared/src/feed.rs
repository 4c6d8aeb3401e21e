//! The live feed's pure rules (issue 11; design in docs/ARCHITECTURE.md, "The live feed"):
//! feed positions, retention and the settle horizon, subscriptions (the fan-out index's
//! channels are derived from them in `store::channels_of`), and the WebSocket messages
//! both ways. No I/O here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    config::ConfigError,
    model::{
        validate_queue_name, validate_status_name, Notification, NOTIFICATION_TYPES,
        TICKET_STATUS_CHANGED,
    },
    store::{FeedSpan, Page, PageRequest, StoreError, TicketStore},
};

/// Default settle horizon: a notification is committed within this long of its `created_at`.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);
/// Default retention of the feed's history.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default age at which a `ping` is answered `reconnect` (1 h 50 min; API Gateway cuts at 2 h).
pub const DEFAULT_RECONNECT_AFTER: Duration = Duration::from_secs(6_600);
/// Most values one kind of filter may list.
pub const MAX_FILTER_VALUES: usize = 20;

/// A notification's place in the feed: creation time, then id. Its string form is the
/// notifications table's `seq` (`{millis, 13 digits}#{id}`), so string order is feed order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// `created_at` in epoch milliseconds.
    pub millis: i64,
    /// The notification id.
    pub id: String,
}

impl Position {
    /// The position of a notification.
    pub fn of(n: &Notification) -> Self {
        Self { millis: n.created_at.timestamp_millis(), id: n.id.clone() }
    }

    /// The `seq` sort key.
    pub fn seq(&self) -> String {
        format!("{:013}#{}", self.millis, self.id)
    }

    /// Reads a `seq` back; `None` when it is not one this code wrote.
    pub fn parse_seq(seq: &str) -> Option<Self> {
        let (millis, id) = seq.split_once('#')?;
        if millis.len() != 13 || !millis.bytes().all(|b| b.is_ascii_digit()) || id.is_empty() {
            return None;
        }
        Some(Self { millis: millis.parse().ok()?, id: id.to_owned() })
    }
}

/// The feed's timing rules, read once at cold start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// `FEED_SETTLE_MS`: positions younger than this are not final yet.
    pub settle: Duration,
    /// `FEED_RETENTION_DAYS`: positions older than this are expired.
    pub retention: Duration,
    /// `WS_RECONNECT_AFTER_SECS`: a connection this old is told to reconnect.
    pub reconnect_after: Duration,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            settle: DEFAULT_SETTLE,
            retention: DEFAULT_RETENTION,
            reconnect_after: DEFAULT_RECONNECT_AFTER,
        }
    }
}

impl FeedSettings {
    /// Reads the settings through `lookup` (the environment in production).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let number = |var: &'static str, max: u64| -> Result<Option<u64>, ConfigError> {
            lookup(var)
                .map(|raw| {
                    raw.trim().parse::<u64>().ok().filter(|v| (1..=max).contains(v)).ok_or(
                        ConfigError {
                            var,
                            problem: format!("must be an integer from 1 to {max}, got {raw:?}"),
                        },
                    )
                })
                .transpose()
        };
        let d = Self::default();
        Ok(Self {
            settle: number("FEED_SETTLE_MS", 60_000)?.map_or(d.settle, Duration::from_millis),
            retention: number("FEED_RETENTION_DAYS", 365)?
                .map_or(d.retention, |days| Duration::from_secs(days * 24 * 3600)),
            reconnect_after: number("WS_RECONNECT_AFTER_SECS", 7_200)?
                .map_or(d.reconnect_after, Duration::from_secs),
        })
    }

    /// Whether a position is older than the kept history.
    pub fn expired(&self, position: &Position, now: DateTime<Utc>) -> bool {
        position.millis < now.timestamp_millis().saturating_sub(millis(self.retention))
    }

    /// The newest position that is final at `now` (everything created up to it committed).
    pub fn settled_until(&self, now: DateTime<Utc>) -> i64 {
        now.timestamp_millis().saturating_sub(millis(self.settle))
    }

    /// Whether a connection made at `connected_at` (epoch millis) must be told to reconnect.
    pub fn must_reconnect(&self, connected_at_millis: i64, now: DateTime<Utc>) -> bool {
        now.timestamp_millis().saturating_sub(connected_at_millis) >= millis(self.reconnect_after)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Why a `since` cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SinceError {
    /// The position is unknown or older than the kept history: the client must resync.
    #[error("position {0:?} is older than the kept history or unknown; re-read the feed")]
    Expired(String),
    /// Reading the position failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Resolves the notification id a client last received to its feed position; unknown
/// ids and positions beyond retention are [`SinceError::Expired`].
pub async fn resolve_since(
    store: &dyn TicketStore,
    since: &str,
    settings: &FeedSettings,
    now: DateTime<Utc>,
) -> Result<Position, SinceError> {
    let expired = || SinceError::Expired(since.to_owned());
    // Ids are short ASCII tokens; anything else cannot name a stored notification.
    if since.is_empty() || since.len() > 200 || since.chars().any(char::is_control) {
        return Err(expired());
    }
    let position = store.notification_position(since).await?.ok_or_else(expired)?;
    if settings.expired(&position, now) {
        return Err(expired());
    }
    Ok(position)
}

/// One page of the feed after `since` (oldest first), only up to the settle horizon.
pub async fn page_since(
    store: &dyn TicketStore,
    since: &str,
    settings: &FeedSettings,
    now: DateTime<Utc>,
    page: &PageRequest,
) -> Result<Page<Notification>, SinceError> {
    let after = resolve_since(store, since, settings, now).await?;
    let span = FeedSpan { after, until_millis: settings.settled_until(now) };
    Ok(store.list_notifications_after(&span, page).await?)
}

/// Answers a `ping`: `pong`, or, once the connection is older than
/// [`FeedSettings::reconnect_after`], `reconnect` with a position to resume from: the newest
/// notification created at least the settle horizon before the connection was made. Every
/// notification after it was committed after that, so it was pushed to this connection or
/// comes after it; a client that received nothing resumes from there and misses nothing
/// (what it already had comes again and is dropped by id).
pub async fn answer_ping(
    store: &dyn TicketStore,
    settings: &FeedSettings,
    connected_at_millis: i64,
    now: DateTime<Utc>,
) -> Result<ServerMessage, StoreError> {
    if !settings.must_reconnect(connected_at_millis, now) {
        return Ok(ServerMessage::Pong);
    }
    let until = connected_at_millis.saturating_sub(millis(settings.settle));
    let since = store.newest_position_until(until).await?.map(|p| p.id);
    Ok(ServerMessage::Reconnect { since, reason: "max_age".into() })
}

/// A filter a client gave that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    /// `queue`, `type`, `ticket` or `status`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl FilterError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// What a connection wants: values of one kind are OR, kinds are AND; empty = everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Queue names.
    #[serde(default, rename = "queue")]
    pub queues: Vec<String>,
    /// Notification types.
    #[serde(default, rename = "type")]
    pub types: Vec<String>,
    /// Ticket ids.
    #[serde(default, rename = "ticket")]
    pub tickets: Vec<u64>,
    /// Ticket statuses: a notification matches when the ticket's status before or after
    /// it is one of them, so a client watching `open` also hears a ticket leave `open`.
    /// Left out of the JSON when empty (the shape clients knew before statuses).
    #[serde(default, rename = "status", skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<String>,
}

impl Subscription {
    /// Everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Reads `queue`, `type`, `ticket`, `status` from query parameters (each may repeat; other
    /// parameters are ignored).
    pub fn from_query<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, FilterError> {
        let mut sub = Self::default();
        for (name, value) in pairs {
            match name {
                "queue" => sub.queues.push(value.to_owned()),
                "type" => sub.types.push(value.to_owned()),
                "status" => sub.statuses.push(value.to_owned()),
                "ticket" => sub.tickets.push(
                    value
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|id| *id > 0)
                        .ok_or_else(|| FilterError::new("ticket", "must be a ticket id"))?,
                ),
                _ => {}
            }
        }
        sub.validated()
    }

    /// Checks every value and removes duplicates (order kept).
    pub fn validated(mut self) -> Result<Self, FilterError> {
        let too_many = |field| {
            FilterError::new(field, format!("at most {MAX_FILTER_VALUES} values are allowed"))
        };
        if self.queues.len() > MAX_FILTER_VALUES {
            return Err(too_many("queue"));
        }
        if self.types.len() > MAX_FILTER_VALUES {
            return Err(too_many("type"));
        }
        if self.tickets.len() > MAX_FILTER_VALUES {
            return Err(too_many("ticket"));
        }
        if self.statuses.len() > MAX_FILTER_VALUES {
            return Err(too_many("status"));
        }
        let mut queues = Vec::with_capacity(self.queues.len());
        for q in &self.queues {
            let q = validate_queue_name(q).map_err(|e| FilterError::new("queue", e.message))?;
            if !queues.contains(&q) {
                queues.push(q);
            }
        }
        self.queues = queues;
        if let Some(bad) = self.types.iter().find(|t| !NOTIFICATION_TYPES.contains(&t.as_str())) {
            return Err(FilterError::new(
                "type",
                format!("unknown type {bad:?}; one of {}", NOTIFICATION_TYPES.join(", ")),
            ));
        }
        if self.tickets.contains(&0) {
            return Err(FilterError::new("ticket", "must be a ticket id"));
        }
        let mut statuses = Vec::with_capacity(self.statuses.len());
        for s in &self.statuses {
            statuses
                .push(validate_status_name(s).map_err(|e| FilterError::new("status", e.message))?);
        }
        self.statuses = statuses;
        dedup(&mut self.types);
        dedup(&mut self.tickets);
        dedup(&mut self.statuses);
        Ok(self)
    }

    /// Whether it lets everything through.
    pub fn is_everything(&self) -> bool {
        self.queues.is_empty()
            && self.types.is_empty()
            && self.tickets.is_empty()
            && self.statuses.is_empty()
    }

    /// As stored with the connection (JSON); `None` for everything, which is stored as no
    /// filter at all.
    pub fn to_stored(&self) -> Option<String> {
        (!self.is_everything()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// Reads a stored filter (`None`: everything). A record that does not parse counts as
    /// everything: the key's queue rights still apply, so it never widens what a key reads.
    pub fn from_stored(stored: Option<&str>) -> Self {
        stored.and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
    }

    /// Whether the connection wants `n`.
    pub fn matches(&self, n: &Notification) -> bool {
        (self.queues.is_empty() || self.queues.contains(&n.ticket.queue))
            && (self.types.is_empty() || self.types.contains(&n.kind))
            && (self.tickets.is_empty() || self.tickets.contains(&n.ticket.id))
            && (self.statuses.is_empty() || self.wants_status_of(n))
    }

    /// Whether the ticket's status after `n` (the summary it carries) or, for a status
    /// change, before it is one the filter names: a ticket leaving a watched status is
    /// still heard, so a client can update or drop its row.
    fn wants_status_of(&self, n: &Notification) -> bool {
        let changed = n
            .change
            .as_ref()
            .filter(|c| n.kind == TICKET_STATUS_CHANGED && c.field == "status")
            .map(|c| [c.old.as_str(), c.new.as_str()]);
        std::iter::once(n.ticket.status.as_str())
            .chain(changed.into_iter().flatten())
            .any(|s| self.statuses.iter().any(|w| w == s))
    }
}

fn dedup<T: PartialEq + Clone>(values: &mut Vec<T>) {
    let mut seen: Vec<T> = Vec::with_capacity(values.len());
    values.retain(|v| {
        if seen.contains(v) {
            false
        } else {
            seen.push(v.clone());
            true
        }
    });
}

/// A message a client sends on `$default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `{"action": "ping"}`.
    Ping,
    /// `{"action": "subscribe", "queue": [...], "type": [...], "ticket": [...],
    /// "status": [...]}`.
    Subscribe(Subscription),
}

impl ClientMessage {
    /// Reads a client message; the error is the [`ServerMessage::Error`] to answer.
    pub fn parse(body: &str) -> Result<Self, ServerMessage> {
        let invalid = |message: String| ServerMessage::Error {
            code: "invalid_message".into(),
            message,
            field: None,
        };
        let value: Value = serde_json::from_str(body)
            .map_err(|_| invalid("messages are JSON objects with an \"action\"".into()))?;
        match value.get("action").and_then(Value::as_str) {
            Some("ping") => Ok(ClientMessage::Ping),
            Some("subscribe") => {
                let sub: Subscription = serde_json::from_value(value).map_err(|_| {
                    invalid(
                        "queue, type and status are lists of strings, ticket a list of ids".into(),
                    )
                })?;
                sub.validated().map(ClientMessage::Subscribe).map_err(|e| ServerMessage::Error {
                    code: "invalid_subscription".into(),
                    message: e.message,
                    field: Some(e.field.into()),
                })
            }
            _ => Err(invalid("action must be \"ping\" or \"subscribe\"".into())),
        }
    }
}

/// A control message the relay sends (notifications themselves are sent as stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `ping`.
    Pong,
    /// The answer to `subscribe`: the filter now in force.
    Subscribed {
        /// The filter.
        subscription: Subscription,
    },
    /// Reconnect now, resuming with `since` = the last id received, or this one.
    Reconnect {
        /// Where the connection started (`null`: the feed was empty).
        since: Option<String>,
        /// Why (`max_age`).
        reason: String,
    },
    /// The position asked for is gone: rebuild from `GET /notifications`.
    Resync {
        /// The position the client gave.
        since: String,
        /// Why (`position_expired`).
        reason: String,
    },
    /// A message the relay could not use.
    Error {
        /// Machine-readable code.
        code: String,
        /// What is wrong.
        message: String,
        /// The filter field at fault.
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
}

impl ServerMessage {
    /// The JSON text sent to the client.
    pub fn to_json(&self) -> String {
        // A tagged enum of strings and lists cannot fail to serialise.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"type":"error"}"#.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TicketSummary;
    use chrono::TimeZone;

    fn note(kind: &str, queue: &str, ticket: u64) -> Notification {
        Notification {
            id: format!("n-{ticket}-{kind}"),
            kind: kind.into(),
            ticket: TicketSummary {
                id: ticket,
                title: "t".into(),
                status: "new".into(),
                queue: queue.into(),
                rt_url: "u".into(),
                owner: None,
                priority: None,
            },
            created_at: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            rt_transaction_id: None,
            actor: None,
            occurred_at: None,
            change: None,
            excerpt: None,
        }
    }

    fn ticket_at(id: u64, at: DateTime<Utc>) -> crate::model::Ticket {
        crate::model::Ticket {
            id,
            title: "t".into(),
            description: "d".into(),
            status: "new".into(),
            queue: "General".into(),
            requestor: None,
            created_at: at,
            updated_at: at,
            rt_url: "u".into(),
        }
    }

    #[test]
    fn positions_round_trip_and_order_as_their_seq() {
        let p = Position::of(&note("ticket.created", "General", 7));
        assert_eq!(p.seq(), "1700000000123#n-7-ticket.created");
        assert_eq!(Position::parse_seq(&p.seq()), Some(p.clone()));
        let earlier = Position { millis: 999_999_999_999, id: "z".into() };
        assert!(earlier < p && earlier.seq() < p.seq());
        for bad in ["", "123#x", "1700000000123#", "17000000001x3#a", "nohash"] {
            assert_eq!(Position::parse_seq(bad), None, "{bad}");
        }
    }

    #[test]
    fn retention_settle_and_reconnect_age() {
        let s = FeedSettings::default();
        let now = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
        let day = 24 * 3600 * 1000;
        assert!(
            !s.expired(&Position { millis: now.timestamp_millis() - 6 * day, id: "a".into() }, now)
        );
        assert!(
            s.expired(&Position { millis: now.timestamp_millis() - 8 * day, id: "a".into() }, now)
        );
        assert_eq!(s.settled_until(now), now.timestamp_millis() - 5_000);
        let connected = now.timestamp_millis() - 6_599_000;
        assert!(!s.must_reconnect(connected, now));
        assert!(s.must_reconnect(connected - 1_000, now));
    }

    #[tokio::test]
    async fn since_serves_the_settled_feed_after_a_position_and_refuses_lost_ones() {
        use crate::store::{memory::MemoryStore, Creation};
        let store = MemoryStore::new();
        let now = Utc::now();
        let settings = FeedSettings::default();
        let mut ids = Vec::new();
        // Three old enough to be settled, one created just now.
        for (id, age_ms) in [(1u64, 60_000i64), (2, 50_000), (3, 40_000), (4, 0)] {
            let at = now - chrono::Duration::milliseconds(age_ms);
            let ticket = ticket_at(id, at);
            let n = Notification::ticket_created(&ticket, at);
            ids.push(n.id.clone());
            store.record_created(&Creation::new(&ticket, &n)).await.unwrap();
        }
        let page = page_since(&store, &ids[0], &settings, now, &PageRequest::first(10)).await;
        let got: Vec<u64> = page.unwrap().items.iter().map(|n| n.ticket.id).collect();
        assert_eq!(got, [2, 3], "oldest first, the unsettled one not yet");
        for lost in ["ticket-99-created", "", "a\nb"] {
            let err = page_since(&store, lost, &settings, now, &PageRequest::first(10)).await;
            assert!(matches!(err, Err(SinceError::Expired(_))), "{lost:?}");
        }
        let later = now + chrono::Duration::days(8);
        let err = resolve_since(&store, &ids[0], &settings, later).await.unwrap_err();
        assert!(matches!(err, SinceError::Expired(_)));
    }

    #[tokio::test]
    async fn an_old_connection_is_told_to_reconnect_from_before_it_started() {
        use crate::store::{memory::MemoryStore, Creation};
        let store = MemoryStore::new();
        let now = Utc::now();
        let settings =
            FeedSettings { reconnect_after: Duration::from_secs(60), ..FeedSettings::default() };
        let connected = now.timestamp_millis() - 61_000;
        // One notification well before the connection, one just before (inside the settle
        // horizon: it may have missed the connection), one after.
        for (id, at) in [(1u64, connected - 30_000), (2, connected - 1_000), (3, connected + 5)] {
            let at = chrono::DateTime::from_timestamp_millis(at).unwrap();
            let t = ticket_at(id, at);
            store
                .record_created(&Creation::new(&t, &Notification::ticket_created(&t, at)))
                .await
                .unwrap();
        }
        let young = answer_ping(&store, &settings, now.timestamp_millis() - 1_000, now).await;
        assert_eq!(young.unwrap(), ServerMessage::Pong);
        let old = answer_ping(&store, &settings, connected, now).await.unwrap();
        assert_eq!(
            old,
            ServerMessage::Reconnect {
                since: Some("ticket-1-created".into()),
                reason: "max_age".into()
            }
        );
    }

    #[test]
    fn settings_come_from_the_environment_and_name_bad_variables() {
        let env = |k: &str| match k {
            "FEED_SETTLE_MS" => Some("250".to_owned()),
            "WS_RECONNECT_AFTER_SECS" => Some("3".to_owned()),
            _ => None,
        };
        let s = FeedSettings::from_lookup(&env).unwrap();
        assert_eq!(s.settle, Duration::from_millis(250));
        assert_eq!(s.reconnect_after, Duration::from_secs(3));
        assert_eq!(s.retention, DEFAULT_RETENTION);
        let bad = |k: &str| (k == "FEED_RETENTION_DAYS").then(|| "0".to_owned());
        assert_eq!(FeedSettings::from_lookup(&bad).unwrap_err().var, "FEED_RETENTION_DAYS");
    }

    #[test]
    fn query_filters_are_validated_and_matched_as_or_within_and_across_kinds() {
        let sub = Subscription::from_query([
            ("api_key", "x"),
            ("queue", "General"),
            ("queue", " Support "),
            ("queue", "General"),
            ("type", "ticket.created"),
        ])
        .unwrap();
        assert_eq!(sub.queues, ["General", "Support"]);
        assert!(sub.matches(&note("ticket.created", "Support", 1)));
        assert!(!sub.matches(&note("ticket.replied", "Support", 1)));
        assert!(!sub.matches(&note("ticket.created", "Other", 1)));
        assert!(Subscription::everything().matches(&note("ticket.replied", "Other", 9)));
        assert_eq!(Subscription::from_query([("type", "nope")]).unwrap_err().field, "type");
        assert_eq!(Subscription::from_query([("ticket", "0")]).unwrap_err().field, "ticket");
        assert_eq!(Subscription::from_query([("queue", " ")]).unwrap_err().field, "queue");
        let many: Vec<(&str, &str)> = (0..21).map(|_| ("type", "ticket.created")).collect();
        assert!(Subscription::from_query(many).is_err());
    }

    /// A `ticket.status_changed` from `old` to `new`; the summary says `now` (what the
    /// relay read after the change, which may be later still).
    fn status_change(ticket: u64, old: &str, new: &str, now: &str) -> Notification {
        let mut n = note(crate::model::TICKET_STATUS_CHANGED, "General", ticket);
        n.ticket.status = now.into();
        n.change = Some(crate::model::FieldChange {
            field: "status".into(),
            old: old.into(),
            new: new.into(),
        });
        n
    }

    #[test]
    fn status_filters_are_validated_like_the_list_s_status_parameter() {
        let sub = Subscription::from_query([
            ("status", " open "),
            ("status", "stalled"),
            ("status", "open"),
            ("queue", "General"),
        ])
        .unwrap();
        assert_eq!(sub.statuses, ["open", "stalled"], "trimmed, duplicates dropped");
        assert!(!sub.is_everything());
        let long = "s".repeat(65);
        for bad in ["", "  ", "a\tb", long.as_str()] {
            let err = Subscription::from_query([("status", bad)]).unwrap_err();
            assert_eq!(err.field, "status", "{bad:?}");
        }
        assert!(Subscription::from_query([("status", "s".repeat(64).as_str())]).is_ok());
        let many: Vec<(&str, &str)> = (0..21).map(|_| ("status", "open")).collect();
        assert_eq!(Subscription::from_query(many).unwrap_err().field, "status");
    }

    #[test]
    fn a_status_filter_hears_tickets_in_the_status_and_tickets_leaving_or_entering_it() {
        let open = Subscription { statuses: vec!["open".into()], ..Default::default() };
        // GIVEN a filter on `open` THEN events on tickets that are open match
        let mut replied = note("ticket.replied", "General", 1);
        replied.ticket.status = "open".into();
        assert!(open.matches(&replied));
        // and a ticket created `new` does not
        assert!(!open.matches(&note("ticket.created", "General", 2)));
        // a ticket entering `open`, and one leaving it (even when the relay read a later
        // status than the change's), match
        assert!(open.matches(&status_change(3, "new", "open", "open")));
        assert!(open.matches(&status_change(3, "open", "resolved", "resolved")));
        assert!(open.matches(&status_change(3, "new", "open", "stalled")));
        // a change between two other statuses does not
        assert!(!open.matches(&status_change(3, "stalled", "resolved", "resolved")));
        // only a status change's `change` counts: an update's old value is not a status
        let mut moved = note("ticket.updated", "General", 4);
        moved.change = Some(crate::model::FieldChange {
            field: "queue".into(),
            old: "open".into(),
            new: "General".into(),
        });
        assert!(!open.matches(&moved));
        // kinds are AND: the queue must match too
        let narrow = Subscription { queues: vec!["Support".into()], ..open.clone() };
        assert!(!narrow.matches(&status_change(3, "new", "open", "open")));
    }

    #[test]
    fn a_stored_status_filter_round_trips_and_older_records_read_as_before() {
        let sub = Subscription {
            queues: vec!["General".into()],
            statuses: vec!["open".into()],
            ..Default::default()
        };
        let stored = sub.to_stored().unwrap();
        assert_eq!(stored, r#"{"queue":["General"],"type":[],"ticket":[],"status":["open"]}"#);
        assert_eq!(Subscription::from_stored(Some(&stored)), sub);
        let older =
            Subscription::from_stored(Some(r#"{"queue":["General"],"type":[],"ticket":[]}"#));
        assert!(older.statuses.is_empty());
        assert_eq!(older.queues, ["General"]);
        // Without statuses the JSON is the shape it always was.
        assert_eq!(
            Subscription { types: vec!["ticket.created".into()], ..Default::default() }
                .to_stored()
                .unwrap(),
            r#"{"queue":[],"type":["ticket.created"],"ticket":[]}"#
        );
    }

    #[test]
    fn client_messages_parse_and_bad_ones_get_an_error_message() {
        assert_eq!(ClientMessage::parse(r#"{"action":"ping"}"#), Ok(ClientMessage::Ping));
        assert_eq!(
            ClientMessage::parse(r#"{"action":"subscribe","queue":["General"],"ticket":[4]}"#),
            Ok(ClientMessage::Subscribe(Subscription {
                queues: vec!["General".into()],
                types: vec![],
                tickets: vec![4],
                ..Default::default()
            }))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"subscribe","status":["open","new"]}"#),
            Ok(ClientMessage::Subscribe(Subscription {
                statuses: vec!["open".into(), "new".into()],
                ..Default::default()
            }))
        );
        let err =
            ClientMessage::parse(r#"{"action":"subscribe","status":["\u0007"]}"#).unwrap_err();
        assert!(err.to_json().contains(r#""field":"status""#), "{}", err.to_json());
        let err = ClientMessage::parse(r#"{"action":"subscribe","status":"open"}"#).unwrap_err();
        assert!(err.to_json().contains(r#""code":"invalid_message""#));
        for bad in ["ping", "{}", r#"{"action":"dance"}"#, r#"{"action":"subscribe","queue":"A"}"#]
        {
            let err = ClientMessage::parse(bad).unwrap_err();
            assert!(err.to_json().contains(r#""code":"invalid_message""#), "{bad}");
        }
        let err = ClientMessage::parse(r#"{"action":"subscribe","type":["x"]}"#).unwrap_err();
        assert!(err.to_json().contains(r#""field":"type""#));
    }

    #[test]
    fn server_messages_have_their_documented_shapes() {
        assert_eq!(ServerMessage::Pong.to_json(), r#"{"type":"pong"}"#);
        assert_eq!(
            ServerMessage::Reconnect { since: Some("n1".into()), reason: "max_age".into() }
                .to_json(),
            r#"{"type":"reconnect","since":"n1","reason":"max_age"}"#
        );
        assert_eq!(
            ServerMessage::Resync { since: "n0".into(), reason: "position_expired".into() }
                .to_json(),
            r#"{"type":"resync","since":"n0","reason":"position_expired"}"#
        );
    }
}
