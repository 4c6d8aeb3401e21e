//! WebSocket API routes: `$connect` records the connection with the API key it was admitted
//! with (refusing a key over its connection limit with 429), `$disconnect` forgets it,
//! `$default` answers `ping` with `pong` and any other message with a short help text.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use tracing::{error, info};

use crate::{
    feed::{ClientMessage, ServerMessage, Subscription},
    http::error_chain,
    store::{ConnectionOwner, ConnectionStore},
    tenant::{relay_default_queue, Caller},
    usecases::{
        connections::{Admission, ConnectionTracker},
        feeds::KeepAlive,
    },
};

/// Default for how many connections one API key may hold open (`MAX_CONNECTIONS_PER_KEY`).
pub const DEFAULT_MAX_CONNECTIONS_PER_KEY: usize = 100;

/// What `$connect` answers a key at its connection limit.
const OVER_LIMIT: &str =
    r#"{"message":"this API key has too many open connections; close one or use another key"}"#;

/// What `$connect` answers `since` where no resume is wired.
const NO_RESUME: &str = r#"{"message":"since is not served on this deployment's WebSocket; connect without it and catch up with GET /notifications?since=<id>"}"#;

/// Sets what `$connect` needs to accept `since`.
impl ConnectionRoutes {
    /// Accepts `since`, resuming through `setup`.
    pub fn with_resume(mut self, setup: crate::usecases::connections::ResumeSetup) -> Self {
        self.tracker = self.tracker.with_resume(setup);
        self
    }
}

/// What `$default` answers.
pub const HELP: &str = r#"{"message":"rt-relay pushes a JSON notification for every new ticket on this connection; send {\"action\":\"ping\"} every 5 minutes to keep it open (answered {\"type\":\"pong\"}); narrow the feed with {\"action\":\"subscribe\",\"queue\":[...],\"type\":[...],\"ticket\":[...]}. Dedupe by the notification's id; after a gap, catch up with GET /notifications?since=<last id>."}"#;

fn response(status: i64, body: Option<&str>) -> ApiGatewayProxyResponse {
    let mut resp = ApiGatewayProxyResponse::default();
    resp.status_code = status;
    resp.body = body.map(|b| Body::Text(b.to_owned()));
    resp
}

/// `$connect` and `$disconnect`, over [`ConnectionTracker`].
#[derive(Debug, Clone)]
pub struct ConnectionRoutes {
    tracker: ConnectionTracker,
}

impl From<ConnectionTracker> for ConnectionRoutes {
    fn from(tracker: ConnectionTracker) -> Self {
        Self { tracker }
    }
}

impl ConnectionRoutes {
    /// Shorthand for routes over [`ConnectionTracker::new`], with the default connection
    /// limit per key.
    pub fn new(connections: Arc<dyn ConnectionStore>) -> Self {
        ConnectionTracker::new(connections)
            .with_max_connections_per_key(DEFAULT_MAX_CONNECTIONS_PER_KEY)
            .into()
    }

    /// Sets how many connections one API key may hold open.
    pub fn with_max_connections_per_key(mut self, max: usize) -> Self {
        self.tracker = self.tracker.with_max_connections_per_key(max);
        self
    }

    /// `$connect`: 200 admits the client; anything else makes API Gateway refuse it.
    pub async fn connect(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Some(id) = event.request_context.connection_id else {
            return response(400, Some("missing connection id"));
        };
        let caller =
            Caller::from_context(&event.request_context.authorizer.fields, relay_default_queue());
        let owner = caller.map(|caller| ConnectionOwner {
            key_id: caller.key_id.clone(),
            queues: caller.queues.to_context(),
        });
        let since = event.query_string_parameters.first("since");
        // API Gateway (and the local gateway) keep one value per name, the last, in
        // `queryStringParameters`, and every value in `multiValueQueryStringParameters`:
        // filters repeat (`queue=A&queue=B`), so they are read from the latter.
        let query = if event.multi_value_query_string_parameters.is_empty() {
            &event.query_string_parameters
        } else {
            &event.multi_value_query_string_parameters
        };
        let subscription = match Subscription::from_query(query.iter()) {
            Ok(s) => s,
            Err(e) => {
                let body = ServerMessage::Error {
                    code: "invalid_subscription".into(),
                    message: e.message,
                    field: Some(e.field.into()),
                };
                return response(400, Some(&body.to_json()));
            }
        };
        match self.tracker.connected(&id, owner.as_ref(), since, &subscription).await {
            Ok(Admission::Admitted) => response(200, None),
            Ok(Admission::ResumeUnavailable) => response(400, Some(NO_RESUME)),
            Ok(Admission::OverLimit { open }) => {
                info!(connection_id = %id, open, "over the key's connection limit");
                response(429, Some(OVER_LIMIT))
            }
            Err(e) => {
                error!(connection_id = %id, error = %error_chain(&e), "could not record connection");
                response(500, None)
            }
        }
    }

