//! rt-relay's local gateway: the whole product on one machine, driving the SAME handler
//! code the Lambda functions run, through the same event shapes.
//!
//! - [`http_api`]: an API Gateway HTTP API (payload 2.0) in front of the four HTTP
//!   functions, through `lambda_http`'s own adapter, behind the template's Lambda
//!   authorizer (API keys; no cache, so a revoked key is refused on its next request).
//! - [`websocket`]: an API Gateway WebSocket API (`$connect` with its authorizer,
//!   `$default`, `$disconnect`).
//! - [`connections`]: the live-connection registry and the Management API
//!   (`/@connections/{id}`) the push function posts through with the real AWS SDK, on its
//!   own loopback-only listener (on AWS it needs an IAM signature; here, being local).
//! - [`stream`]: the event source mapping from the notifications table's stream (moto) to
//!   the push function.
//! - [`openapi`]: the HTTP API's OpenAPI document, served at `GET /openapi.json`.
//!
//! Start it in-process with [`Gateway::start`] (what the `rt-relay-gateway` binary and the
//! end-to-end tests do), or with [`Gateway::start_with`] over any stores and RT client.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rt_relay_shared::{
    auth::ApiKeyStore,
    config::{ConfigError, RtConfig, Tables},
    events::{dynamodb::DynamoEvents, ingest::Ingest, sync::Sync, webhook::RtWebhook},
    feed::FeedSettings,
    handlers::{
        authorizer::RequestAuthorizer,
        board::Board,
        ws::{ConnectionRoutes, DefaultRoute},
    },
    routes,
    rt::{transactions::RtTransactions, transactions_client_from_config, RtClient, RtError},
    store::{
        schema::{create_tables, notifications_stream_arn},
        ConnectionStore, IdempotencyStore, StoreError, TicketStore,
    },
    usecases::{
        create_ticket::IdempotencyTiming,
        push::{worker::PushWorker, Fanout},
        resume::Resume,
    },
    wiring,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tracing::{info, warn};

pub mod config;
pub mod connections;
pub mod http_api;
mod ids;
pub mod limits;
pub mod openapi;
pub mod sqs;
pub mod stream;
pub mod websocket;

pub use config::{EventSettings, GatewayConfig, StreamSettings, WsSettings};
pub use connections::ConnectionRegistry;
pub use http_api::HttpFunctions;

/// How long shutdown waits for sockets to finish their close handshake and `$disconnect`.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// DynamoDB (moto) failed: creating tables or finding the stream.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The RT client could not be built.
    #[error(transparent)]
    Rt(#[from] RtError),
}

/// The handler set the gateway drives: the same structs each Lambda's `main` builds.
#[derive(Debug, Clone)]
pub struct Functions {
    /// The four HTTP API functions.
    pub http: HttpFunctions,
    /// `$connect` and `$disconnect`.
    pub connection_routes: ConnectionRoutes,
    /// `$default`.
    pub default_route: DefaultRoute,
    /// The connections store the push function reads.
    pub connections: Arc<dyn ConnectionStore>,
    /// The notifications store the resume replays from.
    pub notifications: Arc<dyn TicketStore>,
    /// The feed's rules.
    pub feed: FeedSettings,
    /// The Lambda authorizer in front of both APIs (API keys). [`Gateway::start`] (the
    /// binary, `make dev`, the end-to-end tests) always sets it; `None` checks no keys at
    /// all and is only for in-process tests and benchmarks over fakes.
    pub authorizer: Option<RequestAuthorizer>,
    /// The RT sync and the pause between its runs (the template's schedule), if any.
    pub rt_sync: Option<(Sync, Duration)>,
}

