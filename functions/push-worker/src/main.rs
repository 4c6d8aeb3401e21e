//! Lambda `push-worker` (the FIFO fan-out queue): wiring only; the handler is
//! `rt_relay_shared::handlers::push_worker::PushWorkerHandler`, built by `wiring`. Each
//! invocation posts (delivery tasks and resumes) until its deadline less
//! `wiring::WORKER_MARGIN`.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::{
    config::{FunctionTables, PushConfig},
    handlers::push_worker::SqsEvent,
    telemetry,
    warmup::{self, Service},
    wiring,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let config = PushConfig::from_env()?;
    let tables = FunctionTables::PUSH_WORKER.from_env()?;
    let sdk = wiring::sdk_config()?;
    let worker = Arc::new(wiring::push_worker(&sdk, &config, &tables, wiring::feed_settings()?)?);
    warmup::at_init(FunctionTables::PUSH_WORKER, &[Service::DynamoDb, Service::ManagementApi])
        .await;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = Arc::clone(&worker);
        async move {
            // The context's deadline is wall-clock milliseconds since the epoch.
            let now_ms =
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
            let left = Duration::from_millis(
                u64::try_from(u128::from(event.context.deadline).saturating_sub(now_ms))
                    .unwrap_or(0),
            );
            let deadline = tokio::time::Instant::now() + left.saturating_sub(wiring::WORKER_MARGIN);
            Ok::<_, Error>(worker.handle(event.payload, deadline).await)
        }
    }))
    .await
}
