//! Lambda `ws-disconnect` (WebSocket `$disconnect`): wiring only; the handler is
//! `rt_relay_shared::handlers::ws::ConnectionRoutes::disconnect`, built by `wiring`.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::warmup::{self, Service};
use rt_relay_shared::{config::FunctionTables, telemetry, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let tables = FunctionTables::WS_DISCONNECT.from_env()?;
    let sdk = wiring::sdk_config()?;
    let routes = Arc::new(wiring::connection_routes(&sdk, &tables)?);
    warmup::at_init(FunctionTables::WS_DISCONNECT, &[Service::DynamoDb]).await;
    run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
        let routes = Arc::clone(&routes);
        async move { Ok::<_, Error>(routes.disconnect(event.payload).await) }
    }))
    .await
}