impl Functions {
    /// Wires every function over one store (DynamoDB, or the in-memory fake) and one RT
    /// client, with the same `wiring` functions the Lambda functions use.
    pub fn new<S>(
        rt: Arc<dyn RtClient>,
        store: Arc<S>,
        default_queue: String,
        rt_timeout: Duration,
    ) -> Self
    where
        S: TicketStore + IdempotencyStore + ConnectionStore + 'static,
    {
        let ports = wiring::HttpPorts {
            rt,
            tickets: store.clone(),
            idempotency: store.clone(),
            default_queue,
            idempotency_timing: IdempotencyTiming::for_rt_timeout(rt_timeout),
            feed: FeedSettings::default(),
        };
        Self {
            http: HttpFunctions::wire(&ports),
            rt_sync: None,
            connection_routes: ConnectionRoutes::new(store.clone()),
            default_route: wiring::default_route_over(
                store.clone(),
                store.clone(),
                FeedSettings::default(),
            ),
            notifications: store.clone(),
            feed: FeedSettings::default(),
            connections: store,
            authorizer: None,
        }
    }

    /// Adds RT's own events over `rt` and `events` (DynamoDB or a fake): the webhook route
    /// when `settings` has a secret, the sync on a timer when it has an interval.
    pub fn with_rt_events(
        mut self,
        rt: Arc<dyn RtTransactions>,
        events: Arc<DynamoEvents>,
        settings: &EventSettings,
    ) -> Self {
        let ingest = Ingest::new(rt.clone(), events.clone());
        if let Some(secret) = settings.webhook_secret.clone() {
            let webhook = RtWebhook::new(secret, events.clone(), rt.clone(), ingest.clone());
            self.http.insert(routes::RT_WEBHOOK, Arc::new(webhook));
        }
        self.rt_sync = settings
            .sync_interval
            .map(|every| (Sync::new(rt, ingest, events, settings.sync), every));
        self
    }

    /// Every function as its Lambda `main` builds it (real RT and DynamoDB clients from
    /// one SDK configuration), with the authorizer in front.
    pub fn from_config(
        sdk: &wiring::SdkConfig,
        rt: &RtConfig,
        tables: &Tables,
        feed: FeedSettings,
    ) -> Result<Self, ConfigError> {
        let store = wiring::store(sdk, tables);
        let ports = wiring::HttpPorts {
            rt: wiring::rt_client(rt)?,
            tickets: store.clone(),
            idempotency: store.clone(),
            default_queue: rt.default_queue.clone(),
            idempotency_timing: IdempotencyTiming::for_rt_timeout(rt.timeout),
            feed,
        };
        Ok(Self {
            http: HttpFunctions::wire(&ports),
            rt_sync: None,
            connection_routes: wiring::connection_routes(sdk, tables)?,
            default_route: wiring::default_route(sdk, tables, feed),
            notifications: store.clone(),
            feed,
            connections: store,
            authorizer: Some(wiring::authorizer(sdk, tables)?),
        })
    }

    /// Puts the API-key authorizer over `keys` in front of both APIs, as the template does.
    pub fn with_api_keys(mut self, keys: Arc<dyn ApiKeyStore>) -> Self {
        self.authorizer = Some(wiring::authorizer_over(keys));
        self
    }
}

/// Listen addresses and API behaviour for [`Gateway::start_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// HTTP API address.
    pub http_addr: SocketAddr,
    /// WebSocket API address.
    pub ws_addr: SocketAddr,
    /// `@connections` address (loopback only).
    pub management_addr: SocketAddr,
    /// Whether the HTTP and WebSocket APIs may bind beyond loopback.
    pub allow_non_loopback: bool,
    /// WebSocket behaviour.
    pub ws: WsSettings,
    /// `Access-Control-Allow-Origin`, or `None` for no CORS.
    pub cors_allow_origin: Option<String>,
    /// Posts in flight at once in the push function.
    pub push_concurrency: usize,
    /// The fan-out queue's URL and its event source: with it the push shards past
    /// `PUSH_SHARD_OVER`, `$connect` accepts `since` (the resume is a queue task) and this
    /// gateway runs the worker (`None`: the push never shards and `since` is refused 400).
    pub fanout: Option<(String, sqs::FanoutSettings)>,
}

