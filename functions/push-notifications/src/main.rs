//! Lambda `push-notifications` (DynamoDB stream of the notifications table): wiring only;
//! the handler is `rt_relay_shared::handlers::push::PushNotifications`, built by `wiring`.

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::warmup::{self, Service};
use rt_relay_shared::{
    config::{FunctionTables, PushConfig},
    telemetry, wiring,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let config = PushConfig::from_env()?;
    let tables = FunctionTables::PUSH_NOTIFICATIONS.from_env()?;
    let sdk = wiring::sdk_config()?;
    let push = Arc::new(wiring::push_notifications(&sdk, &config, &tables));
    warmup::at_init(
        FunctionTables::PUSH_NOTIFICATIONS,
        &[Service::DynamoDb, Service::ManagementApi],
    )
    .await;
    run(service_fn(move |event: LambdaEvent<Event>| {
        let push = Arc::clone(&push);
        async move { Ok::<_, Error>(push.handle(event.payload).await) }
    }))
    .await
}
