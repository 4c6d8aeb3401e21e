//! The two stored feeds, newest first: tickets (optionally by status and queue) and
//! notifications.

use std::sync::Arc;

use super::Error;
use crate::{
    model::{Notification, Ticket},
    store::{Page, PageRequest, TicketFilter, TicketStore},
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

    /// One page of tickets matching `filter`.
    pub async fn list(
        &self,
        filter: &TicketFilter,
        page: &PageRequest,
    ) -> Result<Page<Ticket>, Error> {
        Ok(self.tickets.list_tickets(filter, page).await?)
    }
}

/// Lists stored notifications.
#[derive(Debug, Clone)]
pub struct NotificationFeed {
    notifications: Arc<dyn TicketStore>,
}

impl NotificationFeed {
    /// Over the store that holds notifications.
    pub fn new(notifications: Arc<dyn TicketStore>) -> Self {
        Self { notifications }
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
