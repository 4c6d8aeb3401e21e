//! Wiring: the one place where clients and use cases are built, for every Lambda `main`
//! and for the local gateway. A `main` reads its configuration, loads ONE
//! [`SdkConfig`] with [`sdk_config`], and asks for its handler here; each handler gets
//! exactly the clients and tables its use case needs.
//!
//! Two levels: `*_over` functions wire a handler over ports (fakes in tests, or clients
//! built elsewhere); the others build the real clients from configuration first. Work
//! that should happen once at cold start (e.g. warming a connection) belongs in the
//! client builders here ([`rt_client`], [`dynamodb`], [`poster`]).

use std::{sync::Arc, time::Duration};

pub use aws_types::SdkConfig;

use crate::{
    auth::{dynamodb::DynamoApiKeys, ApiKeyStore, KeyAuthorizer},
    config::{ConfigError, PushConfig, RtConfig, Tables},
    fanout::{ApiGatewayPoster, ConnectionPoster, SqsTaskQueue, TaskQueue},
    feed::FeedSettings,
    handlers::{
        authorizer::RequestAuthorizer,
        notifications::ListNotifications,
        push::PushNotifications,
        push_worker::PushWorkerHandler,
        tickets::{GetTicket, ListTickets, PostTicket},
        ws::{ConnectionRoutes, DefaultRoute},
        HttpHandler,
    },
    routes::{self, Function},
    rt::{client_from_config, RtClient},
    store::{dynamodb::DynamoStore, IdempotencyStore, TicketStore},
    usecases::{
        connections::ResumeSetup,
        create_ticket::{CreateTicket, IdempotencyTiming},
        feeds::{KeepAlive, NotificationFeed, TicketFeed},
        push::{worker::PushWorker, Deliverer, Fanout},
        refresh_ticket::RefreshTicket,
        resume::{EnqueueResume, Resume},
    },
};

/// How long one post to a connection may take.
pub const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a push worker keeps of its invocation's remaining time: no post starts later than
/// this before the deadline, so one started just before still ends (its timeout) in time.
pub const WORKER_MARGIN: Duration = Duration::from_secs(6);

/// The AWS SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` locally) over the one TLS/HTTP stack ([`crate::aws`]). Build it once
/// per process and share it.
pub fn sdk_config() -> Result<SdkConfig, ConfigError> {
    crate::aws::sdk_config()
}

/// The DynamoDB client.
pub fn dynamodb(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

/// The SQS client (the fan-out queue).
pub fn sqs(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

/// The fan-out queue at `queue_url`.
pub fn task_queue(sdk: &SdkConfig, queue_url: &str) -> Arc<dyn TaskQueue> {
    Arc::new(SqsTaskQueue::new(sqs(sdk), queue_url))
}

/// The RT adapter `config` names, with one pooled HTTP client.
pub fn rt_client(config: &RtConfig) -> Result<Arc<dyn RtClient>, ConfigError> {
    client_from_config(config)
        .map_err(|e| ConfigError { var: "RT_API_URL", problem: e.to_string() })
}

/// The Management API client posting to the stage at `endpoint`.
pub fn poster(sdk: &SdkConfig, endpoint: &url::Url) -> Arc<dyn ConnectionPoster> {
    Arc::new(ApiGatewayPoster::new(sdk, endpoint, POST_TIMEOUT))
}

/// The store over the tables a function was given.
pub fn store(sdk: &SdkConfig, tables: &Tables) -> Arc<DynamoStore> {
    Arc::new(DynamoStore::new(dynamodb(sdk), tables.clone()))
}

/// The ports the HTTP functions are built over, all of them (the local gateway has every
/// table; a Lambda `main` builds only its own function, through the typed builders below).
#[derive(Clone)]
pub struct HttpPorts {
    /// RT.
    pub rt: Arc<dyn RtClient>,
    /// Tickets and notifications.
    pub tickets: Arc<dyn TicketStore>,
    /// Idempotency records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The relay's default queue (`RT_DEFAULT_QUEUE`).
    pub default_queue: String,
    /// Leases and waits of the idempotency protocol.
    pub idempotency_timing: IdempotencyTiming,
    /// The live feed's settle horizon and retention (`since` reads).
    pub feed: FeedSettings,
}

impl std::fmt::Debug for HttpPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPorts")
            .field("default_queue", &self.default_queue)
            .field("idempotency_timing", &self.idempotency_timing)
            .finish_non_exhaustive()
    }
}