    /// `$disconnect`: forgets the connection.
    pub async fn disconnect(
        &self,
        event: ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(id) = event.request_context.connection_id else { return response(400, None) };
        match self.tracker.disconnected(&id).await {
            Ok(()) => response(200, None),
            Err(e) => {
                // The push function removes it on its first 410 anyway.
                error!(connection_id = %id, error = %error_chain(&e), "could not remove connection");
                response(500, None)
            }
        }
    }
}

/// Reads `MAX_CONNECTIONS_PER_KEY` (1 to 10,000; default 100).
pub fn max_connections_per_key(
    lookup: crate::config::Lookup<'_>,
) -> Result<usize, crate::config::ConfigError> {
    crate::config::integer(
        lookup,
        "MAX_CONNECTIONS_PER_KEY",
        1..=10_000,
        DEFAULT_MAX_CONNECTIONS_PER_KEY,
    )
}

/// `$default`: the integration response is the reply (the template declares a route response).
/// `{"action":"ping"}` is answered `{"type":"pong"}` (clients send it every 5 minutes to
/// stay under API Gateway's 10-minute idle limit), or `{"type":"reconnect","since":…}` once
/// the connection is old enough to be cut soon ([`KeepAlive`]); `{"action":"subscribe",…}`
/// replaces the connection's filter (answered `{"type":"subscribed",…}`, bad input
/// `{"type":"error",…}`); anything else gets the help text.
#[derive(Debug, Clone)]
pub struct DefaultRoute {
    keep_alive: KeepAlive,
    subscriptions: Option<ConnectionTracker>,
}

impl From<KeepAlive> for DefaultRoute {
    fn from(keep_alive: KeepAlive) -> Self {
        Self { keep_alive, subscriptions: None }
    }
}

impl DefaultRoute {
    /// Answers one client message.
    pub async fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        match event.body.as_deref().map(ClientMessage::parse) {
            Some(Ok(ClientMessage::Ping)) => {
                let connected_at = event.request_context.connected_at;
                let answer = self.keep_alive.ping(connected_at).await.unwrap_or_else(|e| {
                    // The client stays connected until the cut and then resumes from the
                    // last id it received: nothing is lost, only the early warning.
                    error!(error = %error_chain(&e), "could not read the feed for a reconnect position");
                    ServerMessage::Pong
                });
                response(200, Some(&answer.to_json()))
            }
            Some(Ok(ClientMessage::Subscribe(subscription))) => {
                let answer = self
                    .subscribe(event.request_context.connection_id.as_deref(), subscription)
                    .await;
                response(200, Some(&answer.to_json()))
            }
            // A subscribe the relay cannot use is answered with what is wrong; other
            // unknown messages get the help text.
            Some(Err(error)) if is_subscribe(event.body.as_deref()) => {
                response(200, Some(&error.to_json()))
            }
            _ => response(200, Some(HELP)),
        }
    }

    /// Stores the connection's subscriptions through `connections`.
    pub fn with_subscriptions(mut self, connections: Arc<dyn ConnectionStore>) -> Self {
        self.subscriptions = Some(ConnectionTracker::new(connections));
        self
    }

    async fn subscribe(&self, id: Option<&str>, subscription: Subscription) -> ServerMessage {
        let failed = |message: &str| ServerMessage::Error {
            code: "subscribe_failed".into(),
            message: message.into(),
            field: None,
        };
        let (Some(tracker), Some(id)) = (&self.subscriptions, id) else {
            return failed("subscriptions are not served on this connection");
        };
        match tracker.subscribe(id, &subscription).await {
            Ok(true) => ServerMessage::Subscribed { subscription },
            Ok(false) => failed("this connection is not recorded; reconnect"),
            Err(e) => {
                error!(connection_id = %id, error = %error_chain(&e), "could not store a subscription");
                failed("the subscription could not be stored; the previous one stays, try again")
            }
        }
    }
}

