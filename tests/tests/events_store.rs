//! The event stores' DynamoDB adapter against moto: idempotent notifications, the ticket
//! mirror's ordering rule, the sync cursor's lease and conditional commit, the webhook's
//! replay memory.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is the test failing

use chrono::{Duration, Utc};
use rt_relay_shared::{
    events::{
        dynamodb::DynamoEvents,
        store::{CursorClaim, EventStore, ReplayGuard, SyncCursorStore},
    },
    rt::transactions::TxnPosition,
    store::{
        dynamodb::DynamoStore, Creation, PageRequest, StoreError, Term, TicketFilter, TicketQuery,
        TicketStore,
    },
};
use rt_relay_tests::services::{fresh_tables, sample_notification, sample_ticket};

async fn stores(tag: &str) -> (DynamoEvents, DynamoStore) {
    let (client, tables) = fresh_tables(tag).await;
    (DynamoEvents::new(client.clone(), tables.clone()), DynamoStore::new(client, tables))
}

#[tokio::test]
async fn notifications_are_stored_once_and_the_mirror_keeps_the_latest_read() {
    let (events, store) = stores("ev-mirror").await;
    let t = sample_ticket(5, "new", "General");
    let n = sample_notification(&t);
    assert!(events.add_notification(&n).await.unwrap());
    assert!(!events.add_notification(&n).await.unwrap(), "second put is a duplicate");
    assert_eq!(store.list_notifications(&PageRequest::first(10)).await.unwrap().items, vec![n]);

    // A POST-written record (no rt_txn) is refreshed by the mirror.
    store.put_ticket(&t).await.unwrap();
    let open = sample_ticket(5, "open", "General");
    assert!(events.mirror_ticket(&open, 10).await.unwrap());
    // An older read never overwrites a newer one; an equal or newer one does.
    let stale = sample_ticket(5, "new", "General");
    assert!(!events.mirror_ticket(&stale, 9).await.unwrap());
    let resolved = sample_ticket(5, "resolved", "General");
    assert!(events.mirror_ticket(&resolved, 12).await.unwrap());
    assert_eq!(events.stored_ticket(5).await.unwrap(), Some(resolved.clone()));
    // The status filter sees RT's state.
    let filter = TicketFilter { status: Some("resolved".into()), queue: None };
    let query = TicketQuery { filter, page: PageRequest::first(10) };
    let listed = store.list_tickets(&query).await.unwrap();
    assert_eq!(listed.items, vec![resolved]);
}

#[tokio::test]
async fn the_cursor_is_claimed_by_one_run_and_moves_only_forward_under_its_lease() {
    let (events, _) = stores("ev-cursor").await;
    let now = Utc::now();
    assert_eq!(events.position().await.unwrap(), None);
    let CursorClaim::Acquired { lease, position: None } =
        events.claim(Term::of(now, Duration::seconds(30))).await.unwrap()
    else {
        panic!("first claim must succeed with no position");
    };
    assert_eq!(
        events.claim(Term::of(now, Duration::seconds(30))).await.unwrap(),
        CursorClaim::Busy
    );
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    let p10 = TxnPosition { id: 10, created: at };
    events.commit(&lease, p10).await.unwrap();
    // Backwards is refused, and so is a lease that is not the holder's.
    let back = events.commit(&lease, TxnPosition { id: 9, created: at }).await;
    assert!(matches!(back, Err(StoreError::Conflict(_))), "{back:?}");
    let foreign = events.commit("someone-else", TxnPosition { id: 11, created: at }).await;
    assert!(matches!(foreign, Err(StoreError::Conflict(_))), "{foreign:?}");
    events.release(&lease).await.unwrap();
    // Released: the next run claims and sees the committed position.
    let CursorClaim::Acquired { lease: next, position } =
        events.claim(Term::of(now, Duration::seconds(30))).await.unwrap()
    else {
        panic!("claim after release must succeed");
    };
    assert_eq!(position, Some(p10));
    // An expired lease is taken over by a later run; the old holder can no longer commit.
    let later = now + Duration::seconds(31);
    let CursorClaim::Acquired { .. } =
        events.claim(Term::of(later, Duration::seconds(30))).await.unwrap()
    else {
        panic!("an expired lease must be taken over");
    };
    let late = events.commit(&next, TxnPosition { id: 12, created: at }).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    assert_eq!(events.position().await.unwrap(), Some(p10));
}

