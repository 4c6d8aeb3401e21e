//! The product's use cases, free of HTTP, WebSocket events and stream records: each takes
//! its ports (the [`crate::rt::RtClient`], the store traits, the
//! [`crate::fanout::ConnectionPoster`], a [`clock::Clock`] where time matters) and returns
//! domain results or an [`Error`]. The transports in [`crate::handlers`] only turn requests
//! into inputs and results into answers; [`crate::http`] maps errors to statuses.

use chrono::{DateTime, Utc};

use crate::{
    model::Ticket,
    rt::{RtError, RtTicket},
    store::StoreError,
};

pub mod clock;
pub mod connections;
pub mod create_ticket;
pub mod feeds;
pub mod push;
pub mod refresh_ticket;
pub mod resume;

/// Why a use case did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RT has no ticket with this id.
    #[error("no ticket {0}")]
    TicketNotFound(u64),
    /// The idempotency key was used before with a different request.
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    /// Another request with the same idempotency key is still running.
    #[error("a request with this Idempotency-Key is still in progress; retry shortly")]
    IdempotencyInProgress,
    /// A feed position (`since`) that is unknown or older than the kept history.
    #[error(
        "position {0:?} is unknown or older than the kept history; re-read the feed without since"
    )]
    PositionExpired(String),
    /// RT did not do it.
    #[error(transparent)]
    Rt(#[from] RtError),
    /// DynamoDB did not do it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The fan-out queue did not take a task (a resume).
    #[error(transparent)]
    Queue(#[from] crate::fanout::QueueError),
    /// A value rt-relay itself produced could not be encoded (a bug, never the client's).
    #[error("internal: {0}")]
    Internal(String),
}

/// The API's ticket from RT's fields plus what RT does not report back, read at `now`.
/// Also used by the event ingest (`crate::events::ingest`).
pub(crate) fn ticket_from_rt(
    rt: &RtTicket,
    description: String,
    requestor: Option<String>,
    rt_url: String,
    now: DateTime<Utc>,
) -> Ticket {
    Ticket {
        id: rt.id,
        title: rt.subject.clone(),
        description,
        status: rt.status.clone(),
        queue: rt.queue.clone(),
        requestor: requestor.or_else(|| rt.requestors.first().cloned()),
        created_at: rt.created,
        updated_at: now,
        rt_url,
    }
}