/// The handler of `function` over `ports`: the one place an HTTP function of the routes
/// table is wired for the local gateway, which builds every row's handler from here (a
/// unit test checks that every HTTP row but the RT webhook, wired with RT's events, has
/// one). `None` for any other function.
pub fn http_handler(function: Function, ports: &HttpPorts) -> Option<Arc<dyn HttpHandler>> {
    let handler: Arc<dyn HttpHandler> = match function {
        routes::POST_TICKET => Arc::new(PostTicket::new(CreateTicket::new(
            ports.rt.clone(),
            ports.tickets.clone(),
            ports.idempotency.clone(),
            ports.default_queue.clone(),
            ports.idempotency_timing,
        ))),
        routes::GET_TICKET => Arc::new(get_ticket_over(ports.rt.clone(), ports.tickets.clone())),
        routes::LIST_TICKETS => Arc::new(list_tickets_over(ports.tickets.clone())),
        routes::LIST_NOTIFICATIONS => {
            Arc::new(list_notifications_over(ports.tickets.clone(), ports.feed))
        }
        // No WebSocket URL here: the local gateway gives the board its own once it is bound.
        routes::BOARD => Arc::new(crate::handlers::board::Board::default()),
        _ => return None,
    };
    Some(handler)
}

/// `POST /tickets`: RT (the adapter built from `rt` with [`rt_client`], which the
/// function's warm-up uses too), and the tickets, notifications and idempotency tables.
pub fn post_ticket(
    sdk: &SdkConfig,
    rt: &RtConfig,
    rt_client: Arc<dyn RtClient>,
    tables: &Tables,
) -> PostTicket {
    let store = store(sdk, tables);
    let timing = IdempotencyTiming::for_rt_timeout(rt.timeout);
    let create =
        CreateTicket::new(rt_client, store.clone(), store, rt.default_queue.clone(), timing);
    PostTicket::new(create)
}

/// `GET /tickets/{id}` over its ports.
pub fn get_ticket_over(rt: Arc<dyn RtClient>, tickets: Arc<dyn TicketStore>) -> GetTicket {
    GetTicket::new(RefreshTicket::new(rt, tickets))
}

/// `GET /tickets/{id}`: RT (an adapter from [`rt_client`]) and the tickets table.
pub fn get_ticket(sdk: &SdkConfig, rt: Arc<dyn RtClient>, tables: &Tables) -> GetTicket {
    get_ticket_over(rt, store(sdk, tables))
}

/// `GET /tickets` over the tickets store.
pub fn list_tickets_over(tickets: Arc<dyn TicketStore>) -> ListTickets {
    ListTickets::new(TicketFeed::new(tickets))
}

/// `GET /tickets`: the tickets table.
pub fn list_tickets(sdk: &SdkConfig, tables: &Tables) -> ListTickets {
    list_tickets_over(store(sdk, tables))
}

/// `GET /notifications` over the notifications store.
pub fn list_notifications_over(
    notifications: Arc<dyn TicketStore>,
    feed: FeedSettings,
) -> ListNotifications {
    ListNotifications::new(NotificationFeed::new(notifications).with_settings(feed))
}

/// `GET /notifications`: the notifications table.
pub fn list_notifications(
    sdk: &SdkConfig,
    tables: &Tables,
    feed: FeedSettings,
) -> ListNotifications {
    list_notifications_over(store(sdk, tables), feed)
}

/// The feed's rules from the environment (`FEED_SETTLE_MS`, `FEED_RETENTION_DAYS`,
/// `WS_RECONNECT_AFTER_SECS`).
pub fn feed_settings() -> Result<FeedSettings, ConfigError> {
    FeedSettings::from_lookup(&|k| std::env::var(k).ok())
}

/// `$default` over the notifications store (a `reconnect` position) and the connections
/// store (`subscribe`).
pub fn default_route_over(
    notifications: Arc<dyn TicketStore>,
    connections: Arc<dyn crate::store::ConnectionStore>,
    feed: FeedSettings,
) -> DefaultRoute {
    DefaultRoute::from(KeepAlive::new(notifications, feed)).with_subscriptions(connections)
}

