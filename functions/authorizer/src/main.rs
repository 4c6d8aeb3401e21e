//! Lambda `authorizer` (HTTP API and WebSocket `$connect` REQUEST authorizer): wiring
//! only; the handler is `rt_relay_shared::handlers::authorizer::RequestAuthorizer`, built
//! by `wiring`.

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::warmup::{self, Service};
use rt_relay_shared::{config::FunctionTables, telemetry, wiring};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let tables = FunctionTables::AUTHORIZER.from_env()?;
    let sdk = wiring::sdk_config()?;
    let authorizer = Arc::new(wiring::authorizer(&sdk, &tables)?);
    warmup::at_init(FunctionTables::AUTHORIZER, &[Service::DynamoDb]).await;
    run(service_fn(move |event: LambdaEvent<Value>| {
        let authorizer = Arc::clone(&authorizer);
        // An `Unauthorized` error must reach API Gateway as the invocation's error message.
        async move { authorizer.handle(event.payload).await.map_err(Error::from) }
    }))
    .await
}
