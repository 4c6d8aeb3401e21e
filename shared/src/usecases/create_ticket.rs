//! Creating a ticket: create it in RT, then record ticket, `ticket.created` notification
//! and (with an idempotency key) the stored answer in one transaction.
//!
//! The idempotency protocol, in order: claim the key (a conditional write); a different
//! request under the same key is refused; a finished one is replayed; a running one is
//! waited for (then refused as in progress); an attempt whose lease ran out is taken over,
//! keeping the RT ticket id it noted, or, when it noted none, adopting the ticket RT may
//! have created after the attempt stopped waiting. A definite refusal by RT releases the
//! key; any other failure keeps it and ends the lease after a short grace, so the retry
//! finishes what the failed attempt started. Lease sizing is in [`IdempotencyTiming`].

use std::{sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use tracing::{info, instrument, warn};

use super::{
    clock::{Clock, SystemClock},
    ticket_from_rt, Error,
};
use crate::{
    http::error_chain,
    model::{NewTicket, Notification, Ticket},
    rt::{RtClient, RtCreate, RtError, RtQuery},
    store::{
        Claim, Creation, IdempotencyCompletion, IdempotencyStore, Lease, StoreError, Term,
        TicketStore,
    },
};

/// A client's idempotency key, already checked; only its SHA-256 is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a raw key (1 to 255 visible ASCII characters); `None` when malformed.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::parse_scoped(None, raw)
    }

    /// Like [`IdempotencyKey::parse`], in the key space of the API key `key_id` (two API
    /// keys sending the same header value never share a record).
    pub fn parse_scoped(key_id: Option<&str>, raw: &str) -> Option<Self> {
        let ok = !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(crate::tenant::scoped_idempotency_key(key_id, raw)))
    }

    /// The stored form (hex SHA-256 of the raw key).
    pub fn hashed(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdempotencyKey(..)")
    }
}

/// How long things take in the idempotency protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyTiming {
    /// How long a request holds a key; must outlast one RT create, one RT read and the
    /// DynamoDB writes.
    pub lease: Duration,
    /// After a failure with an unknown outcome, how long the key stays held, so an RT
    /// create that is merely slow commits before the retry looks for it.
    pub retry_grace: Duration,
    /// How long a request waits for a concurrent one with the same key before 409.
    pub wait_for_peer: Duration,
}

impl IdempotencyTiming {
    /// The production sizing for an RT request bound of `rt_timeout`: a lease of
    /// 3 × the timeout + 5 s, a 2 s grace, 20 s of waiting for a peer.
    pub fn for_rt_timeout(rt_timeout: Duration) -> Self {
        Self {
            lease: rt_timeout * 3 + Duration::from_secs(5),
            retry_grace: Duration::from_secs(2),
            wait_for_peer: Duration::from_secs(20),
        }
    }
}

/// What creating a ticket came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// This request created (or finished recording) the ticket.
    New(Ticket),
    /// An earlier request with the same key finished: its stored answer, byte for byte.
    Replayed {
        /// The stored status.
        status: u16,
        /// The stored JSON body.
        body: String,
        /// The ticket the stored answer names, if it names one.
        ticket_id: Option<u64>,
    },
}

/// First poll interval while a peer holds the key; doubled up to [`PEER_POLL_MAX`].
const PEER_POLL_START: Duration = Duration::from_millis(50);
const PEER_POLL_MAX: Duration = Duration::from_millis(400);

/// The create-a-ticket use case.
#[derive(Debug, Clone)]
pub struct CreateTicket {
    /// The queue of a request that names none.
    default_queue: String,
    timing: IdempotencyTiming,
    rt: Arc<dyn RtClient>,
    tickets: Arc<dyn TicketStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    clock: Arc<dyn Clock>,
}

impl CreateTicket {
    /// The queue a ticket goes to when the request names none.
    pub fn default_queue(&self) -> &str {
        &self.default_queue
    }

    /// Over its ports, on the system clock.
    pub fn new(
        rt: Arc<dyn RtClient>,
        tickets: Arc<dyn TicketStore>,
        idempotency: Arc<dyn IdempotencyStore>,
        default_queue: String,
        timing: IdempotencyTiming,
    ) -> Self {
        Self { rt, tickets, idempotency, clock: Arc::new(SystemClock), default_queue, timing }
    }