impl ServerOptions {
    /// Loopback on free ports, API Gateway's defaults otherwise.
    pub fn loopback() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            http_addr: any,
            ws_addr: any,
            management_addr: any,
            allow_non_loopback: false,
            ws: WsSettings::default(),
            cors_allow_origin: Some("*".into()),
            push_concurrency: 100,
            fanout: None,
        }
    }
}

impl From<&GatewayConfig> for ServerOptions {
    fn from(c: &GatewayConfig) -> Self {
        Self {
            http_addr: c.http_addr,
            ws_addr: c.ws_addr,
            management_addr: c.management_addr,
            allow_non_loopback: c.allow_non_loopback,
            ws: c.ws.clone(),
            cors_allow_origin: c.cors_allow_origin.clone(),
            push_concurrency: c.push_concurrency,
            fanout: None,
        }
    }
}

/// The notifications stream to drive the push function from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSource {
    /// The stream's ARN.
    pub stream_arn: String,
    /// How to poll it.
    pub settings: StreamSettings,
}

/// Starts gateways.
#[derive(Debug)]
pub struct Gateway;

impl Gateway {
    /// The whole local stack: DynamoDB from the environment (`AWS_ENDPOINT_URL`, moto),
    /// tables created from `schema::TABLES` if missing, RT from `config.rt`, and the stream
    /// poller on the notifications table.
    pub async fn start(config: GatewayConfig) -> Result<RunningGateway, GatewayError> {
        let sdk = wiring::sdk_config()?;
        let dynamodb = wiring::dynamodb(&sdk);
        create_tables(&dynamodb, &config.tables).await?;
        let stream_arn = notifications_stream_arn(&dynamodb, &config.tables).await?;
        let events = Arc::new(DynamoEvents::new(dynamodb.clone(), config.tables.clone()));
        let mut functions = Functions::from_config(&sdk, &config.rt, &config.tables, config.feed)?
            .with_rt_events(transactions_client_from_config(&config.rt)?, events, &config.events);
        functions.connection_routes = functions
            .connection_routes
            .with_max_connections_per_key(config.max_connections_per_key);
        let stream = StreamSource { stream_arn, settings: config.stream.clone() };
        let queue_url = sqs::ensure_queues(&wiring::sqs(&sdk), &config.fanout)
            .await
            .map_err(|e| ConfigError { var: "AWS_ENDPOINT_URL", problem: e.to_string() })?;
        let mut options = ServerOptions::from(&config);
        options.fanout = Some((queue_url, config.fanout.clone()));
        Self::start_with(options, functions, Some(stream)).await
    }

