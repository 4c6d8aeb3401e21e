//! Connection tracking: which WebSocket connections are live, for the push to reach.

use std::sync::Arc;

use tracing::info;

use super::{
    clock::{Clock, SystemClock},
    Error,
};
use crate::{
    feed::{self, FeedSettings, SinceError, Subscription},
    store::{Connection, ConnectionOwner, ConnectionStore, Resuming, TicketStore},
};

/// Starts the resume of a connection that came with `since` (`usecases::resume::Resume`),
/// without waiting for it to run: `usecases::resume::EnqueueResume` puts it on the fan-out
/// queue for a push worker (on AWS and in the local gateway); the resume's first post waits
/// for the handshake to complete.
#[async_trait::async_trait]
pub trait ResumeStarter: Send + Sync + std::fmt::Debug {
    /// Starts resuming `connection_id`; an error means it will not run.
    async fn start(&self, connection_id: &str) -> Result<(), Error>;
}

/// What `$connect` needs to accept `since`: the feed to resolve it in, and the starter.
#[derive(Debug, Clone)]
pub struct ResumeSetup {
    /// The notifications store (the position of `since`).
    pub notifications: Arc<dyn TicketStore>,
    /// Retention.
    pub settings: FeedSettings,
    /// Runs the resume.
    pub starter: Arc<dyn ResumeStarter>,
}

/// How long a connection record lives: API Gateway closes connections after 2 h, so 3 h
/// leaves TTL a margin and never drops a live one.
pub const CONNECTION_TTL: chrono::Duration = chrono::Duration::hours(3);

/// Records connections as they open and forgets them as they close.
#[derive(Debug, Clone)]
pub struct ConnectionTracker {
    connections: Arc<dyn ConnectionStore>,
    clock: Arc<dyn Clock>,
    /// How many connections one API key may hold open.
    max_per_key: usize,
    /// `since` support, if wired.
    resume: Option<ResumeSetup>,
}

/// Whether a connection was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded: the push reaches it.
    Admitted,
    /// Its API key already holds `open` connections, at or over its limit; not recorded.
    OverLimit {
        /// The key's open connections.
        open: usize,
    },
    /// It asked for `since` where no resume is wired (not recorded).
    ResumeUnavailable,
}

impl ConnectionTracker {
    /// Over the connections store, on the system clock.
    pub fn new(connections: Arc<dyn ConnectionStore>) -> Self {
        Self { connections, clock: Arc::new(SystemClock), max_per_key: usize::MAX, resume: None }
    }

    /// Accepts `since` on connect, resuming through `setup`.
    pub fn with_resume(mut self, setup: ResumeSetup) -> Self {
        self.resume = Some(setup);
        self
    }

    /// Sets how many connections one API key may hold open.
    pub fn with_max_connections_per_key(mut self, max: usize) -> Self {
        self.max_per_key = max;
        self
    }

    /// Records connection `id`, expiring after [`CONNECTION_TTL`], with the API key it was
    /// admitted with (`owner`), unless that key is at its connection limit.
    /// With `since` (the id of the last notification the client received), the connection
    /// is recorded replaying and its resume started (an unknown or expired position is
    /// recorded too: the resume sends `resync` first). A `subscription` other than
    /// everything is stored with it before its resume starts; if that write fails the
    /// record is removed again (nothing half-written).
    pub async fn connected(
        &self,
        id: &str,
        owner: Option<&ConnectionOwner>,
        since: Option<&str>,
        subscription: &Subscription,
    ) -> Result<Admission, Error> {
        let now = self.clock.now();
        let connection =
            Connection { id: id.to_owned(), connected_at: now, expires_at: now + CONNECTION_TTL };
        if let Some(owner) = owner {
            // Counted before recording: concurrent handshakes of one key can pass
            // together, so the limit may be exceeded by the handshakes in flight.
            let open = self.connections.count_for_key(&owner.key_id).await?;
            if open >= self.max_per_key {
                return Ok(Admission::OverLimit { open });
            }
        }
        match (since, &self.resume) {
            (Some(_), None) => return Ok(Admission::ResumeUnavailable),
            (Some(since), Some(setup)) => {
                let replay_from = match feed::resolve_since(
                    setup.notifications.as_ref(),
                    since,
                    &setup.settings,
                    now,
                )
                .await
                {
                    Ok(position) => Some(position.seq()),
                    Err(SinceError::Expired(_)) => None,
                    Err(SinceError::Store(e)) => return Err(e.into()),
                };
                let replay_from = replay_from.as_deref();
                let resume = Resuming { owner, since, replay_from };
                self.connections.add_resuming(&connection, resume).await?;
                self.store_filter(id, subscription).await?;
                if let Err(e) = setup.starter.start(id).await {
                    // Not resumed, not recorded: the client retries the handshake.
                    self.forget_after_failure(id).await;
                    return Err(e);
                }
            }
            (None, _) => {
                match owner {
                    None => self.connections.add(&connection).await?,
                    Some(owner) => self.connections.add_owned(&connection, owner).await?,
                }
                self.store_filter(id, subscription).await?;
            }
        }
        info!(connection_id = %id, resuming = since.is_some(), "connected");
        Ok(Admission::Admitted)
    }

    /// Stores a just-recorded connection's filter (nothing for everything), removing the
    /// connection again when that fails.
    async fn store_filter(&self, id: &str, subscription: &Subscription) -> Result<(), Error> {
        let Some(filter) = subscription.to_stored() else { return Ok(()) };
        match self.connections.subscribe(id, Some(&filter)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Internal(format!("connection {id} vanished while connecting"))),
            Err(e) => {
                self.forget_after_failure(id).await;
                Err(e.into())
            }
        }
    }

    /// Removes a connection whose `$connect` is failing after it was recorded.
    async fn forget_after_failure(&self, id: &str) {
        if let Err(cleanup) = self.connections.remove(id).await {
            tracing::warn!(connection_id = %id, error = %cleanup, "could not remove a connection whose $connect failed");
        }
    }

    /// Replaces connection `id`'s subscription (the `subscribe` message); `false` when the
    /// connection is not recorded.
    pub async fn subscribe(&self, id: &str, subscription: &Subscription) -> Result<bool, Error> {
        Ok(self.connections.subscribe(id, subscription.to_stored().as_deref()).await?)
    }

    /// Forgets connection `id` (absent is fine).
    pub async fn disconnected(&self, id: &str) -> Result<(), Error> {
        self.connections.remove(id).await?;
        info!(connection_id = %id, "disconnected");
        Ok(())
    }
}
