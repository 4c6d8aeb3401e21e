//! Lambda `rt-webhook` (`POST /webhooks/rt`, no API key: the HMAC signature is the
//! authentication): wiring only; the use case is `rt_relay_shared::events::webhook::RtWebhook`.

use std::{convert::Infallible, sync::Arc};

use lambda_http::{run, service_fn, Error, Request};
use rt_relay_shared::warmup::{self, Service};
use rt_relay_shared::{config::FunctionTables, events::wiring::webhook_from_env, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let webhook = Arc::new(webhook_from_env().await?);
    warmup::at_init(FunctionTables::RT_WEBHOOK, &[Service::DynamoDb, Service::Rt]).await;
    run(service_fn(move |req: Request| {
        let webhook = Arc::clone(&webhook);
        async move { Ok::<_, Infallible>(webhook.handle(req).await) }
    }))
    .await
}
