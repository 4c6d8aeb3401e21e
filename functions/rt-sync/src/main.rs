//! Lambda `rt-sync` (EventBridge schedule): wiring only; the use case is
//! `rt_relay_shared::events::sync::Sync`. A failed run returns an error (Lambda counts it;
//! the schedule runs it again and the cursor resumes where the last page left it).

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rt_relay_shared::{events::wiring::sync_from_env, telemetry};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let sync = Arc::new(sync_from_env().await?);
    run(service_fn(move |_: LambdaEvent<Value>| {
        let sync = Arc::clone(&sync);
        async move { Ok::<_, Error>(sync.run_logged().await?.to_json()) }
    }))
    .await
}
