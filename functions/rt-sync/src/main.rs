//! Lambda `rt-sync` (EventBridge schedule): wiring only; the use case is
//! `rt_relay_shared::events::sync::Sync`. A failed run returns an error (Lambda counts it;
//! the schedule runs it again and the cursor resumes where the last page left it).

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::warmup::{self, Service};
use rt_relay_shared::{config::FunctionTables, events::wiring::sync_from_env, telemetry};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let sync = Arc::new(sync_from_env().await?);
    warmup::at_init(FunctionTables::RT_SYNC, &[Service::DynamoDb, Service::Rt]).await;
    run(service_fn(move |_: LambdaEvent<Value>| {
        let sync = Arc::clone(&sync);
        async move {
            let report = sync.run_logged().await?;
            // CloudWatch Embedded Metric Format: RtSyncBehind, RtSyncLagSeconds, RtSyncEvents.
            println!("{}", report.metrics_line());
            Ok::<_, Error>(report.to_json())
        }
    }))
    .await
}
