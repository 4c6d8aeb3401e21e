//! The time a use case reads. Production uses [`SystemClock`]; tests use [`TokioClock`],
//! which follows tokio's clock, so `tokio::time::pause` and auto-advance move it too and an
//! expired lease needs no real waiting.

use std::fmt::Debug;

use chrono::{DateTime, Utc};

/// Tells the current wall-clock time.
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall-clock time that advances with tokio's clock (paused or not) from the moment it
/// was made.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at the current wall-clock time.
    pub fn new() -> Self {
        Self { start_wall: Utc::now(), start: tokio::time::Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        // An elapsed time beyond chrono's range (about 292 years) cannot happen in a test.
        chrono::Duration::from_std(elapsed)
            .ok()
            .and_then(|d| self.start_wall.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time() {
        let clock = TokioClock::new();
        let before = clock.now();
        tokio::time::sleep(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now() - before, chrono::Duration::seconds(90));
    }
}
