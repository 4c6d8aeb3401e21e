//! Lambda `push-notifications` (DynamoDB stream of the notifications table): wiring only;
//! the handler is `rt_relay_shared::handlers::push::PushNotifications`.

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::{
    handlers::push::PushNotifications,
    telemetry,
    warmup::{self, Service},
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let push = Arc::new(PushNotifications::from_env().await?);
    warmup::at_init(&[Service::DynamoDb, Service::ManagementApi]).await;
    run(service_fn(move |event: LambdaEvent<Event>| {
        let push = Arc::clone(&push);
        async move { Ok::<_, Error>(push.handle(event.payload).await) }
    }))
    .await
}
