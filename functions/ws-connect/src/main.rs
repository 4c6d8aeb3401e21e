//! Lambda `ws-connect` (WebSocket `$connect`): wiring only; the handler is
//! `rt_relay_shared::handlers::ws::ConnectionRoutes::connect`, built by `wiring`. With
//! `PUSH_QUEUE_URL` (the template sets it) `since` is accepted: the resume goes to the
//! fan-out queue for `push-worker`.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::warmup::{self, Service};
use rt_relay_shared::{config::FunctionTables, telemetry, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let tables = FunctionTables::WS_CONNECT.from_env()?;
    let sdk = wiring::sdk_config()?;
    let routes = match std::env::var("PUSH_QUEUE_URL").ok().filter(|u| !u.trim().is_empty()) {
        Some(url) => wiring::connect_route(&sdk, &tables, wiring::feed_settings()?, url.trim())?,
        None => wiring::connection_routes(&sdk, &tables)?,
    };
    let routes = Arc::new(routes);
    warmup::at_init(FunctionTables::WS_CONNECT, &[Service::DynamoDb]).await;
    run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
        let routes = Arc::clone(&routes);
        async move { Ok::<_, Error>(routes.connect(event.payload).await) }
    }))
    .await
}
