//! The scheduled sync: reads RT's transaction log after the committed cursor, page by
//! page, applies each page through the [`Ingest`] and commits the cursor after it.
//!
//! - One run at a time: a run first claims the cursor with a lease (a conditional write);
//!   a run that finds a live lease does nothing ([`SyncOutcome::Busy`]), so two overlapping
//!   runs never read the same range.
//! - Nothing lost: the cursor moves only after the page's records are written, and every
//!   commit is conditional on the lease. A run killed mid-page leaves the cursor before that
//!   page; the next run (after the lease ends) applies it again, and idempotent writes make
//!   the second application add nothing.
//! - Bounded: at most `max_pages` pages and `budget` time per run (the Lambda timeout), and
//!   what is left is reported, never hidden: [`SyncReport::behind`] and
//!   [`SyncReport::lag_seconds`] are logged (and emitted as metrics by the function).
//! - A sync with no cursor starts at RT's newest transaction: RT's history before rt-relay
//!   was deployed is not replayed as notifications.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{error, info, instrument, warn};

use super::{
    ingest::{Ingest, IngestError, IngestStats},
    store::{CursorClaim, SyncCursorStore},
};
use crate::{
    http::error_chain,
    rt::{
        transactions::{RtTransactions, TxnPosition},
        RtError,
    },
    store::{StoreError, Term},
};

/// Bounds of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSettings {
    /// Transactions read per page (RT REST 2.0 pages at most 100).
    pub page_size: u32,
    /// Pages at most per run.
    pub max_pages: u32,
    /// Time after which a run starts no new page.
    pub budget: Duration,
    /// How long a run holds the cursor; must outlast `budget` plus one page, so a live run
    /// never loses it, and is how long a killed run blocks the next one.
    pub lease: Duration,
}

impl Default for SyncSettings {
    /// For a Lambda with a 60 s timeout, run every minute: 100 × 20 pages, 40 s of work.
    fn default() -> Self {
        Self {
            page_size: 100,
            max_pages: 20,
            budget: Duration::from_secs(40),
            lease: Duration::from_secs(60),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// It read the log and committed what it applied.
    Ran,
    /// First run: the cursor was set to RT's newest transaction.
    Started,
    /// Another run holds the cursor.
    Busy,
}

/// What a run did and how far behind RT the cursor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// How it ended.
    pub outcome: SyncOutcome,
    /// Transactions read.
    pub transactions: usize,
    /// What the ingest did.
    pub ingest: IngestStats,
    /// The committed position after the run.
    pub position: Option<TxnPosition>,
    /// Ticket transactions in RT after the committed position (0: caught up).
    pub behind: u64,
    /// When behind, how old the newest applied transaction is (the oldest unapplied one is
    /// at least that old); 0 when caught up.
    pub lag_seconds: i64,
}

impl SyncReport {
    fn idle(outcome: SyncOutcome, position: Option<TxnPosition>) -> Self {
        Self {
            outcome,
            transactions: 0,
            ingest: IngestStats::default(),
            position,
            behind: 0,
            lag_seconds: 0,
        }
    }
}

impl SyncReport {
    /// The report as CloudWatch Embedded Metric Format: one JSON line that CloudWatch turns
    /// into the metrics `RtSyncBehind`, `RtSyncLagSeconds` and `RtSyncEvents` (namespace
    /// `rt-relay`), for dashboards and alarms on a sync that falls behind.
    pub fn metrics_line(&self) -> String {
        let now = Utc::now();
        json!({
            "_aws": {
                "Timestamp": now.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": "rt-relay",
                    "Dimensions": [["Function"]],
                    "Metrics": [
                        {"Name": "RtSyncBehind", "Unit": "Count"},
                        {"Name": "RtSyncLagSeconds", "Unit": "Seconds"},
                        {"Name": "RtSyncEvents", "Unit": "Count"}
                    ]
                }]
            },
            "Function": "rt-sync",
            "RtSyncBehind": self.behind,
            "RtSyncLagSeconds": self.lag_seconds,
            "RtSyncEvents": self.ingest.stored,
        })
        .to_string()
    }

    /// The run's outcome as a JSON value (the function's result).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "outcome": format!("{:?}", self.outcome),
            "transactions": self.transactions,
            "stored": self.ingest.stored,
            "duplicates": self.ingest.duplicates,
            "position": self.position.map(|p| p.id),
            "behind": self.behind,
            "lag_seconds": self.lag_seconds,
        })
    }
}

