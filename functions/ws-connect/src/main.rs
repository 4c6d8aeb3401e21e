//! Lambda `ws-connect` (WebSocket `$connect`): wiring only; the handler is
//! `rt_relay_shared::handlers::ws::ConnectionRoutes::connect`.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::{
    handlers::ws::ConnectionRoutes,
    telemetry,
    warmup::{self, Service},
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let routes = Arc::new(ConnectionRoutes::from_env().await?);
    warmup::at_init(&[Service::DynamoDb]).await;
    run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
        let routes = Arc::clone(&routes);
        async move { Ok::<_, Error>(routes.connect(event.payload).await) }
    }))
    .await
}