    /// Serves `functions`; with a `stream`, also polls it and pushes through the real SDK
    /// poster pointed at this gateway's own `@connections`.
    pub async fn start_with(
        options: ServerOptions,
        mut functions: Functions,
        stream: Option<StreamSource>,
    ) -> Result<RunningGateway, GatewayError> {
        config::check_listen_addrs(
            options.http_addr,
            options.ws_addr,
            options.management_addr,
            options.allow_non_loopback,
        )?;
        for addr in
            [options.http_addr, options.ws_addr].into_iter().filter(|a| !a.ip().is_loopback())
        {
            warn!(%addr, "listening beyond loopback, as explicitly allowed");
        }
        if functions.authorizer.is_none() {
            warn!("no authorizer: this gateway checks no API keys");
        }
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| GatewayError::Bind { addr, source })
        };
        let http_listener = bind(options.http_addr).await?;
        let ws_listener = bind(options.ws_addr).await?;
        let management_listener = bind(options.management_addr).await?;
        let local = |listener: &TcpListener, addr: SocketAddr| {
            listener.local_addr().map_err(|source| GatewayError::Bind { addr, source })
        };
        let http_addr = local(&http_listener, options.http_addr)?;
        let ws_addr = local(&ws_listener, options.ws_addr)?;
        let management_addr = local(&management_listener, options.management_addr)?;

        let (stop_front, front_rx) = watch::channel(false);
        let (stop_ws, ws_rx) = watch::channel(false);
        let (drain_tx, drain_rx) = mpsc::channel::<()>(1);
        let registry = Arc::new(ConnectionRegistry::new());

        let mut http_functions = functions.http.clone();
        // The board's page connects to this gateway's own WebSocket API.
        let board = Board::new(Some(format!("ws://{}", connectable(ws_addr))));
        http_functions.insert(routes::BOARD, Arc::new(board));
        let http_router =
            http_api::HttpApi::new(http_functions, options.cors_allow_origin.as_deref())
                .with_authorizer(functions.authorizer.clone())
                .router();
        let http_task = tokio::spawn(serve(http_listener, http_router, front_rx.clone()));

        let management_endpoint = format!("http://{}", connectable(management_addr));
        // The push and the resume post through the real SDK poster to this gateway's own
        // `@connections`, as the Lambda functions do on AWS.
        let poster = match &stream {
            None => None,
            Some(_) => {
                let endpoint = url::Url::parse(&management_endpoint).map_err(|e| ConfigError {
                    var: "GATEWAY_WS_ADDR",
                    problem: format!("no management endpoint URL: {e}"),
                })?;
                Some(wiring::poster(&wiring::sdk_config()?, &endpoint))
            }
        };
        // The fan-out queue (moto's SQS) carries sharded pushes and resumes, as on AWS: with
        // it `$connect` accepts `since` and enqueues the resume for the worker below.
        let queue = match (&options.fanout, &poster) {
            (Some((url, _)), Some(_)) => Some(wiring::task_queue(&wiring::sdk_config()?, url)),
            _ => None,
        };
        if let Some(queue) = &queue {
            functions.connection_routes =
                functions.connection_routes.with_resume(wiring::resume_setup_over(
                    functions.notifications.clone(),
                    functions.feed,
                    queue.clone(),
                ));
        }
        let ws_api = websocket::WsApi::new(
            functions.connection_routes.clone(),
            functions.default_route.clone(),
            registry.clone(),
            options.ws.clone(),
            ws_rx.clone(),
            drain_tx,
        )
        .with_authorizer(functions.authorizer.clone());
        let ws_task = tokio::spawn(serve(ws_listener, ws_api.router(), ws_rx.clone()));
        let management_router = connections::management_router(registry.clone(), &options.ws.stage);
        let management_task = tokio::spawn(serve(management_listener, management_router, ws_rx));

        let poller_task = match stream.zip(poster) {
            None => None,
            Some((source, poster)) => {
                let sdk = wiring::sdk_config()?;
                let fanout = Fanout::new(functions.connections.clone(), poster.clone())
                    .with_concurrency(options.push_concurrency);
                let (fanout, queue_task) = match options.fanout.as_ref().zip(queue) {
                    None => (fanout, None),
                    Some(((url, settings), queue)) => {
                        let resume = Resume::new(
                            functions.connections.clone(),
                            functions.notifications.clone(),
                            poster.clone(),
                            functions.feed,
                        );
                        let worker = PushWorker::new(fanout.deliverer().clone(), queue.clone())
                            .with_resume(resume);
                        let source = sqs::SqsSource::new(
                            wiring::sqs(&sdk),
                            url.clone(),
                            worker.into(),
                            settings.clone(),
                        );
                        (
                            fanout.with_sharding(settings.sharding, queue),
                            Some(tokio::spawn(source.run(front_rx.clone()))),
                        )
                    }
                };
                let poller =
                    stream::StreamPoller::new(source.stream_arn, fanout.into(), source.settings);
                Some((tokio::spawn(poller.run(front_rx.clone())), queue_task))
            }
        };
        let (poller_task, queue_task) = match poller_task {
            Some((p, q)) => (Some(p), q),
            None => (None, None),
        };
        // The template's schedule: one run, then the pause, until the gateway stops (a run
        // in progress finishes, so its cursor commit is not cut off).
        let sync_task = functions.rt_sync.clone().map(|(sync, every)| {
            let mut stop = front_rx.clone();
            tokio::spawn(async move {
                loop {
                    let _ = sync.run_logged().await;
                    tokio::select! {
                        _ = stopped(&mut stop) => break,
                        _ = tokio::time::sleep(every) => {}
                    }
                }
            })
        });
        let running = RunningGateway {
            sync_task,
            http_addr,
            ws_addr,
            management_addr,
            registry,
            stop_front,
            stop_ws,
            drain: drain_rx,
            http_task,
            ws_task,
            management_task,
            poller_task,
            queue_task,
        };
        info!(http = %running.http_url(), ws = %running.ws_url(), "gateway listening");
        Ok(running)
    }
}

