//! The DynamoDB adapter against moto: transactions, paging with filters, idempotency
//! claims, connection paging and the connections' `by-channel` index.

use std::{collections::HashSet, sync::Arc};

use chrono::Utc;
use rt_relay_shared::feed::Position;
use rt_relay_shared::store::{
    dynamodb::DynamoStore, memory::MemoryStore, schema, Claim, Connection, ConnectionOwner,
    ConnectionStore, Creation, FeedMark, FeedSpan, IdempotencyCompletion, IdempotencyStore, Lease,
    PageAfter, PageRequest, Resuming, StoreError, Term, TicketFilter, TicketQuery, TicketStore,
    EVERY_QUEUE,
};
use rt_relay_shared::{
    fanout::MemoryPoster,
    usecases::push::{Fanout, Payload},
};
use rt_relay_tests::{
    bench::DynamoMeter,
    services::{fresh_tables, open_connection, record_sample, sample_notification, sample_ticket},
};

async fn store(tag: &str) -> DynamoStore {
    let (client, tables) = fresh_tables(tag).await;
    DynamoStore::new(client, tables)
}

/// Test `$test` runs `$check` on DynamoDB (tables tagged `$tag`), then on the fake.
macro_rules! in_dynamodb_and_the_fake {
    ($test:ident, $tag:literal, $check:ident) => {
        #[tokio::test]
        async fn $test() {
            $check(&store($tag).await).await;
            $check(&MemoryStore::new()).await;
        }
    };
}

