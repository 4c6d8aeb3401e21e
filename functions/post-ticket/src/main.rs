//! Lambda `post-ticket` (POST /tickets): wiring only (tracing, configuration, clients once, run);
//! the handler is built by `rt_relay_shared::wiring`.

use std::{convert::Infallible, sync::Arc};

use lambda_http::{run, service_fn, Error, Request};
use rt_relay_shared::warmup::{self, Service};
use rt_relay_shared::{
    config::FunctionTables, handlers::HttpHandler, secret_store, telemetry, wiring,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let sdk = wiring::sdk_config()?;
    // RT's credentials from the Secrets Manager secret (RELAY_SECRET_ARN) on AWS.
    let rt = secret_store::rt_config_from_env(&sdk).await?;
    let tables = FunctionTables::POST_TICKET.from_env()?;
    let rt_client = wiring::rt_client(&rt)?;
    let handler = Arc::new(wiring::post_ticket(&sdk, &rt, rt_client.clone(), &tables));
    let warm = [Service::DynamoDb, Service::RtAdapter(rt, rt_client)];
    warmup::at_init(FunctionTables::POST_TICKET, &warm).await;
    run(service_fn(move |req: Request| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, Infallible>(handler.handle(req).await) }
    }))
    .await
}
