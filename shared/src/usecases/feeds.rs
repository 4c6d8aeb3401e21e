//! The two stored feeds, newest first: tickets (optionally by status and queue) and
//! notifications.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{
    clock::{Clock, SystemClock},
    Error,
};
use crate::{
    feed::{self, FeedSettings, ServerMessage, SinceError},
    model::{Notification, Ticket},
    store::{Page, PageRequest, TicketQuery, TicketStore},
};

/// Lists stored tickets.
#[derive(Debug, Clone)]
pub struct TicketFeed {
    tickets: Arc<dyn TicketStore>,
}

impl TicketFeed {
    /// Over the tickets store.
    pub fn new(tickets: Arc<dyn TicketStore>) -> Self {
        Self { tickets }
    }

    /// One page of the tickets `query` asks for.
    pub async fn list(&self, query: &TicketQuery) -> Result<Page<Ticket>, Error> {
        Ok(self.tickets.list_tickets(query).await?)
    }
}

/// Lists stored notifications.
#[derive(Debug, Clone)]
pub struct NotificationFeed {
    notifications: Arc<dyn TicketStore>,
    settings: FeedSettings,
}

impl NotificationFeed {
    /// Over the store that holds notifications, with the default feed settings.
    pub fn new(notifications: Arc<dyn TicketStore>) -> Self {
        Self { notifications, settings: FeedSettings::default() }
    }

    /// With these retention and settle rules.
    pub fn with_settings(mut self, settings: FeedSettings) -> Self {
        self.settings = settings;
        self
    }

    /// One page of the notifications after the one with id `since`, oldest first (a
    /// client catching up); [`Error::PositionExpired`] when that position is gone.
    pub async fn after(
        &self,
        since: &str,
        page: &PageRequest,
        now: DateTime<Utc>,
    ) -> Result<Page<Notification>, Error> {
        feed::page_since(self.notifications.as_ref(), since, &self.settings, now, page)
            .await
            .map_err(|e| match e {
                SinceError::Expired(since) => Error::PositionExpired(since),
                SinceError::Store(e) => Error::Store(e),
            })
    }

    /// One page of notifications, of one `kind` (a [`crate::model::NOTIFICATION_TYPES`]
    /// entry) when given.
    pub async fn list(
        &self,
        kind: Option<&'static str>,
        page: &PageRequest,
    ) -> Result<Page<Notification>, Error> {
        Ok(match kind {
            None => self.notifications.list_notifications(page).await?,
            Some(kind) => self.notifications.list_notifications_of_type(kind, page).await?,
        })
    }
}

/// The keep-alive: a `ping` is answered `pong`, or `reconnect` with a resume position once
/// the connection is near API Gateway's 2-hour cut ([`feed::answer_ping`]).
#[derive(Debug, Clone)]
pub struct KeepAlive {
    notifications: Arc<dyn TicketStore>,
    settings: FeedSettings,
    clock: Arc<dyn Clock>,
}

impl KeepAlive {
    /// Over the notifications store (read only for a `reconnect` position), on the system
    /// clock.
    pub fn new(notifications: Arc<dyn TicketStore>, settings: FeedSettings) -> Self {
        Self { notifications, settings, clock: Arc::new(SystemClock) }
    }

    /// The answer to a `ping` on a connection made at `connected_at_millis`.
    pub async fn ping(&self, connected_at_millis: i64) -> Result<ServerMessage, Error> {
        let now = self.clock.now();
        Ok(feed::answer_ping(self.notifications.as_ref(), &self.settings, connected_at_millis, now)
            .await?)
    }
}