#[tokio::test]
async fn record_created_writes_ticket_and_notification_once() {
    let store = store("record").await;
    let t = sample_ticket(1, "new", "General");
    let n = sample_notification(&t);
    store.record_created(&Creation::new(&t, &n)).await.unwrap();
    assert_eq!(store.get_ticket(1).await.unwrap(), Some(t.clone()));
    let notes = store.list_notifications(&PageRequest::first(10)).await.unwrap();
    assert_eq!(notes.items, vec![n.clone()]);

    // GIVEN the ticket exists WHEN it is recorded again THEN the transaction refuses and
    // no second notification appears.
    let err = store.record_created(&Creation::new(&t, &n)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.list_notifications(&PageRequest::first(10)).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn a_lost_lease_writes_nothing() {
    let store = store("lease").await;
    let Claim::Acquired { lease, .. } =
        store.claim("k1", "h1", Term::of(Utc::now(), chrono::Duration::seconds(30))).await.unwrap()
    else {
        panic!("fresh key must be acquired")
    };
    let stolen = Lease { id: "someone-else".into(), ..lease };
    let t = sample_ticket(5, "new", "General");
    let done = IdempotencyCompletion { lease: stolen, status: 201, body: "{}".into() };
    let err = store
        .record_created(&Creation::new(&t, &sample_notification(&t)).completing(&done))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_ticket(5).await.unwrap(), None, "no half-written ticket");
    assert!(store.list_notifications(&PageRequest::first(5)).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn tickets_page_newest_first_with_filters() {
    let store = store("paging").await;
    // 25 tickets: status alternates new/open, queue General for ids <= 15 else Support.
    for id in 1..=25u64 {
        let status = if id % 2 == 0 { "open" } else { "new" };
        let queue = if id <= 15 { "General" } else { "Support" };
        let t = sample_ticket(id, status, queue);
        store.record_created(&Creation::new(&t, &sample_notification(&t))).await.unwrap();
    }
    let collect = |filter: TicketFilter, limit: u32| {
        let store = &store;
        async move {
            let mut ids = Vec::new();
            let mut pages = 0;
            let mut query = TicketQuery { filter, page: PageRequest::first(limit) };
            loop {
                let got = store.list_tickets(&query).await.unwrap();
                assert!(got.items.len() <= limit as usize);
                pages += 1;
                ids.extend(got.items.iter().map(|t| t.id));
                match got.next_cursor {
                    Some(c) => query.page = PageRequest { limit, cursor: Some(c) },
                    None => break,
                }
                assert!(pages < 100, "paging must end");
            }
            (ids, pages)
        }
    };
    let (all, pages) = collect(TicketFilter::default(), 10).await;
    assert_eq!(all, (1..=25).rev().collect::<Vec<_>>());
    assert_eq!(pages, 3, "10 + 10 + 5, and the look-ahead means no empty 4th page");

    let (open, _) = collect(TicketFilter { status: Some("open".into()), queue: None }, 4).await;
    assert_eq!(open, (1..=25).rev().filter(|i| i % 2 == 0).collect::<Vec<_>>());

    let (support, _) =
        collect(TicketFilter { status: None, queue: Some("Support".into()) }, 3).await;
    assert_eq!(support, (16..=25).rev().collect::<Vec<_>>());

    let (both, _) =
        collect(TicketFilter { status: Some("new".into()), queue: Some("Support".into()) }, 2)
            .await;
    assert_eq!(both, vec![25, 23, 21, 19, 17]);

    // A page that ends exactly at the last item has no cursor.
    let exact = store.list_tickets(&TicketQuery::first(25)).await.unwrap();
    assert_eq!(exact.items.len(), 25);
    assert_eq!(exact.next_cursor, None);
}

#[tokio::test]
async fn a_cursor_only_works_for_its_own_query() {
    let store = store("cursor").await;
    for id in 1..=3u64 {
        record_sample(&store, id).await;
    }
    let first = store.list_tickets(&TicketQuery::first(1)).await.unwrap();
    let cursor = first.next_cursor.expect("more pages");
    let other = TicketFilter { status: Some("new".into()), queue: None };
    let page = PageRequest { limit: 1, cursor: Some(cursor) };
    let err = store.list_tickets(&TicketQuery { filter: other, page }).await.unwrap_err();
    assert!(matches!(err, StoreError::BadCursor(_)), "{err:?}");
    let page = PageRequest { limit: 1, cursor: Some("bm9wZQ".into()) };
    let err = store
        .list_tickets(&TicketQuery { filter: TicketFilter::default(), page })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BadCursor(_)), "{err:?}");
}

#[tokio::test]
async fn notifications_page_newest_first() {
    let store = store("notes").await;
    for id in 1..=7u64 {
        record_sample(&store, id).await;
    }
    let mut page = PageRequest::first(3);
    let mut seen = Vec::new();
    loop {
        let got = store.list_notifications(&page).await.unwrap();
        seen.extend(got.items.iter().map(|n| n.ticket.id));
        match got.next_cursor {
            Some(c) => page = PageRequest { limit: 3, cursor: Some(c) },
            None => break,
        }
    }
    assert_eq!(seen, (1..=7).rev().collect::<Vec<_>>());
}

/// GIVEN notifications 1..=7 WHEN read after the 2nd, up to the 6th's time, 2 per page THEN
/// 3..=6 oldest first; an unknown id has no position; a cursor of the newest-first list is
/// refused here.
#[allow(clippy::unwrap_used)] // a helper of tests: a failure is the test failing
async fn reading_after_a_position(store: &dyn TicketStore) {
    let mut notes = Vec::new();
    for id in 1..=7u64 {
        let t = sample_ticket(id, "new", "General");
        let n = sample_notification(&t);
        store.record_created(&Creation::new(&t, &n)).await.unwrap();
        notes.push(n);
    }
    let after = store.notification_position(&notes[1].id).await.unwrap().unwrap();
    assert_eq!(after, Position::of(&notes[1]));
    assert_eq!(store.notification_position("ticket-99-created").await.unwrap(), None);
    let until = notes[5].created_at.timestamp_millis();
    let span = FeedSpan { after, until_millis: until };
    let mut page = PageRequest::first(2);
    let mut seen = Vec::new();
    loop {
        let got = store.list_notifications_after(&span, &page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items.iter().map(|n| n.ticket.id));
        match got.next_cursor {
            Some(c) => page = PageRequest { limit: 2, cursor: Some(c) },
            None => break,
        }
    }
    assert_eq!(seen, [3, 4, 5, 6]);
    let newest = store.newest_position_until(until).await.unwrap();
    assert_eq!(newest, Some(Position::of(&notes[5])), "the newest at or before a time");
    let before_all = notes[0].created_at.timestamp_millis() - 1;
    assert_eq!(store.newest_position_until(before_all).await.unwrap(), None);
    let newest_first = store.list_notifications(&PageRequest::first(2)).await.unwrap();
    let foreign = PageRequest { limit: 2, cursor: newest_first.next_cursor };
    let err = store.list_notifications_after(&span, &foreign).await.unwrap_err();
    assert!(matches!(err, StoreError::BadCursor(_)), "{err:?}");
}

in_dynamodb_and_the_fake!(
    notifications_after_a_position_oldest_first_in_dynamodb_and_the_fake,
    "since",
    reading_after_a_position
);

#[tokio::test]
async fn a_page_reads_its_size_plus_one_look_ahead_and_is_counted() {
    let (client, tables) = fresh_tables("metrics").await;
    let meter = DynamoMeter::default();
    let store = DynamoStore::new(meter.meter(&client), tables);
    for id in 1..=9u64 {
        record_sample(&store, id).await;
    }
    // GIVEN 9 items WHEN pages of 3 are read THEN each Query reads 3 + 1 items (the
    // look-ahead), not the partition, and the meter on the store's client counts what DynamoDB reported.
    let before = meter.metrics();
    let first = store.list_tickets(&TicketQuery::first(3)).await.unwrap();
    let one = meter.metrics().since(&before);
    assert_eq!((one.queries, one.items_scanned), (1, 4));
    assert!(one.read_capacity_units > 0.0, "ConsumedCapacity is asked for: {one:?}");
    assert!(one.db_nanos > 0);

    let before = meter.metrics();
    let deep = PageRequest { limit: 3, cursor: first.next_cursor };
    store.list_tickets(&TicketQuery { filter: TicketFilter::default(), page: deep }).await.unwrap();
    let notes = store.list_notifications(&PageRequest::first(3)).await.unwrap();
    assert_eq!(notes.items.len(), 3);
    let two = meter.metrics().since(&before);
    assert_eq!((two.queries, two.items_scanned), (2, 8));
    assert!(two.db_nanos > 0);
}

#[tokio::test]
async fn idempotency_claims() {
    let store = store("idem").await;
    let now = Utc::now();
    let lease_for = chrono::Duration::seconds(30);
    let Claim::Acquired { lease, rt_ticket_id: None, previous_attempt: None } =
        store.claim("k", "h", Term::of(now, lease_for)).await.unwrap()
    else {
        panic!("first claim acquires")
    };
    assert_eq!(store.claim("k", "h", Term::of(now, lease_for)).await.unwrap(), Claim::InProgress);
    assert_eq!(store.claim("k", "other", Term::of(now, lease_for)).await.unwrap(), Claim::Mismatch);

    // WHEN the holder noted an RT ticket and its lease ran out THEN a later claim takes
    // over and learns the RT ticket id instead of creating another.
    store.note_rt_ticket(&lease, 77).await.unwrap();
    let later = now + chrono::Duration::seconds(31);
    let Claim::Acquired { lease: taken, rt_ticket_id, previous_attempt } =
        store.claim("k", "h", Term::of(later, lease_for)).await.unwrap()
    else {
        panic!("expired lease is taken over")
    };
    assert_eq!(rt_ticket_id, Some(77));
    assert!(previous_attempt.is_some(), "a takeover says when the first attempt began");
    assert!(
        matches!(store.note_rt_ticket(&lease, 78).await, Err(StoreError::Conflict(_))),
        "old holder lost it"
    );

    let t = sample_ticket(77, "new", "General");
    let done = IdempotencyCompletion { lease: taken, status: 201, body: r#"{"id":77}"#.into() };
    store
        .record_created(&Creation::new(&t, &sample_notification(&t)).completing(&done))
        .await
        .unwrap();
    assert_eq!(
        store.claim("k", "h", Term::of(later, lease_for)).await.unwrap(),
        Claim::Completed { status: 201, body: r#"{"id":77}"#.into() }
    );

    // An abandoned attempt (outcome unknown) is taken over at once, and says when it began.
    let Claim::Acquired { lease: l3, .. } =
        store.claim("k3", "h", Term::of(now, lease_for)).await.unwrap()
    else {
        panic!()
    };
    store.abandon(&l3, now).await.unwrap();
    let Claim::Acquired { rt_ticket_id: None, previous_attempt: Some(began), .. } =
        store.claim("k3", "h", Term::of(now, lease_for)).await.unwrap()
    else {
        panic!("an abandoned key is taken over")
    };
    assert_eq!(began.timestamp(), now.timestamp());

    // A released key starts afresh.
    let Claim::Acquired { lease: l2, .. } =
        store.claim("k2", "h", Term::of(now, lease_for)).await.unwrap()
    else {
        panic!()
    };
    store.release(&l2).await.unwrap();
    assert!(matches!(
        store.claim("k2", "h", Term::of(now, lease_for)).await.unwrap(),
        Claim::Acquired { rt_ticket_id: None, .. }
    ));
}

#[tokio::test]
async fn connections_are_read_page_by_page() {
    let store = store("conns").await;
    for i in 0..7 {
        store.add(&open_connection(&format!("c{i}"))).await.unwrap();
    }
    let mut seen = HashSet::new();
    let mut page = PageAfter::first(3);
    let mut pages = 0;
    loop {
        let (ids, next) = store.page(&page).await.unwrap();
        assert!(ids.len() <= 3);
        pages += 1;
        seen.extend(ids);
        match next {
            Some(n) => page.after = Some(n),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(seen.len(), 7);
    assert!(pages >= 3);
    store.remove("c3").await.unwrap();
    store.remove("never-existed").await.unwrap();
    let (ids, _) = store.page(&PageAfter::first(100)).await.unwrap();
    assert_eq!(ids.len(), 6);
}

/// The resume protocol's conditional writes, the same in DynamoDB and the fake: holding
/// only while replaying, taking the held set, going live only with nothing held.
#[allow(clippy::unwrap_used)] // a helper of tests: a failure is the test failing
async fn resume_marks(store: &dyn ConnectionStore) {
    let now = Utc::now();
    let c = Connection { id: "r1".into(), connected_at: now, expires_at: now };
    let owner = ConnectionOwner { key_id: "k1".into(), queues: r#"["A"]"#.into() };
    store
        .add_resuming(
            &c,
            Resuming { owner: Some(&owner), since: "n-1", replay_from: Some("1700000000000#n-1") },
        )
        .await
        .unwrap();
    let record = store.resume_record("r1").await.unwrap().expect("a resume record");
    assert_eq!(
        (record.since.as_str(), record.replay_from.as_deref(), &record.mark),
        ("n-1", Some("1700000000000#n-1"), &FeedMark::Replaying)
    );
    assert_eq!(record.queues.as_deref(), Some(r#"["A"]"#));
    let (recipients, _) = store.recipients(&PageAfter::first(10)).await.unwrap();
    assert_eq!(recipients[0].mark, FeedMark::Replaying);
    assert!(store.hold("r1", &["1700000000005#n-5".into()]).await.unwrap());
    assert!(store.hold("r1", &["1700000000006#n-6".into()]).await.unwrap());
    // Not live while something is held.
    assert!(!store.go_live("r1", Some("1700000000003#~")).await.unwrap());
    let mut held = store.take_held("r1").await.unwrap();
    held.sort();
    assert_eq!(held, ["1700000000005#n-5", "1700000000006#n-6"]);
    assert!(store.take_held("r1").await.unwrap().is_empty());
    assert!(store.go_live("r1", Some("1700000000003#~")).await.unwrap());
    // Live now: nothing more is held, and the push sees the bound.
    assert!(!store.hold("r1", &["1700000000007#n-7".into()]).await.unwrap());
    let (recipients, _) = store.recipients(&PageAfter::first(10)).await.unwrap();
    assert_eq!(recipients[0].mark, FeedMark::LiveAfter("1700000000003#~".into()));
    assert!(!store.hold("nobody", &["1700000000007#n-7".into()]).await.unwrap());
    assert!(store.resume_record("nobody").await.unwrap().is_none());
}

/// A connection's subscription, the same in DynamoDB and the fake: stored, read by the push
/// and the resume, replaced, cleared; refused for a connection that is not recorded.
#[allow(clippy::unwrap_used)] // a helper of tests: a failure is the test failing
async fn subscriptions(store: &dyn ConnectionStore) {
    let now = Utc::now();
    let c = Connection { id: "s1".into(), connected_at: now, expires_at: now };
    store
        .add_resuming(&c, Resuming { owner: None, since: "n-1", replay_from: None })
        .await
        .unwrap();
    let filter = r#"{"queue":["A"],"type":[],"ticket":[]}"#;
    assert!(store.subscribe("s1", Some(filter)).await.unwrap());
    let (recipients, _) = store.recipients(&PageAfter::first(10)).await.unwrap();
    assert_eq!(recipients[0].filter.as_deref(), Some(filter));
    let record = store.resume_record("s1").await.unwrap().expect("a resume record");
    assert_eq!(record.filter.as_deref(), Some(filter));
    assert!(store.subscribe("s1", Some(r#"{"ticket":[7]}"#)).await.unwrap());
    let (recipients, _) = store.recipients(&PageAfter::first(10)).await.unwrap();
    assert_eq!(recipients[0].filter.as_deref(), Some(r#"{"ticket":[7]}"#));
    assert!(store.subscribe("s1", None).await.unwrap());
    let (recipients, _) = store.recipients(&PageAfter::first(10)).await.unwrap();
    assert_eq!(recipients[0].filter, None);
    assert!(!store.subscribe("nobody", Some(filter)).await.unwrap());
    let (ids, _) = store.page(&PageAfter::first(10)).await.unwrap();
    assert_eq!(ids, ["s1"], "subscribing to a missing connection records nothing");
}

in_dynamodb_and_the_fake!(subscriptions_in_dynamodb_and_the_fake, "subs", subscriptions);
in_dynamodb_and_the_fake!(resume_marks_in_dynamodb_and_the_fake, "resume", resume_marks);

/// The connections on `channel`, read through the index in pages of 2, sorted.
#[allow(clippy::unwrap_used)] // a helper of tests: a failure is the test failing
async fn on(store: &dyn ConnectionStore, channel: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page = PageAfter::first(2);
    for _ in 0..20 {
        let (recipients, next) = store.audience(channel, &page).await.unwrap();
        ids.extend(recipients.into_iter().map(|r| r.id));
        match next {
            Some(n) => page.after = Some(n),
            None => {
                ids.sort();
                return ids;
            }
        }
    }
    panic!("the {channel} channel did not end in 20 pages")
}

/// Connection `id`'s resume mark as the index shows it on `channel`.
#[allow(clippy::unwrap_used)] // a helper of tests: a failure is the test failing
async fn mark_on(store: &dyn ConnectionStore, channel: &str, id: &str) -> Option<FeedMark> {
    let (page, _) = store.audience(channel, &PageAfter::first(10)).await.unwrap();
    page.into_iter().find(|r| r.id == id).map(|r| r.mark)
}

/// The `by-channel` index, the same in DynamoDB and the fake: a connection is found on
/// exactly the channels it may see (its key's queues narrowed by its filter, or the
/// every-queue channel), a subscription moves it, going live changes what the index
/// shows, and removing it leaves it on none.
#[allow(clippy::unwrap_used)] // a helper of tests: a failure is the test failing
async fn channel_index(store: &dyn ConnectionStore) {
    let owner = |queues: &str| ConnectionOwner { key_id: "k".into(), queues: queues.into() };
    store.add_owned(&open_connection("a"), &owner(r#"["A"]"#)).await.unwrap();
    store.add_owned(&open_connection("ab"), &owner(r#"["A","B"]"#)).await.unwrap();
    store.add_owned(&open_connection("all"), &owner(r#"["*"]"#)).await.unwrap();
    store.add(&open_connection("legacy")).await.unwrap();
    let resuming = open_connection("r");
    store
        .add_resuming(
            &resuming,
            Resuming { owner: Some(&owner(r#"["B"]"#)), since: "n-1", replay_from: None },
        )
        .await
        .unwrap();

    assert_eq!(on(store, "A").await, ["a", "ab"]);
    assert_eq!(on(store, "B").await, ["ab", "r"]);
    assert_eq!(on(store, EVERY_QUEUE).await, ["all", "legacy"]);
    assert!(on(store, "C").await.is_empty());
    assert_eq!(mark_on(store, "B", "r").await, Some(FeedMark::Replaying));
    assert!(store.go_live("r", Some("1700000000003#~")).await.unwrap());
    let live = FeedMark::LiveAfter("1700000000003#~".into());
    assert_eq!(mark_on(store, "B", "r").await, Some(live));

    // A queue filter moves a connection: onto the queues asked for that its key may read.
    assert!(store.subscribe("all", Some(r#"{"queue":["C"]}"#)).await.unwrap());
    assert!(store
        .subscribe("ab", Some(r#"{"queue":["B","Z"],"type":["ticket.created"]}"#))
        .await
        .unwrap());
    assert_eq!(on(store, EVERY_QUEUE).await, ["legacy"]);
    assert_eq!(on(store, "C").await, ["all"]);
    assert_eq!(on(store, "A").await, ["a"]);
    assert_eq!(on(store, "B").await, ["ab", "r"]);
    assert!(on(store, "Z").await.is_empty(), "its key may not read Z");
    let (page, _) = store.audience("B", &PageAfter::first(10)).await.unwrap();
    let ab = page.iter().find(|r| r.id == "ab").expect("ab on B");
    assert_eq!(ab.filter.as_deref(), Some(r#"{"queue":["B","Z"],"type":["ticket.created"]}"#));
    assert_eq!(ab.queues.as_deref(), Some(r#"["A","B"]"#));
    // A filter without queues puts it back on every queue it may read.
    assert!(store.subscribe("all", Some(r#"{"type":["ticket.replied"]}"#)).await.unwrap());
    assert!(store.subscribe("ab", None).await.unwrap());
    assert_eq!(on(store, EVERY_QUEUE).await, ["all", "legacy"]);
    assert!(on(store, "C").await.is_empty());
    assert_eq!(on(store, "A").await, ["a", "ab"]);

    for id in ["a", "ab", "all", "legacy", "r"] {
        store.remove(id).await.unwrap();
    }
    for channel in [EVERY_QUEUE, "A", "B", "C", "Z"] {
        assert!(on(store, channel).await.is_empty(), "{channel} is empty");
    }
    assert!(store.page(&PageAfter::first(10)).await.unwrap().0.is_empty());
}

#[tokio::test]
async fn the_channel_index_in_dynamodb_and_the_fake() {
    let (client, tables) = fresh_tables("channels").await;
    channel_index(&DynamoStore::new(client.clone(), tables.clone())).await;
    channel_index(&MemoryStore::new()).await;
    // Nothing is left behind in the table: no base item, no channel item.
    let out =
        client.scan().table_name(&tables.connections).consistent_read(true).send().await.unwrap();
    assert_eq!(out.count, 0, "{:?}", out.items);
}

#[tokio::test]
async fn a_connection_s_items_are_written_and_removed_together() {
    let (client, tables) = fresh_tables("channel-items").await;
    let store = DynamoStore::new(client.clone(), tables.clone());
    let owner = ConnectionOwner { key_id: "k".into(), queues: r#"["A","B","C"]"#.into() };
    store.add_owned(&open_connection("c1"), &owner).await.unwrap();
    let keys = || async {
        let out = client
            .scan()
            .table_name(&tables.connections)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = out
            .items()
            .iter()
            .filter_map(|i| i.get("connection_id").and_then(|v| v.as_s().ok()).cloned())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys().await, ["c1", "c1#q#A", "c1#q#B", "c1#q#C"]);
    // Every item carries the TTL.
    let out = client.scan().table_name(&tables.connections).send().await.unwrap();
    assert!(out.items().iter().all(|i| i.contains_key("expires_at")));
    assert!(store.subscribe("c1", Some(r#"{"queue":["C","D"]}"#)).await.unwrap());
    assert_eq!(keys().await, ["c1", "c1#q#C"]);
    // The whole-table read and the per-key index see the connection once.
    assert_eq!(store.page(&PageAfter::first(10)).await.unwrap().0, ["c1"]);
    assert_eq!(store.ids_for_key("k").await.unwrap(), ["c1"]);
    store.remove("c1").await.unwrap();
    assert!(keys().await.is_empty());
}

fn note_in(queue: &str, id: u64) -> Payload {
    let n = sample_notification(&sample_ticket(id, "new", queue));
    serde_json::to_vec(&n).expect("a notification is JSON").into()
}

#[tokio::test]
async fn a_batch_for_a_queue_nobody_watches_reads_no_connection_and_posts_nothing() {
    let (client, tables) = fresh_tables("unwatched").await;
    let meter = DynamoMeter::default();
    let store = Arc::new(DynamoStore::new(meter.meter(&client), tables));
    for id in ["w1", "w2", "w3"] {
        let owner = ConnectionOwner { key_id: "k".into(), queues: r#"["A"]"#.into() };
        store.add_owned(&open_connection(id), &owner).await.unwrap();
    }
    let poster = Arc::new(MemoryPoster::new());
    let fanout = Fanout::new(store.clone(), poster.clone());

    // GIVEN three connections that may see queue A only WHEN a batch for queue B is pushed
    let before = meter.metrics();
    let outcome = fanout.push_batch(vec![note_in("B", 1), note_in("B", 2)]).await.unwrap();
    let cost = meter.metrics().since(&before);
    // THEN two Queries (B and the every-queue channel) read no item and nothing is posted
    assert_eq!((cost.queries, cost.items_scanned), (2, 0), "{cost:?}");
    assert_eq!(outcome.stats.delivered, 0);
    assert!(["w1", "w2", "w3"].iter().all(|id| poster.received(id).is_empty()));

    // WHEN a batch for queue A is pushed THEN the same two Queries read the three watchers,
    // and each gets both notifications
    let before = meter.metrics();
    let outcome = fanout.push_batch(vec![note_in("A", 3), note_in("A", 4)]).await.unwrap();
    let cost = meter.metrics().since(&before);
    assert_eq!((cost.queries, cost.items_scanned), (2, 3), "{cost:?}");
    assert_eq!(outcome.stats.delivered, 6);
    assert!(["w1", "w2", "w3"].iter().all(|id| poster.received(id).len() == 2));
}

#[tokio::test]
async fn a_connections_table_from_before_the_index_gets_it() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let (client, tables) = fresh_tables("index-upgrade").await;
    // GIVEN the connections table as it was before `by-channel` (no index at all)
    client.delete_table().table_name(&tables.connections).send().await.unwrap();
    client
        .create_table()
        .table_name(&tables.connections)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("connection_id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("connection_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let store = DynamoStore::new(client.clone(), tables.clone());
    assert!(
        store.audience(EVERY_QUEUE, &PageAfter::first(10)).await.is_err(),
        "no index to query yet"
    );
    // WHEN the tables are created again THEN the missing indexes are added
    schema::create_tables(&client, &tables).await.unwrap();
    store.add(&open_connection("u1")).await.unwrap();
    assert_eq!(on(&store, EVERY_QUEUE).await, ["u1"]);
    assert_eq!(store.count_for_key("k").await.unwrap(), 0, "by-key is there too");
}
