//! Lambda `ws-default` (WebSocket `$default`): wiring only; the handler is
//! `rt_relay_shared::handlers::ws::DefaultRoute` (`ping` → `pong` or `reconnect`, help
//! text otherwise), built by `wiring`.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::warmup::{self, Service};
use rt_relay_shared::{config::FunctionTables, telemetry, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let tables = FunctionTables::WS_DEFAULT.from_env()?;
    let feed = wiring::feed_settings()?;
    let sdk = wiring::sdk_config()?;
    let route = Arc::new(wiring::default_route(&sdk, &tables, feed));
    warmup::at_init(FunctionTables::WS_DEFAULT, &[Service::DynamoDb]).await;
    run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
        let route = Arc::clone(&route);
        async move { Ok::<_, Error>(route.handle(event.payload).await) }
    }))
    .await
}