#[tokio::test]
async fn a_signature_is_accepted_once_within_its_window() {
    let (events, _) = stores("ev-replay").await;
    let now = Utc::now();
    let window = Term::of(now, Duration::seconds(300));
    assert!(events.first_use("abc123", window).await.unwrap());
    assert!(!events.first_use("abc123", window).await.unwrap());
    assert!(events.first_use("def456", window).await.unwrap());
    // After the window the memory no longer counts (the call would be stale anyway).
    let after = window.until + Duration::seconds(1);
    assert!(events.first_use("abc123", Term::of(after, Duration::seconds(300))).await.unwrap());
}

#[tokio::test]
async fn notifications_list_by_type_with_cursors_tied_to_the_type() {
    let (events, store) = stores("ev-type").await;
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    for id in 1..=5u64 {
        let mut n = sample_notification(&sample_ticket(id, "new", "General"));
        if id % 2 == 0 {
            n.id = format!("rt-txn-{id}");
            n.kind = "ticket.replied".into();
            n.created_at = at + Duration::seconds(id as i64);
        }
        assert!(events.add_notification(&n).await.unwrap());
    }
    let replies = store.list_notifications_of_type("ticket.replied", &PageRequest::first(1)).await;
    let replies = replies.unwrap();
    assert_eq!(replies.items.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), vec!["rt-txn-4"]);
    let cursor = replies.next_cursor.expect("a second reply");
    let next = PageRequest::parse(Some("10"), Some(&cursor)).unwrap();
    let rest = store.list_notifications_of_type("ticket.replied", &next).await.unwrap();
    assert_eq!(rest.items.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), vec!["rt-txn-2"]);
    assert_eq!(rest.next_cursor, None);
    // A cursor of one type does not page another, nor the whole feed.
    assert!(matches!(
        store.list_notifications_of_type("ticket.created", &next).await,
        Err(StoreError::BadCursor(_))
    ));
    assert!(matches!(store.list_notifications(&next).await, Err(StoreError::BadCursor(_))));
    let created =
        store.list_notifications_of_type("ticket.created", &PageRequest::first(10)).await.unwrap();
    assert_eq!(created.items.len(), 3);
}

#[tokio::test]
async fn a_create_the_event_log_recorded_first_completes_without_a_second_notification() {
    use rt_relay_shared::store::{Claim, IdempotencyCompletion, IdempotencyStore};
    let (events, store) = stores("ev-race").await;
    // The webhook (or sync) saw RT's Create first: mirror and ticket.created are stored.
    let t = sample_ticket(9, "new", "General");
    let created = sample_notification(&t);
    let open = sample_ticket(9, "open", "General");
    assert!(events.mirror_ticket(&open, 30).await.unwrap());
    assert!(events.add_notification(&created).await.unwrap());
    // Then POST /tickets, holding an Idempotency-Key, records the same ticket.
    let Claim::Acquired { lease, .. } =
        store.claim("race-key", "h", Term::of(Utc::now(), Duration::seconds(30))).await.unwrap()
    else {
        panic!("claim");
    };
    let done = IdempotencyCompletion { lease: lease.clone(), status: 201, body: "{}".into() };
    let first = store.record_created(&Creation::new(&t, &created).completing(&done)).await;
    assert!(matches!(first, Err(StoreError::Conflict(_))), "{first:?}");
    store.complete_recorded(&t, Some(&done)).await.unwrap();
    // One notification; the newer mirror kept; the key replays the answer.
    assert_eq!(store.list_notifications(&PageRequest::first(10)).await.unwrap().items.len(), 1);
    assert_eq!(store.get_ticket(9).await.unwrap().map(|t| t.status), Some("open".into()));
    let replay =
        store.claim("race-key", "h", Term::of(Utc::now(), Duration::seconds(30))).await.unwrap();
    assert_eq!(replay, Claim::Completed { status: 201, body: "{}".into() });
    // A lost lease is still a conflict.
    let lost = IdempotencyCompletion {
        lease: rt_relay_shared::store::Lease { key: "race-key".into(), id: "other".into() },
        status: 201,
        body: "{}".into(),
    };
    assert!(matches!(store.complete_recorded(&t, Some(&lost)).await, Err(StoreError::Conflict(_))));
}
