//! Lambda `ws-default` (WebSocket `$default`): answers any client message with a short
//! help text; the handler is `rt_relay_shared::handlers::ws::default_route`.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::{handlers::ws::default_route, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    run(service_fn(|event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
        Ok::<_, Error>(default_route(event.payload))
    }))
    .await
}