fn is_subscribe(body: Option<&str>) -> bool {
    body.and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .is_some_and(|v| v.get("action").and_then(serde_json::Value::as_str) == Some("subscribe"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        feed::FeedSettings,
        store::{memory::MemoryStore, PageAfter},
    };
    use chrono::Utc;

    fn event(id: &str) -> ApiGatewayWebsocketProxyRequest {
        let mut e = ApiGatewayWebsocketProxyRequest::default();
        e.request_context.connection_id = Some(id.to_owned());
        e
    }

    #[tokio::test]
    async fn connect_then_disconnect_tracks_the_connection() {
        let store = Arc::new(MemoryStore::new());
        let routes = ConnectionRoutes::new(store.clone());
        assert_eq!(routes.connect(event("c1")).await.status_code, 200);
        assert_eq!(store.connection_count(), 1);
        assert_eq!(routes.disconnect(event("c1")).await.status_code, 200);
        assert_eq!(store.connection_count(), 0);
    }

    #[tokio::test]
    async fn connect_without_an_id_is_refused() {
        let routes = ConnectionRoutes::new(Arc::new(MemoryStore::new()));
        assert_eq!(
            routes.connect(ApiGatewayWebsocketProxyRequest::default()).await.status_code,
            400
        );
    }

    #[tokio::test]
    async fn ping_is_answered_pong() {
        let route = DefaultRoute::from(KeepAlive::new(
            Arc::new(MemoryStore::new()),
            FeedSettings::default(),
        ));
        let mut e = event("c");
        e.body = Some(r#"{"action":"ping"}"#.into());
        e.request_context.connected_at = Utc::now().timestamp_millis();
        let r = route.handle(e).await;
        assert!(matches!(r.body, Some(Body::Text(ref t)) if t == r#"{"type":"pong"}"#));
    }

    #[tokio::test]
    async fn default_route_answers_help() {
        let route = DefaultRoute::from(KeepAlive::new(
            Arc::new(MemoryStore::new()),
            FeedSettings::default(),
        ));
        let r = route.handle(event("c")).await;
        assert_eq!(r.status_code, 200);
        assert!(matches!(r.body, Some(Body::Text(ref t)) if t.contains("rt-relay")));
    }

    fn with_query(id: &str, pairs: &[(&str, &str)]) -> ApiGatewayWebsocketProxyRequest {
        let mut map: std::collections::HashMap<String, Vec<String>> = Default::default();
        for (k, v) in pairs {
            map.entry((*k).to_owned()).or_default().push((*v).to_owned());
        }
        let mut e = event(id);
        e.query_string_parameters = map.into();
        e
    }

    fn text(r: &ApiGatewayProxyResponse) -> serde_json::Value {
        match &r.body {
            Some(Body::Text(t)) => serde_json::from_str(t).unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }

    async fn filter_of(store: &MemoryStore, id: &str) -> Option<Subscription> {
        let (all, _) = store.recipients(&PageAfter::first(100)).await.unwrap_or_default();
        let r = all.into_iter().find(|r| r.id == id)?;
        Some(Subscription::from_stored(r.filter.as_deref()))
    }

    #[tokio::test]
    async fn connect_stores_the_query_filter_and_refuses_a_bad_one_with_400() {
        let store = Arc::new(MemoryStore::new());
        let routes = ConnectionRoutes::new(store.clone());
        let q = [("queue", "Support"), ("queue", "General"), ("type", "ticket.created")];
        assert_eq!(routes.connect(with_query("c1", &q)).await.status_code, 200);
        let got = filter_of(&store, "c1").await.expect("recorded");
        assert_eq!(got.queues.len(), 2, "{got:?}");
        assert!(got.queues.contains(&"Support".to_owned()));
        assert_eq!(got.types, ["ticket.created"]);
        assert_eq!(routes.connect(event("c2")).await.status_code, 200);
        assert_eq!(filter_of(&store, "c2").await, Some(Subscription::everything()));

        for (bad, field) in [
            (("type", "ticket.nope"), "type"),
            (("ticket", "x"), "ticket"),
            (("queue", " "), "queue"),
        ] {
            let r = routes.connect(with_query("c3", &[bad])).await;
            assert_eq!(r.status_code, 400, "{bad:?}");
            assert_eq!(text(&r)["code"], "invalid_subscription");
            assert_eq!(text(&r)["field"], field);
        }
        assert_eq!(store.connection_count(), 2, "a refused connection is not recorded");
    }

    #[tokio::test]
    async fn repeated_filters_are_read_from_the_multi_value_parameters() {
        // GIVEN `?queue=A&queue=B&status=open&status=new` as API Gateway sends it: the last
        // value of each name single-valued, all of them multi-valued
        let store = Arc::new(MemoryStore::new());
        let routes = ConnectionRoutes::new(store.clone());
        let mut e = event("c");
        let single: std::collections::HashMap<String, String> =
            [("queue", "B"), ("status", "new")].map(|(k, v)| (k.into(), v.into())).into();
        e.query_string_parameters = single.into();
        let multi: std::collections::HashMap<String, Vec<String>> = [
            ("queue".to_owned(), vec!["A".to_owned(), "B".to_owned()]),
            ("status".to_owned(), vec!["open".to_owned(), "new".to_owned()]),
        ]
        .into();
        e.multi_value_query_string_parameters = multi.into();
        // WHEN it connects THEN every value is in its filter
        assert_eq!(routes.connect(e).await.status_code, 200);
        let filter = filter_of(&store, "c").await.expect("a stored connection");
        assert_eq!(filter.queues, ["A", "B"]);
        assert_eq!(filter.statuses, ["open", "new"]);
    }

    #[tokio::test]
    async fn subscribe_replaces_the_filter_and_bad_input_is_answered_with_an_error() {
        let store = Arc::new(MemoryStore::new());
        let routes = ConnectionRoutes::new(store.clone());
        assert_eq!(routes.connect(with_query("c", &[("queue", "A")])).await.status_code, 200);
        let route = DefaultRoute::from(KeepAlive::new(store.clone(), FeedSettings::default()))
            .with_subscriptions(store.clone());
        let send = |body: &str| {
            let mut e = event("c");
            e.body = Some(body.to_owned());
            route.handle(e)
        };
        let r = send(r#"{"action":"subscribe","type":["ticket.replied"],"ticket":[7]}"#).await;
        assert_eq!(
            text(&r),
            serde_json::json!({"type": "subscribed", "subscription":
                {"queue": [], "type": ["ticket.replied"], "ticket": [7]}})
        );
        let got = filter_of(&store, "c").await.expect("recorded");
        assert!(got.queues.is_empty() && got.tickets == [7], "replaced, not merged: {got:?}");

        let r = send(r#"{"action":"subscribe","ticket":["seven"]}"#).await;
        assert_eq!(text(&r)["type"], "error");
        let r = send(r#"{"action":"subscribe","queue":["A"],"type":["x"]}"#).await;
        assert_eq!(text(&r)["field"], "type");
        assert_eq!(
            filter_of(&store, "c").await.expect("kept").tickets,
            [7],
            "bad input changes nothing"
        );

        let r = send(r#"{"action":"subscribe"}"#).await;
        assert_eq!(text(&r)["type"], "subscribed");
        assert_eq!(filter_of(&store, "c").await, Some(Subscription::everything()));
    }
    #[tokio::test]
    async fn connect_with_since_enqueues_the_resume_and_undoes_the_record_when_it_cannot() {
        use crate::{
            fanout::MemoryTaskQueue, usecases::connections::ResumeSetup,
            usecases::resume::EnqueueResume,
        };
        let store = Arc::new(MemoryStore::new());
        let since = [("since", "ticket-1-created")];
        // Without a resume wired, `since` is refused and nothing is recorded.
        let plain = ConnectionRoutes::new(store.clone());
        assert_eq!(plain.connect(with_query("c0", &since)).await.status_code, 400);
        assert_eq!(store.connection_count(), 0);

        let queue = Arc::new(MemoryTaskQueue::new());
        let routes = ConnectionRoutes::new(store.clone()).with_resume(ResumeSetup {
            notifications: store.clone(),
            settings: FeedSettings::default(),
            starter: Arc::new(EnqueueResume::new(queue.clone())),
        });
        assert_eq!(routes.connect(with_query("c1", &since)).await.status_code, 200);
        assert_eq!(queue.pop_resume().map(|t| t.resume), Some("c1".to_owned()));
        assert_eq!(store.connection_count(), 1);

        queue.set_failing(true);
        assert_eq!(routes.connect(with_query("c2", &since)).await.status_code, 500);
        assert_eq!(store.connection_count(), 1, "c2 is not left recorded without its resume");
        assert!(queue.pop_resume().is_none());
    }
}