/// Why a run stopped early. The cursor stays at the last committed page.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// RT could not be read.
    #[error("RT could not be read: {0}")]
    Rt(#[from] RtError),
    /// DynamoDB failed, or the lease was lost (`StoreError::Conflict`).
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
}

impl From<IngestError> for SyncError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Rt(e) => SyncError::Rt(e),
            IngestError::Store(e) => SyncError::Store(e),
        }
    }
}

/// The sync use case.
#[derive(Debug, Clone)]
pub struct Sync {
    rt: Arc<dyn RtTransactions>,
    ingest: Ingest,
    cursor: Arc<dyn SyncCursorStore>,
    settings: SyncSettings,
}

impl Sync {
    /// Wires the use case.
    pub fn new(
        rt: Arc<dyn RtTransactions>,
        ingest: Ingest,
        cursor: Arc<dyn SyncCursorStore>,
        settings: SyncSettings,
    ) -> Self {
        Self { rt, ingest, cursor, settings }
    }

    /// One run, logged: the report's fields at info (`behind`, `lag_seconds` at warn when
    /// behind). The function also prints [`SyncReport::metrics_line`] for CloudWatch.
    pub async fn run_logged(&self) -> Result<SyncReport, SyncError> {
        match self.run().await {
            Ok(report) => {
                let position = report.position.map(|p| p.id);
                if report.behind > 0 {
                    warn!(
                        transactions = report.transactions,
                        stored = report.ingest.stored,
                        duplicates = report.ingest.duplicates,
                        position,
                        behind = report.behind,
                        lag_seconds = report.lag_seconds,
                        "sync run ended behind RT"
                    );
                } else {
                    info!(outcome = ?report.outcome, transactions = report.transactions, stored = report.ingest.stored, duplicates = report.ingest.duplicates, position, behind = 0, lag_seconds = 0, "sync run");
                }
                Ok(report)
            }
            Err(e) => {
                error!(error = %error_chain(&e), "sync run failed; the cursor stays where the last page left it");
                Err(e)
            }
        }
    }

