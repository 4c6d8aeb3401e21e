//! HTTP for `GET /notifications` over [`NotificationFeed`]: newest first, optionally of one
//! `type`; or, with `since`, the notifications after a position, oldest first.

use chrono::Utc;
use lambda_http::{http::StatusCode, Body, Request, Response};

use super::{tickets::page_request, ApiHandler};
use crate::{
    http::{json_response, query_param, ApiError},
    model::{too_long_as_sent, ValidationError, NOTIFICATION_TYPES},
    tenant::{relay_default_queue, Caller},
    usecases::feeds::NotificationFeed,
};

/// `GET /notifications`: `limit`, `cursor`, `type`, `since`.
#[derive(Debug, Clone)]
pub struct ListNotifications {
    feed: NotificationFeed,
}

impl ListNotifications {
    /// Over the use case.
    pub fn new(feed: NotificationFeed) -> Self {
        Self { feed }
    }
}

#[async_trait::async_trait]
impl ApiHandler for ListNotifications {
    async fn answer(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let page = page_request(&req)?;
        let kind = match query_param(&req, "type") {
            None => None,
            Some(kind) => {
                Some(*NOTIFICATION_TYPES.iter().find(|t| **t == kind).ok_or_else(|| {
                    ValidationError::field(
                        "type",
                        format!("must be one of {}", NOTIFICATION_TYPES.join(", ")),
                    )
                })?)
            }
        };
        const MAX_SINCE_CHARS: usize = 200;
        let mut page = match query_param(&req, "since") {
            None => self.feed.list(kind, &page).await?,
            Some(_) if kind.is_some() => {
                return Err(ValidationError::field("since", "cannot be combined with type").into())
            }
            // The document's bounds (minLength 1, maxLength 200 characters): outside them
            // the value cannot be a notification id, so it is bad input, not a lost position.
            Some(since) if since.is_empty() || too_long_as_sent(&since, MAX_SINCE_CHARS) => {
                return Err(ValidationError::field(
                    "since",
                    format!("must be a notification id (1 to {MAX_SINCE_CHARS} characters)"),
                )
                .into())
            }
            Some(since) => self.feed.after(&since, &page, Utc::now()).await?,
        };
        // Only notifications about the key's queues; a page may then hold fewer than
        // `limit` items (the cursor still moves on through the feed).
        if let Some(caller) = Caller::from_http(&req, relay_default_queue()) {
            page.items.retain(|n| caller.queues.allows(&n.ticket.queue));
        }
        Ok(json_response(StatusCode::OK, &page))
    }
}
