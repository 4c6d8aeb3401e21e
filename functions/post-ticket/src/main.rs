//! Lambda `post-ticket`: wiring only; the handler is `rt_relay_shared::handlers::tickets::PostTicket`.

use std::{convert::Infallible, sync::Arc};

use lambda_http::{run, service_fn, Error, Request};
use rt_relay_shared::{
    handlers::tickets::PostTicket,
    telemetry,
    warmup::{self, Service},
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let handler = Arc::new(PostTicket::from_env().await?);
    warmup::at_init(&[Service::DynamoDb, Service::Rt]).await;
    run(service_fn(move |req: Request| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, Infallible>(handler.handle(req).await) }
    }))
    .await
}
