//! `POST /webhooks/rt`, the instant path: RT's scrip (rt/scrip/) posts the ids of a ticket
//! transaction, signed ([`super::signature`]). The relay verifies signature and window,
//! refuses a replay, then reads the transaction itself from RT (the body is only a hint of
//! where to look; nothing in it is trusted as data) and applies it through the same
//! [`Ingest`] the sync uses. No API key: the signature is the authentication.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::{info, instrument};

use super::{
    ingest::{Ingest, IngestError, IngestStats},
    signature::{self, SignatureError},
    store::ReplayGuard,
};
use crate::{
    http::{json_response, ApiError},
    model::ValidationError,
    rt::{transactions::RtTransactions, RtError},
    secret::Secret,
    store::{StoreError, Term},
};

/// Largest body accepted: the scrip sends two ids.
pub const MAX_BODY_BYTES: usize = 1024;

/// What the scrip posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookCall {
    /// RT's ticket id.
    pub ticket_id: u64,
    /// RT's transaction id.
    pub transaction_id: u64,
}

/// Why a call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Unsigned, wrongly signed, malformed headers, or outside the window (401).
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The same signed call was already accepted (409).
    #[error("this call was already accepted; a replay changes nothing")]
    Replayed,
    /// A signed body that is not `{"ticket_id": N, "transaction_id": M}` (400).
    #[error("body must be {{\"ticket_id\": <id>, \"transaction_id\": <id>}}")]
    BadBody,
    /// RT has no such transaction on that ticket (404).
    #[error("RT has no transaction {transaction_id} on ticket {ticket_id}")]
    UnknownTransaction {
        /// Ticket id.
        ticket_id: u64,
        /// Transaction id.
        transaction_id: u64,
    },
    /// RT could not be read (5xx; the sync will catch up).
    #[error(transparent)]
    Rt(#[from] RtError),
    /// DynamoDB failed (5xx; the sync will catch up).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Signature(e) => ApiError::Signature(e),
            WebhookError::Replayed => ApiError::Replayed,
            WebhookError::BadBody => ApiError::Validation(ValidationError::body(e.to_string())),
            WebhookError::UnknownTransaction { .. } => ApiError::NotFound(e.to_string()),
            WebhookError::Rt(e) => ApiError::UseCase(e.into()),
            WebhookError::Store(e) => ApiError::UseCase(e.into()),
        }
    }
}

impl From<IngestError> for WebhookError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Rt(e) => WebhookError::Rt(e),
            IngestError::Store(e) => WebhookError::Store(e),
        }
    }
}

/// The webhook use case.
#[derive(Debug, Clone)]
pub struct RtWebhook {
    secret: Secret,
    guard: Arc<dyn ReplayGuard>,
    rt: Arc<dyn RtTransactions>,
    ingest: Ingest,
    /// How long to keep looking for a transaction RT has not committed yet (the scrip
    /// may post while RT's own database transaction is still open).
    visibility_wait: Duration,
}

impl RtWebhook {
    /// Wires the use case.
    pub fn new(
        secret: Secret,
        guard: Arc<dyn ReplayGuard>,
        rt: Arc<dyn RtTransactions>,
        ingest: Ingest,
    ) -> Self {
        Self { secret, guard, rt, ingest, visibility_wait: Duration::from_secs(2) }
    }

    /// Changes how long an unknown transaction is looked for again.
    pub fn with_visibility_wait(mut self, wait: Duration) -> Self {
        self.visibility_wait = wait;
        self
    }

    /// Answers one HTTP request (`POST /webhooks/rt`): 200 `{"stored", "duplicates"}`, or
    /// the error map's answer (docs/ARCHITECTURE.md, "The webhook").
    pub async fn handle(&self, req: Request) -> Response<Body> {
        self.respond(req).await.unwrap_or_else(ApiError::into_response)
    }

    async fn respond(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let stats = self
            .accept(
                header(signature::TIMESTAMP_HEADER),
                header(signature::SIGNATURE_HEADER),
                req.body().as_ref(),
                Utc::now(),
            )
            .await?;
        let body = json!({ "stored": stats.stored, "duplicates": stats.duplicates });
        Ok(json_response(lambda_http::http::StatusCode::OK, &body))
    }

    /// Handles one call: `timestamp` and `signature` are the two headers' values.
    #[instrument(skip_all)]
    pub async fn accept(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<IngestStats, WebhookError> {
        let verified = signature::verify(&self.secret, timestamp, signature, body, now)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::BadBody);
        }
        let call: WebhookCall = serde_json::from_slice(body).map_err(|_| WebhookError::BadBody)?;
        if !self
            .guard
            .first_use(&verified.signature, Term { now, until: verified.remember_until() })
            .await?
        {
            return Err(WebhookError::Replayed);
        }
        let deadline = tokio::time::Instant::now() + self.visibility_wait;
        let mut pause = Duration::from_millis(100);
        let txn = loop {
            match self.rt.transaction(call.ticket_id, call.transaction_id).await? {
                Some(txn) => break txn,
                None if tokio::time::Instant::now() + pause > deadline => {
                    return Err(WebhookError::UnknownTransaction {
                        ticket_id: call.ticket_id,
                        transaction_id: call.transaction_id,
                    })
                }
                None => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        };
        let stats = self.ingest.apply(std::slice::from_ref(&txn), now).await?;
        info!(
            transaction_id = txn.id,
            ticket_id = txn.ticket_id,
            stored = stats.stored,
            duplicates = stats.duplicates,
            "webhook applied"
        );
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::memory::MemoryEvents,
        rt::{memory::MemoryRt, RtClient, RtCreate},
    };