    /// One run. On error the lease is released and the cursor is where the last committed
    /// page left it, so the next run resumes there.
    #[instrument(skip_all)]
    pub async fn run(&self) -> Result<SyncReport, SyncError> {
        let lease_for = chrono::Duration::from_std(self.settings.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        let (lease, position) = match self.cursor.claim(Term::of(Utc::now(), lease_for)).await? {
            CursorClaim::Busy => {
                info!("another sync run holds the cursor; nothing to do");
                return Ok(SyncReport::idle(SyncOutcome::Busy, None));
            }
            CursorClaim::Acquired { lease, position } => (lease, position),
        };
        let result = self.run_claimed(&lease, position).await;
        if let Err(e) = self.cursor.release(&lease).await {
            warn!(error = %error_chain(&e), "could not release the sync cursor; it frees itself when the lease ends");
        }
        result
    }

    async fn run_claimed(
        &self,
        lease: &str,
        position: Option<TxnPosition>,
    ) -> Result<SyncReport, SyncError> {
        let Some(mut position) = position else {
            // An RT without any ticket transaction starts from the beginning.
            let start = self
                .rt
                .latest_transaction()
                .await?
                .unwrap_or(TxnPosition { id: 0, created: DateTime::<Utc>::UNIX_EPOCH });
            self.cursor.commit(lease, start).await?;
            info!(position = start.id, "sync cursor started at RT's newest transaction");
            return Ok(SyncReport::idle(SyncOutcome::Started, Some(start)));
        };
        let deadline = tokio::time::Instant::now() + self.settings.budget;
        let mut report = SyncReport::idle(SyncOutcome::Ran, Some(position));
        for _ in 0..self.settings.max_pages.max(1) {
            let page = self.rt.transactions_after(position, self.settings.page_size).await?;
            report.behind = page.remaining;
            let Some(last) = page.transactions.last() else { break };
            let stats = self.ingest.apply(&page.transactions, Utc::now()).await?;
            position = TxnPosition { id: last.id, created: last.created };
            self.cursor.commit(lease, position).await?;
            report.transactions += page.transactions.len();
            report.ingest += stats;
            report.position = Some(position);
            if page.remaining == 0 || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        if report.behind > 0 {
            report.lag_seconds = (Utc::now() - position.created).num_seconds().max(0);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::memory::MemoryEvents,
        rt::{memory::MemoryRt, RtClient, RtCreate},
    };

    struct Fixture {
        rt: Arc<MemoryRt>,
        store: Arc<MemoryEvents>,
    }

    impl Fixture {
        fn new() -> Self {
            Self { rt: Arc::new(MemoryRt::new()), store: Arc::new(MemoryEvents::new()) }
        }

        fn sync(&self, settings: SyncSettings) -> Sync {
            let ingest = Ingest::new(self.rt.clone(), self.store.clone());
            Sync::new(self.rt.clone(), ingest, self.store.clone(), settings)
        }

        /// A sync whose first run has positioned the cursor at RT's newest transaction.
        async fn started(&self, settings: SyncSettings) -> Sync {
            let sync = self.sync(settings);
            sync.run().await.unwrap();
            sync
        }

        async fn create(&self, subject: &str) -> u64 {
            let create = RtCreate {
                requestor: Some("someone@example.com".into()),
                ..RtCreate::new("General", subject, format!("about {subject}"))
            };
            self.rt.create(&create).await.unwrap()
        }
    }

    fn small(pages: u32) -> SyncSettings {
        SyncSettings { page_size: 2, max_pages: pages, ..SyncSettings::default() }
    }

    #[tokio::test]
    async fn first_run_starts_at_the_newest_transaction_then_follows_the_log() {
        // GIVEN an RT with history before the relay existed
        let f = Fixture::new();
        f.create("old").await;
        let sync = f.sync(small(10));
        // WHEN the first run happens THEN it only positions the cursor
        let first = sync.run().await.unwrap();
        assert_eq!(first.outcome, SyncOutcome::Started);
        assert_eq!(f.store.notification_ids(), Vec::<String>::new());
        // WHEN RT changes THEN the next run turns each change into one notification
        let id = f.create("new").await;
        f.rt.set_status(id, "open").unwrap();
        f.rt.set_owner(id, "root").unwrap();
        f.rt.reply(id, "alice", "Thanks, looking into it").unwrap();
        f.rt.comment(id, "bob", "internal note").unwrap();
        let report = sync.run().await.unwrap();
        assert_eq!(report.outcome, SyncOutcome::Ran);
        assert_eq!(report.behind, 0);
        let kinds = f.store.notification_kinds();
        assert_eq!(
            kinds,
            vec![
                "ticket.created",
                "ticket.status_changed",
                "ticket.updated",
                "ticket.replied",
                "ticket.commented"
            ]
        );
        let mirrored = f.store.ticket(id).unwrap();
        assert_eq!(mirrored.status, "open");
        assert_eq!(mirrored.description, "about new");
        assert_eq!(mirrored.requestor.as_deref(), Some("someone@example.com"));
        // AND a run with nothing new adds nothing
        let again = sync.run().await.unwrap();
        assert_eq!(again.transactions, 0);
        assert_eq!(f.store.notification_ids().len(), 5);
    }

    #[tokio::test]
    async fn a_bounded_run_reports_what_it_left_and_the_next_run_catches_up() {
        let f = Fixture::new();
        // Each create is two transactions (Create, EmailRecord), as in RT.
        let sync =
            f.started(SyncSettings { page_size: 4, max_pages: 2, ..SyncSettings::default() }).await;
        for i in 0..7 {
            f.create(&format!("t{i}")).await;
        }
        let first = sync.run().await.unwrap();
        assert_eq!(first.transactions, 8, "two pages of four");
        assert_eq!(first.behind, 6);
        let metrics: serde_json::Value = serde_json::from_str(&first.metrics_line()).unwrap();
        assert_eq!(metrics["RtSyncBehind"], 6, "the lag is a metric");
        assert_eq!(metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"], "rt-relay");
        let second = sync.run().await.unwrap();
        assert_eq!((second.transactions, second.behind), (6, 0));
        assert_eq!(f.store.notification_ids().len(), 7);
    }

    #[tokio::test]
    async fn rt_unreachable_leaves_the_cursor_and_the_next_run_catches_up() {
        let f = Fixture::new();
        let sync = f.started(small(10)).await;
        let before = f.store.committed();
        f.create("during outage").await;
        f.rt.set_failure(Some(|| RtError::Timeout(Duration::from_secs(1))));
        assert!(matches!(sync.run().await, Err(SyncError::Rt(RtError::Timeout(_)))));
        assert_eq!(f.store.committed(), before, "cursor unchanged");
        assert!(f.store.notification_ids().is_empty());
        f.rt.set_failure(None);
        let report = sync.run().await.unwrap();
        assert_eq!(report.ingest.stored, 1);
    }

    #[tokio::test]
    async fn a_run_killed_mid_page_loses_and_doubles_nothing() {
        let f = Fixture::new();
        // Pages of two tickets (four transactions).
        let sync = f
            .started(SyncSettings { page_size: 4, max_pages: 10, ..SyncSettings::default() })
            .await;
        let mut ids = vec![];
        for i in 0..5 {
            ids.push(f.create(&format!("t{i}")).await);
        }
        // The store dies after three notifications: mid-way through the second page.
        f.store.fail_notifications_after(3);
        assert!(sync.run().await.is_err());
        assert_eq!(f.store.notification_ids().len(), 3);
        f.store.recover();
        let report = sync.run().await.unwrap();
        assert_eq!(report.ingest.duplicates, 1, "the half-done page is applied again");
        let mut want: Vec<String> = ids.iter().map(|i| format!("ticket-{i}-created")).collect();
        want.sort();
        assert_eq!(f.store.notification_ids(), want);
    }

    #[tokio::test]
    async fn a_run_that_dies_without_releasing_blocks_others_until_its_lease_ends() {
        let f = Fixture::new();
        let settings = SyncSettings { lease: Duration::from_secs(30), ..small(10) };
        let sync = f.started(settings).await;
        f.create("x").await;
        // A run claimed the cursor and was killed (never released).
        let now = Utc::now();
        let claim = f.store.claim(Term::of(now, chrono::Duration::seconds(30))).await.unwrap();
        assert!(matches!(claim, CursorClaim::Acquired { .. }));
        let busy = sync.run().await.unwrap();
        assert_eq!(busy.outcome, SyncOutcome::Busy);
        assert!(f.store.notification_ids().is_empty());
        // Once the lease has ended the next run takes over.
        f.store.expire_leases();
        assert_eq!(sync.run().await.unwrap().ingest.stored, 1);
    }

    #[tokio::test]
    async fn concurrent_runs_never_double() {
        let f = Fixture::new();
        let sync = f.started(small(100)).await;
        for i in 0..20 {
            f.create(&format!("t{i}")).await;
        }
        let runs: Vec<_> = (0..4).map(|_| sync.run()).collect();
        let reports = futures_util::future::join_all(runs).await;
        let stored: usize = reports.iter().map(|r| r.as_ref().unwrap().ingest.stored).sum();
        let duplicates: usize = reports.iter().map(|r| r.as_ref().unwrap().ingest.duplicates).sum();
        assert_eq!((stored, duplicates), (20, 0));
        assert_eq!(f.store.notification_ids().len(), 20);
    }

    #[tokio::test]
    async fn the_post_paths_ticket_created_is_not_doubled_by_the_sync() {
        let f = Fixture::new();
        let sync = f.started(small(10)).await;
        let id = f.create("via POST").await;
        // What POST /tickets stored: the same id.
        let t = f.rt.get(id).await.unwrap();
        let record = crate::model::Ticket {
            id,
            title: t.subject.clone(),
            description: "about via POST".into(),
            status: t.status.clone(),
            queue: t.queue.clone(),
            requestor: None,
            created_at: t.created,
            updated_at: Utc::now(),
            rt_url: f.rt.ticket_url(id),
        };
        let posted = crate::model::Notification::ticket_created(&record, Utc::now());
        assert!(f.store.add_posted(&record, &posted));
        let report = sync.run().await.unwrap();
        assert_eq!((report.ingest.stored, report.ingest.duplicates), (0, 1));
        assert_eq!(f.store.notification_ids(), vec![format!("ticket-{id}-created")]);
    }
}
