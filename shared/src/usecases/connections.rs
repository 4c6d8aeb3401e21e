//! Connection tracking: which WebSocket connections are live, for the push to reach.

use std::sync::Arc;

use tracing::info;

use super::{
    clock::{Clock, SystemClock},
    Error,
};
use crate::store::{Connection, ConnectionOwner, ConnectionStore};

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
}

impl ConnectionTracker {
    /// Over the connections store, on the system clock.
    pub fn new(connections: Arc<dyn ConnectionStore>) -> Self {
        Self { connections, clock: Arc::new(SystemClock), max_per_key: usize::MAX }
    }

    /// Sets how many connections one API key may hold open.
    pub fn with_max_connections_per_key(mut self, max: usize) -> Self {
        self.max_per_key = max;
        self
    }

    /// Records connection `id`, expiring after [`CONNECTION_TTL`], with the API key it was
    /// admitted with (`owner`), unless that key is at its connection limit.
    pub async fn connected(
        &self,
        id: &str,
        owner: Option<&ConnectionOwner>,
    ) -> Result<Admission, Error> {
        let now = self.clock.now();
        let connection =
            Connection { id: id.to_owned(), connected_at: now, expires_at: now + CONNECTION_TTL };
        match owner {
            None => self.connections.add(&connection).await?,
            Some(owner) => {
                // Counted before recording: concurrent handshakes of one key can pass
                // together, so the limit may be exceeded by the handshakes in flight.
                let open = self.connections.count_for_key(&owner.key_id).await?;
                if open >= self.max_per_key {
                    return Ok(Admission::OverLimit { open });
                }
                self.connections.add_owned(&connection, owner).await?;
            }
        }
        info!(connection_id = %id, "connected");
        Ok(Admission::Admitted)
    }

    /// Forgets connection `id` (absent is fine).
    pub async fn disconnected(&self, id: &str) -> Result<(), Error> {
        self.connections.remove(id).await?;
        info!(connection_id = %id, "disconnected");
        Ok(())
    }
}
