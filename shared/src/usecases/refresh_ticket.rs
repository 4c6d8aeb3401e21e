//! Reading one ticket: its current state from RT (the source of truth), refreshing the
//! stored record when RT's status, subject or queue moved on.

use std::sync::Arc;

use tracing::warn;

use super::{
    clock::{Clock, SystemClock},
    ticket_from_rt, Error,
};
use crate::{http::error_chain, model::Ticket, rt::RtClient, rt::RtError, store::TicketStore};

/// The read-a-ticket use case.
#[derive(Debug, Clone)]
pub struct RefreshTicket {
    rt: Arc<dyn RtClient>,
    tickets: Arc<dyn TicketStore>,
    clock: Arc<dyn Clock>,
}

impl RefreshTicket {
    /// Over its ports, on the system clock.
    pub fn new(rt: Arc<dyn RtClient>, tickets: Arc<dyn TicketStore>) -> Self {
        Self { rt, tickets, clock: Arc::new(SystemClock) }
    }

    /// Ticket `id` as RT has it now; the description and requestor come from the stored
    /// record when there is one (RT does not report them back as given).
    pub async fn get(&self, id: u64) -> Result<Ticket, Error> {
        let rt_ticket = match self.rt.get(id).await {
            Err(RtError::NotFound) => return Err(Error::TicketNotFound(id)),
            other => other?,
        };
        let stored = self.tickets.get_ticket(id).await?;
        let description = match &stored {
            Some(t) => t.description.clone(),
            None => self.rt.description(id).await?,
        };
        let requestor = stored.as_ref().and_then(|t| t.requestor.clone());
        let ticket = ticket_from_rt(
            &rt_ticket,
            description,
            requestor,
            self.rt.ticket_url(id),
            self.clock.now(),
        );
        if let Some(old) = &stored {
            let changed = old.status != ticket.status
                || old.title != ticket.title
                || old.queue != ticket.queue;
            if changed {
                // A failed refresh must not hide RT's answer from the client.
                if let Err(e) = self.tickets.put_ticket(&ticket).await {
                    warn!(ticket_id = id, error = %error_chain(&e), "could not refresh stored ticket");
                }
            }
        }
        Ok(ticket)
    }
}
