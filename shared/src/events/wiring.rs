//! Builds the two event functions from the environment, once at cold start: RT from
//! `RT_*` (as every RT-facing function), the tables from `*_TABLE`, the function's own
//! settings (`RT_SYNC_*`), and the secrets (RT's credentials, `WEBHOOK_SECRET`) through
//! [`crate::secret_store`]: Secrets Manager on AWS, the environment locally.

use std::sync::Arc;

use super::{
    dynamodb::DynamoEvents, ingest::Ingest, settings::webhook_secret_from_lookup, sync::Sync,
    sync::SyncSettings, webhook::RtWebhook,
};
use aws_sdk_dynamodb::Client;

use crate::{
    config::{ConfigError, FunctionTables, RtConfig},
    rt::{transactions::RtTransactions, transactions_client_from_config},
    secret_store::{self, SecretValues},
};

/// What both functions are built from: the secrets (loaded once), RT and the stores.
struct Parts {
    secrets: Arc<SecretValues>,
    rt: Arc<dyn RtTransactions>,
    store: Arc<DynamoEvents>,
}

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

async fn parts(function: FunctionTables) -> Result<Parts, ConfigError> {
    let sdk = crate::wiring::sdk_config()?;
    let secrets = secret_store::load(&env, &sdk)
        .await
        .map_err(|e| ConfigError { var: secret_store::SECRET_ARN_VAR, problem: e.to_string() })?;
    let config = RtConfig::from_lookup(&secrets.overlay(&env))?;
    let rt = transactions_client_from_config(&config)
        .map_err(|e| ConfigError { var: "RT_API_URL", problem: e.to_string() })?;
    let store = Arc::new(DynamoEvents::new(Client::new(&sdk), function.from_env()?));
    Ok(Parts { secrets, rt, store })
}

/// The `rt-sync` function's use case.
pub async fn sync_from_env() -> Result<Sync, ConfigError> {
    let settings = SyncSettings::from_lookup(&env)?;
    let Parts { rt, store, .. } = parts(FunctionTables::RT_SYNC).await?;
    Ok(Sync::new(rt.clone(), Ingest::new(rt, store.clone()), store, settings))
}

/// The `rt-webhook` function's use case.
pub async fn webhook_from_env() -> Result<RtWebhook, ConfigError> {
    let Parts { secrets, rt, store } = parts(FunctionTables::RT_WEBHOOK).await?;
    let secret = webhook_secret_from_lookup(&secrets.overlay(&env))?;
    Ok(RtWebhook::new(secret, store.clone(), rt.clone(), Ingest::new(rt, store)))
}
