//! Builds the two event functions from the environment, once at cold start: RT from
//! `RT_*` (as every RT-facing function), the tables from `*_TABLE`, and the function's own
//! settings (`RT_SYNC_*`, `RT_WEBHOOK_SECRET`).

use std::sync::Arc;

use super::{
    dynamodb::DynamoEvents, ingest::Ingest, settings::webhook_secret_from_lookup, sync::Sync,
    sync::SyncSettings, webhook::RtWebhook,
};
use crate::{
    config::{ConfigError, RtConfig, Tables},
    rt::{transactions::RtTransactions, transactions_client_from_config},
    store::dynamodb::client_from_env,
};

fn rt_from_env() -> Result<Arc<dyn RtTransactions>, ConfigError> {
    let config = RtConfig::from_env()?;
    transactions_client_from_config(&config)
        .map_err(|e| ConfigError { var: "RT_API_URL", problem: e.to_string() })
}

async fn store_from_env() -> Result<Arc<DynamoEvents>, ConfigError> {
    Ok(Arc::new(DynamoEvents::new(client_from_env().await, Tables::from_env()?)))
}

/// The `rt-sync` function's use case.
pub async fn sync_from_env() -> Result<Sync, ConfigError> {
    let settings = SyncSettings::from_lookup(&|k| std::env::var(k).ok())?;
    let rt = rt_from_env()?;
    let store = store_from_env().await?;
    Ok(Sync::new(rt.clone(), Ingest::new(rt, store.clone()), store, settings))
}

/// The `rt-webhook` function's use case.
pub async fn webhook_from_env() -> Result<RtWebhook, ConfigError> {
    let secret = webhook_secret_from_lookup(&|k| std::env::var(k).ok())?;
    let rt = rt_from_env()?;
    let store = store_from_env().await?;
    Ok(RtWebhook::new(secret, store.clone(), rt.clone(), Ingest::new(rt, store)))
}
