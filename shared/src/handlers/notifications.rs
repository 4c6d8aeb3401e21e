//! `GET /notifications`: stored notifications newest first, optionally of one `type`.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};

use crate::{
    config::Tables,
    http::{json_response, query_param, require_method, ApiError},
    model::{ValidationError, NOTIFICATION_TYPES},
    store::{
        dynamodb::{client_from_env, DynamoStore},
        PageRequest, TicketStore,
    },
    tenant::{relay_default_queue, Caller},
};

/// `GET /notifications`.
#[derive(Debug, Clone)]
pub struct ListNotifications {
    store: Arc<dyn TicketStore>,
}

impl ListNotifications {
    /// Wires the handler from its parts.
    pub fn new(store: Arc<dyn TicketStore>) -> Self {
        Self { store }
    }

    /// Builds everything from the environment once at cold start.
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let tables = Tables::from_env()?;
        Ok(Self::new(Arc::new(DynamoStore::new(client_from_env().await, tables))))
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        self.list(req).await.unwrap_or_else(ApiError::into_response)
    }

    async fn list(&self, req: Request) -> Result<Response<Body>, ApiError> {
        require_method(&req, "GET")?;
        let page = PageRequest::parse(
            query_param(&req, "limit").as_deref(),
            query_param(&req, "cursor").as_deref(),
        )?;
        let mut page = match query_param(&req, "type") {
            None => self.store.list_notifications(&page).await?,
            Some(kind) => {
                let kind = NOTIFICATION_TYPES.iter().find(|t| **t == kind).ok_or_else(|| {
                    ValidationError::field(
                        "type",
                        format!("must be one of {}", NOTIFICATION_TYPES.join(", ")),
                    )
                })?;
                self.store.list_notifications_of_type(kind, &page).await?
            }
        };
        // Only notifications about the key's queues; a page may then hold fewer than
        // `limit` items (the cursor still moves on through the feed).
        if let Some(caller) = Caller::from_http(&req, relay_default_queue()) {
            page.items.retain(|n| caller.queues.allows(&n.ticket.queue));
        }
        Ok(json_response(200, &page))
    }
}