    /// Reads time from `clock` instead.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Creates `new`; with a `key`, at most once per key.
    pub async fn create(
        &self,
        new: &NewTicket,
        key: Option<&IdempotencyKey>,
    ) -> Result<Created, Error> {
        let Some(key) = key else {
            return Ok(Created::New(self.create_and_record(new, None, None).await?));
        };
        let body_hash = request_hash(new)?;
        let (lease, rt_ticket_id, previous_attempt) = match self.claim(key, &body_hash).await? {
            Claimed::Held { lease, rt_ticket_id, previous_attempt } => {
                (lease, rt_ticket_id, previous_attempt)
            }
            Claimed::Replay(created) => return Ok(created),
        };
        let outcome = match (rt_ticket_id, previous_attempt) {
            // An earlier attempt stopped before noting an RT id: it may still have created
            // the ticket (RT answered too late). Look in RT before creating another.
            (None, Some(since)) => match self.find_interrupted_create(new, since).await {
                Ok(found) => self.create_and_record(new, Some(&lease), found).await,
                Err(e) => Err(e.into()),
            },
            (id, _) => self.create_and_record(new, Some(&lease), id).await,
        };
        match outcome {
            Ok(ticket) => Ok(Created::New(ticket)),
            Err(e) => {
                self.give_up_key(&lease, &e).await;
                Err(e)
            }
        }
    }

    /// Claims `key`, waiting while a peer holds it, until it is ours or has an answer.
    async fn claim(&self, key: &IdempotencyKey, body_hash: &str) -> Result<Claimed, Error> {
        let deadline = tokio::time::Instant::now() + self.timing.wait_for_peer;
        let lease_for = chrono::Duration::from_std(self.timing.lease)
            .map_err(|_| Error::Internal("idempotency lease out of range".into()))?;
        let mut pause = PEER_POLL_START;
        loop {
            match self
                .idempotency
                .claim(key.hashed(), body_hash, Term::of(self.clock.now(), lease_for))
                .await?
            {
                Claim::Acquired { lease, rt_ticket_id, previous_attempt } => {
                    return Ok(Claimed::Held { lease, rt_ticket_id, previous_attempt })
                }
                Claim::Completed { status, body } => {
                    // The stored answer is the ticket: a replay names it too.
                    let ticket_id = serde_json::from_str::<Ticket>(&body).ok().map(|t| t.id);
                    return Ok(Claimed::Replay(Created::Replayed { status, body, ticket_id }));
                }
                Claim::Mismatch => return Err(Error::IdempotencyKeyReused),
                Claim::InProgress if tokio::time::Instant::now() + pause > deadline => {
                    return Err(Error::IdempotencyInProgress)
                }
                Claim::InProgress => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(PEER_POLL_MAX);
                }
            }
        }
    }

    /// After a failure under `lease`: a definite refusal by RT releases the key (nothing
    /// was created; the client may fix the request); any other failure keeps the record
    /// and lets a retry take over after the grace, finishing what this attempt started.
    async fn give_up_key(&self, lease: &Lease, error: &Error) {
        let refused = matches!(
            error,
            Error::Rt(
                RtError::Forbidden(_)
                    | RtError::Rejected(_)
                    | RtError::Unauthenticated
                    | RtError::NotFound
            )
        );
        let result = if refused {
            self.idempotency.release(lease).await
        } else {
            let grace = chrono::Duration::from_std(self.timing.retry_grace)
                .unwrap_or(chrono::Duration::zero());
            self.idempotency.abandon(lease, self.clock.now() + grace).await
        };
        if let Err(e) = result {
            warn!(error = %error_chain(&e), "could not hand the idempotency key back");
        }
    }

    /// A ticket an interrupted attempt created: same queue, subject and description,
    /// created since that attempt began (less a few seconds: RT keeps whole seconds and
    /// its clock may differ). The oldest match wins.
    async fn find_interrupted_create(
        &self,
        new: &NewTicket,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<u64>, RtError> {
        let query = RtQuery {
            queue: Some(self.queue_of(new)),
            subject: Some(new.title.clone()),
            ..RtQuery::default()
        };
        let page = self.rt.list(&query, 1, 20).await?;
        let since = since - chrono::Duration::seconds(5);
        for candidate in
            page.tickets.iter().rev().filter(|t| t.created >= since && t.subject == new.title)
        {
            if self.rt.description(candidate.id).await? == new.description {
                info!(
                    ticket_id = candidate.id,
                    "found the RT ticket an interrupted attempt created"
                );
                return Ok(Some(candidate.id));
            }
        }
        Ok(None)
    }

    fn queue_of(&self, new: &NewTicket) -> String {
        new.queue.clone().unwrap_or_else(|| self.default_queue.clone())
    }

    /// Creates the RT ticket (unless an earlier attempt did) and records it.
    #[instrument(skip_all, fields(retrying = rt_ticket_id.is_some()))]
    async fn create_and_record(
        &self,
        new: &NewTicket,
        lease: Option<&Lease>,
        rt_ticket_id: Option<u64>,
    ) -> Result<Ticket, Error> {
        let id = match rt_ticket_id {
            Some(id) => id,
            None => {
                let create = RtCreate {
                    queue: self.queue_of(new),
                    subject: new.title.clone(),
                    content: new.description.clone(),
                    requestor: new.requestor.clone(),
                };
                self.rt.create(&create).await?
            }
        };
        info!(ticket_id = id, "RT ticket created");
        if let (Some(lease), None) = (lease, rt_ticket_id) {
            // If this fails the transaction below will most likely fail too; the client's
            // retry then cannot know the RT id. Logged so an operator can reconcile.
            if let Err(e) = self.idempotency.note_rt_ticket(lease, id).await {
                warn!(ticket_id = id, error = %error_chain(&e), "could not note RT ticket on idempotency record");
            }
        }
        let now = self.clock.now();
        let rt_ticket = self.rt.get(id).await?;
        let ticket = ticket_from_rt(
            &rt_ticket,
            new.description.clone(),
            new.requestor.clone(),
            self.rt.ticket_url(id),
            now,
        );
        let notification = Notification::ticket_created(&ticket, now);
        let completion = match lease {
            None => None,
            Some(lease) => Some(IdempotencyCompletion {
                lease: lease.clone(),
                status: 201,
                body: serde_json::to_string(&ticket)
                    .map_err(|e| Error::Internal(format!("cannot encode the ticket: {e}")))?,
            }),
        };
        let creation = Creation {
            ticket: &ticket,
            notification: &notification,
            completion: completion.as_ref(),
        };
        match self.tickets.record_created(&creation).await {
            // RT's event log (the webhook or the sync) recorded this ticket and its one
            // `ticket.created` first: finish this request without a second notification.
            Err(StoreError::Conflict(why)) => {
                info!(ticket_id = ticket.id, %why, "ticket already recorded from RT's events");
                self.tickets.complete_recorded(&ticket, completion.as_ref()).await?;
            }
            other => other?,
        }
        Ok(ticket)
    }
}