/// `$default`: the notifications table and the connections table.
pub fn default_route(sdk: &SdkConfig, tables: &Tables, feed: FeedSettings) -> DefaultRoute {
    let store = store(sdk, tables);
    default_route_over(store.clone(), store, feed)
}

/// `$connect` and `$disconnect`: the connections table, and `MAX_CONNECTIONS_PER_KEY`
/// (default 100) open connections per API key.
pub fn connection_routes(
    sdk: &SdkConfig,
    tables: &Tables,
) -> Result<ConnectionRoutes, ConfigError> {
    let max = crate::handlers::ws::max_connections_per_key(&|k| std::env::var(k).ok())?;
    Ok(ConnectionRoutes::new(store(sdk, tables)).with_max_connections_per_key(max))
}

/// What `$connect` needs to accept `since`: the notifications store (the position), the
/// feed's rules, and the fan-out queue the resume tasks go to (a push worker runs them).
pub fn resume_setup_over(
    notifications: Arc<dyn TicketStore>,
    feed: FeedSettings,
    queue: Arc<dyn TaskQueue>,
) -> ResumeSetup {
    ResumeSetup { notifications, settings: feed, starter: Arc::new(EnqueueResume::new(queue)) }
}

/// `$connect`: [`connection_routes`] that also accept `since`, resolved in the
/// notifications table and resumed through the fan-out queue at `queue_url`.
pub fn connect_route(
    sdk: &SdkConfig,
    tables: &Tables,
    feed: FeedSettings,
    queue_url: &str,
) -> Result<ConnectionRoutes, ConfigError> {
    let setup = resume_setup_over(store(sdk, tables), feed, task_queue(sdk, queue_url));
    Ok(connection_routes(sdk, tables)?.with_resume(setup))
}

/// The resume use case over its ports (the push worker runs it).
pub fn resume_over(
    store: Arc<DynamoStore>,
    poster: Arc<dyn ConnectionPoster>,
    feed: FeedSettings,
) -> Resume {
    Resume::new(store.clone(), store, poster, feed)
}

/// The fan-out over the connections table and the stage's Management API, sharding
/// through the fan-out queue when `config` names one.
fn fanout(sdk: &SdkConfig, config: &PushConfig, tables: &Tables) -> Fanout {
    let fanout = Fanout::new(store(sdk, tables), poster(sdk, &config.management_endpoint))
        .with_concurrency(config.concurrency);
    match &config.queue_url {
        Some(url) => fanout.with_sharding(config.sharding, task_queue(sdk, url)),
        None => fanout,
    }
}

/// The push: the connections table, the stage's Management API and the fan-out queue.
pub fn push_notifications(
    sdk: &SdkConfig,
    config: &PushConfig,
    tables: &Tables,
) -> PushNotifications {
    fanout(sdk, config, tables).into()
}

/// The push worker: posts the fan-out queue's tasks and runs its resumes (the connections
/// and notifications tables); needs `PUSH_QUEUE_URL` (remainders and continuations).
pub fn push_worker(
    sdk: &SdkConfig,
    config: &PushConfig,
    tables: &Tables,
    feed: FeedSettings,
) -> Result<PushWorkerHandler, ConfigError> {
    let url = config
        .queue_url
        .as_deref()
        .ok_or_else(|| ConfigError { var: "PUSH_QUEUE_URL", problem: "is not set".into() })?;
    let poster = poster(sdk, &config.management_endpoint);
    let store = store(sdk, tables);
    let deliverer = Deliverer::new(store.clone(), poster.clone(), config.concurrency);
    let resume = resume_over(store, poster, feed);
    Ok(PushWorker::new(deliverer, task_queue(sdk, url)).with_resume(resume).into())
}

/// The authorizer over a key store.
pub fn authorizer_over(keys: Arc<dyn ApiKeyStore>) -> RequestAuthorizer {
    RequestAuthorizer::new(KeyAuthorizer::new(keys))
}

/// The authorizer: the API keys table.
pub fn authorizer(sdk: &SdkConfig, tables: &Tables) -> Result<RequestAuthorizer, ConfigError> {
    let table = tables
        .api_keys
        .clone()
        .ok_or_else(|| ConfigError { var: "API_KEYS_TABLE", problem: "is not set".into() })?;
    Ok(authorizer_over(Arc::new(DynamoApiKeys::new(dynamodb(sdk), table))))
}