/// An address clients can connect to (an unspecified bind address means loopback).
fn connectable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn serve(listener: TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>) {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(async move { stopped(&mut stop).await })
        .await;
    if let Err(e) = result {
        warn!(error = %e, "server stopped with an error");
    }
}

/// A started gateway. Dropping it without [`RunningGateway::shutdown`] leaves its tasks
/// running until the runtime ends.
#[derive(Debug)]
pub struct RunningGateway {
    http_addr: SocketAddr,
    ws_addr: SocketAddr,
    management_addr: SocketAddr,
    registry: Arc<ConnectionRegistry>,
    stop_front: watch::Sender<bool>,
    stop_ws: watch::Sender<bool>,
    drain: mpsc::Receiver<()>,
    http_task: JoinHandle<()>,
    ws_task: JoinHandle<()>,
    management_task: JoinHandle<()>,
    poller_task: Option<JoinHandle<()>>,
    queue_task: Option<JoinHandle<()>>,
    sync_task: Option<JoinHandle<()>>,
}

impl RunningGateway {
    /// The HTTP API's base URL, e.g. `http://127.0.0.1:3000`.
    pub fn http_url(&self) -> String {
        format!("http://{}", connectable(self.http_addr))
    }

    /// The WebSocket API's URL, e.g. `ws://127.0.0.1:3001`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", connectable(self.ws_addr))
    }

    /// The Management API endpoint (`WS_MANAGEMENT_ENDPOINT`), e.g. `http://127.0.0.1:3002`:
    /// its own loopback listener, not the WebSocket port (see [`config::check_listen_addrs`]).
    pub fn management_endpoint(&self) -> String {
        format!("http://{}", connectable(self.management_addr))
    }

    /// The bound HTTP API address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound WebSocket API address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// The live connections.
    pub fn connections(&self) -> &ConnectionRegistry {
        &self.registry
    }

    /// Stops gracefully: the HTTP API stops taking requests (finishing those in flight) and
    /// the poller finishes its batch and saves its checkpoint; then every socket is closed
    /// (1001 Going away) and its `$disconnect` runs; then the WebSocket port closes.
    pub async fn shutdown(self) {
        let RunningGateway {
            stop_front,
            stop_ws,
            mut drain,
            http_task,
            ws_task,
            management_task,
            poller_task,
            queue_task,
            sync_task,
            registry,
            ..
        } = self;
        let _ = stop_front.send(true);
        if let Some(poller) = poller_task {
            let _ = poller.await;
        }
        if let Some(queue) = queue_task {
            let _ = queue.await;
        }
        if let Some(sync) = sync_task {
            let _ = sync.await;
        }
        let _ = http_task.await;
        let _ = stop_ws.send(true);
        registry.close_all();
        let _ = ws_task.await;
        let _ = management_task.await;
        if tokio::time::timeout(DRAIN_TIMEOUT, drain.recv()).await.is_err() {
            warn!("some WebSocket connections did not finish closing in time");
        }
        info!("gateway stopped");
    }
}