/// The outcome of claiming a key.
enum Claimed {
    Held {
        lease: Lease,
        rt_ticket_id: Option<u64>,
        previous_attempt: Option<chrono::DateTime<chrono::Utc>>,
    },
    Replay(Created),
}

/// SHA-256 of the normalised request (its JSON encoding), the identity of "the same
/// request" under one key. An encoding failure is an error, never an empty body's hash
/// (which would merge different requests).
fn request_hash(new: &NewTicket) -> Result<String, Error> {
    let bytes = serde_json::to_vec(new)
        .map_err(|e| Error::Internal(format!("cannot encode the request: {e}")))?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    //! The idempotency protocol on the fakes, in paused time: every wait (a peer's lease,
    //! the retry grace, a slow RT) passes instantly and deterministically.

    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::{
        rt::{memory::MemoryRt, RtPage, RtTicket},
        store::{memory::MemoryStore, StoreError},
        usecases::clock::TokioClock,
    };

    const LEASE: Duration = Duration::from_secs(30);

    fn timing() -> IdempotencyTiming {
        IdempotencyTiming {
            lease: LEASE,
            retry_grace: Duration::from_secs(2),
            wait_for_peer: Duration::from_secs(20),
        }
    }

    /// The fake RT, with a create that can take time or answer after it stopped waiting.
    #[derive(Debug, Default)]
    struct ScriptedRt {
        inner: MemoryRt,
        create_delay: Duration,
        /// Creates that make the ticket but answer "timed out", as a late RT does.
        late_answers: AtomicU32,
    }

    #[async_trait::async_trait]
    impl RtClient for ScriptedRt {
        async fn create(&self, ticket: &RtCreate) -> Result<u64, RtError> {
            tokio::time::sleep(self.create_delay).await;
            let id = self.inner.create(ticket).await?;
            if self
                .late_answers
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(RtError::Timeout(Duration::from_secs(10)));
            }
            Ok(id)
        }
        async fn get(&self, id: u64) -> Result<RtTicket, RtError> {
            self.inner.get(id).await
        }
        async fn description(&self, id: u64) -> Result<String, RtError> {
            self.inner.description(id).await
        }
        async fn list(&self, query: &RtQuery, page: u32, per_page: u32) -> Result<RtPage, RtError> {
            self.inner.list(query, page, per_page).await
        }
        fn ticket_url(&self, id: u64) -> String {
            self.inner.ticket_url(id)
        }
    }

    struct Fixture {
        rt: Arc<ScriptedRt>,
        store: Arc<MemoryStore>,
        clock: Arc<TokioClock>,
        create: CreateTicket,
    }

    fn fixture(rt: ScriptedRt) -> Fixture {
        let rt = Arc::new(rt);
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(TokioClock::new());
        let create =
            CreateTicket::new(rt.clone(), store.clone(), store.clone(), "General".into(), timing())
                .with_clock(clock.clone());
        Fixture { rt, store, clock, create }
    }

    fn ticket(title: &str) -> NewTicket {
        NewTicket {
            title: title.into(),
            description: "body\n".into(),
            queue: None,
            requestor: None,
        }
    }

    fn key(raw: &str) -> IdempotencyKey {
        IdempotencyKey::parse(raw).unwrap()
    }

    fn new_ticket(created: Created) -> Ticket {
        match created {
            Created::New(t) => t,
            other => panic!("expected a new ticket, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_create_makes_one_rt_ticket_and_records_it_with_its_notification() {
        let f = fixture(ScriptedRt::default());
        let t = new_ticket(f.create.create(&ticket("first"), Some(&key("k1"))).await.unwrap());
        assert_eq!((t.id, t.title.as_str(), t.queue.as_str()), (1, "first", "General"));
        assert_eq!(f.rt.inner.created_count(), 1);
        assert_eq!(f.store.notification_count(), 1);
        assert_eq!(f.store.get_ticket(1).await.unwrap(), Some(t));
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_without_a_key_is_not_deduplicated() {
        let f = fixture(ScriptedRt::default());
        new_ticket(f.create.create(&ticket("a"), None).await.unwrap());
        new_ticket(f.create.create(&ticket("a"), None).await.unwrap());
        assert_eq!(f.rt.inner.created_count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_key_replays_the_stored_answer_naming_the_ticket() {
        let f = fixture(ScriptedRt::default());
        let first = new_ticket(f.create.create(&ticket("once"), Some(&key("k"))).await.unwrap());
        let again = f.create.create(&ticket("once"), Some(&key("k"))).await.unwrap();
        let Created::Replayed { status, body, ticket_id } = again else {
            panic!("expected a replay, got {again:?}")
        };
        assert_eq!((status, ticket_id), (201, Some(first.id)));
        assert_eq!(body, serde_json::to_string(&first).unwrap(), "byte for byte");
        assert_eq!(f.rt.inner.created_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_duplicates_make_one_rt_ticket() {
        let f = fixture(ScriptedRt { create_delay: Duration::from_secs(3), ..Default::default() });
        let (new, same) = (ticket("dup"), key("same"));
        let (a, b) =
            tokio::join!(f.create.create(&new, Some(&same)), f.create.create(&new, Some(&same)));
        let ids: Vec<u64> = [a.unwrap(), b.unwrap()]
            .into_iter()
            .map(|c| match c {
                Created::New(t) => t.id,
                Created::Replayed { ticket_id, .. } => ticket_id.unwrap(),
            })
            .collect();
        assert_eq!(ids, vec![1, 1]);
        assert_eq!(f.rt.inner.create_attempts(), 1, "the second waited, then replayed");
        assert_eq!(f.store.notification_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_holding_the_key_past_the_wait_is_answered_in_progress() {
        let f = fixture(ScriptedRt::default());
        let hash = request_hash(&ticket("busy")).unwrap();
        let lease_for = chrono::Duration::from_std(LEASE).unwrap();
        let peer =
            f.store.claim(key("busy").hashed(), &hash, Term::of(f.clock.now(), lease_for)).await;
        assert!(matches!(peer, Ok(Claim::Acquired { .. })));
        let started = tokio::time::Instant::now();
        let err = f.create.create(&ticket("busy"), Some(&key("busy"))).await.unwrap_err();
        assert!(matches!(err, Error::IdempotencyInProgress), "{err:?}");
        assert!(started.elapsed() >= Duration::from_secs(19), "it waited for the peer first");
        assert_eq!(f.rt.inner.create_attempts(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_key_with_another_body_is_refused() {
        let f = fixture(ScriptedRt::default());
        new_ticket(f.create.create(&ticket("one"), Some(&key("k"))).await.unwrap());
        let err = f.create.create(&ticket("two"), Some(&key("k"))).await.unwrap_err();
        assert!(matches!(err, Error::IdempotencyKeyReused), "{err:?}");
        assert_eq!(f.rt.inner.created_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_is_taken_over_and_finished_with_the_noted_rt_ticket() {
        // GIVEN an attempt that created RT ticket 1, noted it, and died holding the lease
        let f = fixture(ScriptedRt::default());
        let new = ticket("crashed");
        let hash = request_hash(&new).unwrap();
        let lease_for = chrono::Duration::from_std(LEASE).unwrap();
        let Ok(Claim::Acquired { lease, .. }) =
            f.store.claim(key("c").hashed(), &hash, Term::of(f.clock.now(), lease_for)).await
        else {
            panic!("claim")
        };
        let id =
            f.rt.create(&RtCreate::new("General", &new.title, &new.description)).await.unwrap();
        f.store.note_rt_ticket(&lease, id).await.unwrap();
        // WHEN the lease runs out and the client retries
        tokio::time::advance(LEASE).await;
        let t = new_ticket(f.create.create(&new, Some(&key("c"))).await.unwrap());
        // THEN the retry recorded that ticket and made no other
        assert_eq!(t.id, id);
        assert_eq!(f.rt.inner.create_attempts(), 1);
        assert_eq!(f.store.notification_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_failure_keeps_the_key_and_the_retry_finishes_after_the_grace() {
        let f = fixture(ScriptedRt::default());
        f.store.fail_next_record_created(1);
        let err = f.create.create(&ticket("flaky"), Some(&key("f"))).await.unwrap_err();
        assert!(matches!(err, Error::Store(StoreError::Aws { .. })), "{err:?}");
        assert_eq!(f.store.notification_count(), 0, "nothing half-written");
        let started = tokio::time::Instant::now();
        let t = new_ticket(f.create.create(&ticket("flaky"), Some(&key("f"))).await.unwrap());
        assert!(started.elapsed() >= Duration::from_secs(2), "the retry waited out the grace");
        assert_eq!((t.id, f.rt.inner.create_attempts()), (1, 1), "no second RT ticket");
        assert_eq!(f.store.notification_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ticket_rt_created_after_the_timeout_is_adopted_by_the_retry() {
        let f = fixture(ScriptedRt { late_answers: AtomicU32::new(1), ..Default::default() });
        let err = f.create.create(&ticket("late"), Some(&key("l"))).await.unwrap_err();
        assert!(matches!(err, Error::Rt(RtError::Timeout(_))), "{err:?}");
        assert_eq!(f.rt.inner.created_count(), 1, "RT did create it");
        let t = new_ticket(f.create.create(&ticket("late"), Some(&key("l"))).await.unwrap());
        assert_eq!(t.id, 1, "adopted");
        assert_eq!(f.rt.inner.create_attempts(), 1, "no second RT ticket");
        assert_eq!(f.store.notification_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_that_created_nothing_is_retried_with_one_create() {
        let f = fixture(ScriptedRt::default());
        f.rt.inner.fail_next_create(|| RtError::Timeout(Duration::from_secs(10)));
        assert!(f.create.create(&ticket("lost"), Some(&key("t"))).await.is_err());
        let t = new_ticket(f.create.create(&ticket("lost"), Some(&key("t"))).await.unwrap());
        assert_eq!((t.id, f.rt.inner.created_count()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_rt_refusal_releases_the_key_for_a_corrected_request() {
        let f = fixture(ScriptedRt::default());
        let mut wrong = ticket("queue");
        wrong.queue = Some("Nope".into());
        let err = f.create.create(&wrong, Some(&key("r"))).await.unwrap_err();
        assert!(matches!(err, Error::Rt(RtError::Forbidden(_))), "{err:?}");
        // The same key with another body is a fresh request, not a reuse.
        let t = new_ticket(f.create.create(&ticket("queue"), Some(&key("r"))).await.unwrap());
        assert_eq!(t.queue, "General");
        f.rt.inner.fail_next_create(|| RtError::Rejected("no".into()));
        assert!(f.create.create(&ticket("again"), Some(&key("r2"))).await.is_err());
        let started = tokio::time::Instant::now();
        new_ticket(f.create.create(&ticket("again"), Some(&key("r2"))).await.unwrap());
        assert_eq!(started.elapsed(), Duration::ZERO, "released at once, no grace to wait");
    }

    #[test]
    fn keys_are_checked_and_kept_hashed() {
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse("has space").is_none());
        assert!(IdempotencyKey::parse(&"x".repeat(256)).is_none());
        let k = IdempotencyKey::parse("secret-key").unwrap();
        assert_eq!(k.hashed().len(), 64);
        assert!(!format!("{k:?}").contains("secret"));
    }
}