    const SECRET: &str = "test-webhook-secret-of-32-bytes!!";

    struct Fixture {
        rt: Arc<MemoryRt>,
        store: Arc<MemoryEvents>,
        hook: RtWebhook,
    }

    fn fixture() -> Fixture {
        let rt = Arc::new(MemoryRt::new());
        let store = Arc::new(MemoryEvents::new());
        let ingest = Ingest::new(rt.clone(), store.clone());
        let hook = RtWebhook::new(Secret::new(SECRET), store.clone(), rt.clone(), ingest)
            .with_visibility_wait(Duration::from_millis(300));
        Fixture { rt, store, hook }
    }

    fn signed(ts: i64, body: &str) -> (String, String) {
        (ts.to_string(), signature::sign(&Secret::new(SECRET), ts, body.as_bytes()))
    }

    /// A fixture whose RT holds one ticket (its Create is transaction 1), and its id.
    async fn with_ticket() -> (Fixture, u64) {
        let f = fixture();
        let id = f.rt.create(&RtCreate::new("General", "hook", "text")).await.unwrap();
        (f, id)
    }

    /// The documented body for transaction `txn` of ticket `ticket`, with its timestamp
    /// and signature at `now`.
    fn call(ticket: u64, txn: u64, now: DateTime<Utc>) -> (String, String, String) {
        let body = format!(r#"{{"ticket_id":{ticket},"transaction_id":{txn}}}"#);
        let (ts, sig) = signed(now.timestamp(), &body);
        (body, ts, sig)
    }

    #[tokio::test]
    async fn a_signed_call_ingests_the_transaction_read_from_rt() {
        let (f, id) = with_ticket().await;
        let now = Utc::now();
        let (body, ts, sig) = call(id, 1, now);
        let stats = f.hook.accept(Some(&ts), Some(&sig), body.as_bytes(), now).await.unwrap();
        assert_eq!(stats.stored, 1);
        assert_eq!(f.store.notification_ids(), vec![format!("ticket-{id}-created")]);
        assert!(f.store.ticket(id).is_some());
    }

    #[tokio::test]
    async fn refused_calls_change_nothing() {
        let (f, id) = with_ticket().await;
        let now = Utc::now();
        let (body, ts, sig) = call(id, 1, now);
        let b = body.as_bytes();
        // unsigned
        assert!(matches!(
            f.hook.accept(None, None, b, now).await,
            Err(WebhookError::Signature(SignatureError::Missing(_)))
        ));
        // wrongly signed
        let wrong = signature::sign(&Secret::new("another"), now.timestamp(), b);
        assert!(matches!(
            f.hook.accept(Some(&ts), Some(&wrong), b, now).await,
            Err(WebhookError::Signature(SignatureError::Mismatch))
        ));
        // stale
        let (old_ts, old_sig) = signed(now.timestamp() - 301, &body);
        assert!(matches!(
            f.hook.accept(Some(&old_ts), Some(&old_sig), b, now).await,
            Err(WebhookError::Signature(SignatureError::Stale))
        ));
        // signed but not the documented body
        let junk = r#"{"ticket_id":"1"}"#;
        let (jts, jsig) = signed(now.timestamp(), junk);
        assert!(matches!(
            f.hook.accept(Some(&jts), Some(&jsig), junk.as_bytes(), now).await,
            Err(WebhookError::BadBody)
        ));
        assert!(f.store.notification_ids().is_empty());
        // the valid call, then its replay
        f.hook.accept(Some(&ts), Some(&sig), b, now).await.unwrap();
        assert!(matches!(
            f.hook.accept(Some(&ts), Some(&sig), b, now).await,
            Err(WebhookError::Replayed)
        ));
        assert_eq!(f.store.notification_ids().len(), 1);
    }

    #[tokio::test]
    async fn a_valid_call_for_a_transaction_rt_does_not_have_changes_nothing() {
        let (f, id) = with_ticket().await;
        let now = Utc::now();
        for (ticket, txn) in [(id, 999), (id + 1, 1)] {
            let (body, ts, sig) = call(ticket, txn, now);
            let out = f.hook.accept(Some(&ts), Some(&sig), body.as_bytes(), now).await;
            assert!(matches!(out, Err(WebhookError::UnknownTransaction { .. })), "{out:?}");
        }
        assert!(f.store.notification_ids().is_empty());
        assert!(f.store.ticket(id).is_none());
    }
}
