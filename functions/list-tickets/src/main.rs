//! Lambda `list-tickets` (GET /tickets): wiring only (tracing, configuration, clients once, run);
//! the handler is built by `rt_relay_shared::wiring`.

use std::{convert::Infallible, sync::Arc};

use lambda_http::{run, service_fn, Error, Request};
use rt_relay_shared::warmup::{self, Service};
use rt_relay_shared::{config::FunctionTables, handlers::HttpHandler, telemetry, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let tables = FunctionTables::LIST_TICKETS.from_env()?;
    let sdk = wiring::sdk_config()?;
    let handler = Arc::new(wiring::list_tickets(&sdk, &tables));
    warmup::at_init(FunctionTables::LIST_TICKETS, &[Service::DynamoDb]).await;
    run(service_fn(move |req: Request| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, Infallible>(handler.handle(req).await) }
    }))
    .await
}
