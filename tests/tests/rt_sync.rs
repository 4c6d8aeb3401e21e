//! The sync use case over the real RT and moto: changes made in RT become ticket records and
//! notifications; two concurrent runs double nothing; a run killed mid-way loses nothing
//! (the next run, once the killed run's lease has ended, finishes its page); RT unreachable
//! leaves the cursor where it was and the next run catches up.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is the test failing

use std::{collections::HashSet, sync::Arc, time::Duration};

use rt_relay_shared::{
    config::{RtApi, RtConfig},
    events::{
        dynamodb::DynamoEvents,
        ingest::Ingest,
        store::SyncCursorStore,
        sync::{Sync, SyncError, SyncOutcome, SyncSettings},
    },
    rt::{transactions::RtTransactions, transactions_client_from_config},
    store::{dynamodb::DynamoStore, PageRequest, TicketFilter, TicketQuery, TicketStore},
};
use rt_relay_tests::{
    rt::{config_at, rt_config, token_auth},
    rt_actions::RtActor,
    services::fresh_tables,
    stack::wait_for,
};
use serde_json::json;

struct Fixture {
    events: Arc<DynamoEvents>,
    store: DynamoStore,
}

impl Fixture {
    async fn new(tag: &str) -> Self {
        let (client, tables) = fresh_tables(tag).await;
        Self {
            events: Arc::new(DynamoEvents::new(client.clone(), tables.clone())),
            store: DynamoStore::new(client, tables),
        }
    }

    fn sync_with(&self, config: &RtConfig, settings: SyncSettings) -> Sync {
        let rt: Arc<dyn RtTransactions> = transactions_client_from_config(config).unwrap();
        Sync::new(rt.clone(), Ingest::new(rt, self.events.clone()), self.events.clone(), settings)
    }

    fn sync(&self, api: RtApi, settings: SyncSettings) -> Sync {
        self.sync_with(&rt_config(api, token_auth_for(api)), settings)
    }

    /// Ids of every stored notification.
    async fn notification_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut page = PageRequest::first(100);
        loop {
            let got = self.store.list_notifications(&page).await.unwrap();
            ids.extend(got.items.into_iter().map(|n| n.id));
            match got.next_cursor {
                Some(c) => page = PageRequest::parse(Some("100"), Some(&c)).unwrap(),
                None => return ids,
            }
        }
    }
}

fn token_auth_for(api: RtApi) -> rt_relay_shared::config::RtAuth {
    match api {
        RtApi::Rest2 => token_auth(),
        RtApi::Rest1 => rt_relay_tests::rt::password_auth(),
    }
}

fn settings(page_size: u32) -> SyncSettings {
    SyncSettings {
        page_size,
        max_pages: 1000,
        budget: Duration::from_secs(60),
        lease: Duration::from_secs(120),
    }
}

/// Creates `n` tickets in RT itself; returns their ids.
async fn create_in_rt(n: usize, tag: &str) -> Vec<u64> {
    let actor = RtActor::new();
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(actor.create("General", &format!("{tag} {i}"), "made in RT").await);
    }
    ids
}

fn created_ids(tickets: &[u64]) -> HashSet<String> {
    tickets.iter().map(|id| format!("ticket-{id}-created")).collect()
}

async fn changes_made_in_rt_become_records_and_notifications(api: RtApi) {
    let f = Fixture::new("sync-basic").await;
    let sync = f.sync(api, settings(50));
    assert_eq!(sync.run().await.unwrap().outcome, SyncOutcome::Started);
    let actor = RtActor::new();
    let id = actor.create("General", "sync basic", "first message from RT").await;
    actor.update(id, json!({"Status": "open", "Owner": "root"})).await;
    actor.reply(id, "reply from RT").await;
    // Other tests share this RT: run until our four events are in.
    let wanted = 4;
    let mine = wait_for("the sync to record the ticket's events", Duration::from_secs(60), || {
        let (sync, store) = (&sync, &f.store);
        async move {
            sync.run().await.unwrap();
            let page = store.list_notifications(&PageRequest::first(100)).await.unwrap();
            let mine: Vec<_> = page.items.into_iter().filter(|n| n.ticket.id == id).collect();
            (mine.len() >= wanted).then_some(mine)
        }
    })
    .await;
    let mut kinds: Vec<&str> = mine.iter().map(|n| n.kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        vec!["ticket.created", "ticket.replied", "ticket.status_changed", "ticket.updated"]
    );
    let reply = mine.iter().find(|n| n.kind == "ticket.replied").unwrap();
    assert_eq!(reply.excerpt.as_deref(), Some("reply from RT"));
    assert_eq!(reply.ticket.owner.as_deref(), Some("root"));
    let stored = f.store.get_ticket(id).await.unwrap().expect("mirrored");
    assert_eq!(
        (stored.status.as_str(), stored.description.as_str()),
        ("open", "first message from RT")
    );
    let open = f
        .store
        .list_tickets(&TicketQuery {
            filter: TicketFilter { status: Some("open".into()), queue: None },
            page: PageRequest::first(100),
        })
        .await
        .unwrap();
    assert!(open.items.iter().any(|t| t.id == id), "the status filter shows RT's state");
}

#[tokio::test]
async fn rest2_changes_made_in_rt_become_records_and_notifications() {
    changes_made_in_rt_become_records_and_notifications(RtApi::Rest2).await;
}

#[tokio::test]
async fn concurrent_runs_double_nothing() {
    let f = Fixture::new("sync-concurrent").await;
    let syncs: Vec<Sync> = (0..3).map(|_| f.sync(RtApi::Rest2, settings(20))).collect();
    syncs[0].run().await.unwrap();
    let tickets = create_in_rt(8, "sync concurrent").await;
    let want = created_ids(&tickets);
    let duplicates = std::sync::atomic::AtomicUsize::new(0);
    wait_for("three concurrent syncs to record 8 tickets", Duration::from_secs(90), || {
        let (syncs, f, want) = (&syncs, &f, &want);
        let dup = &duplicates;
        async move {
            let (a, b, c) = tokio::join!(syncs[0].run(), syncs[1].run(), syncs[2].run());
            for report in [a, b, c] {
                dup.fetch_add(
                    report.unwrap().ingest.duplicates,
                    std::sync::atomic::Ordering::SeqCst,
                );
            }
            let ids: HashSet<String> = f.notification_ids().await.into_iter().collect();
            want.is_subset(&ids).then_some(())
        }
    })
    .await;
    assert_eq!(
        duplicates.into_inner(),
        0,
        "a claimed cursor is never read twice, so nothing is re-applied"
    );
}

#[tokio::test]
async fn a_run_killed_mid_way_loses_nothing_and_the_next_run_finishes() {
    let f = Fixture::new("sync-killed").await;
    let short = SyncSettings {
        lease: Duration::from_secs(3),
        budget: Duration::from_secs(2),
        ..settings(2)
    };
    let sync = Arc::new(f.sync(RtApi::Rest2, short));
    sync.run().await.unwrap();
    let tickets = create_in_rt(6, "sync killed").await;
    let want = created_ids(&tickets);
    // Kill the run as soon as it has stored its first notification of ours.
    let running = tokio::spawn({
        let sync = sync.clone();
        async move { sync.run().await }
    });
    wait_for("the run to store a first notification", Duration::from_secs(60), || {
        let (f, want) = (&f, &want);
        async move {
            let ids: HashSet<String> = f.notification_ids().await.into_iter().collect();
            (!ids.is_disjoint(want)).then_some(())
        }
    })
    .await;
    running.abort();
    let _ = running.await;
    let stored_when_killed = f.notification_ids().await.len();
    // The killed run still holds its lease: later runs are Busy until it ends, then finish.
    wait_for("a later run to take over and finish", Duration::from_secs(90), || {
        let (sync, f, want) = (&sync, &f, &want);
        async move {
            let report = sync.run().await.unwrap();
            if report.outcome == SyncOutcome::Busy {
                return None;
            }
            let ids: HashSet<String> = f.notification_ids().await.into_iter().collect();
            want.is_subset(&ids).then_some(())
        }
    })
    .await;
    let ids = f.notification_ids().await;
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no notification stored twice");
    assert!(ids.len() >= stored_when_killed);
}

#[tokio::test]
async fn rt_unreachable_leaves_the_cursor_and_the_next_run_catches_up() {
    let f = Fixture::new("sync-unreachable").await;
    let good = f.sync(RtApi::Rest2, settings(50));
    good.run().await.unwrap();
    let before = f.events.position().await.unwrap();
    let tickets = create_in_rt(2, "sync unreachable").await;
    let down = config_at(RtApi::Rest2, token_auth(), "http://127.0.0.1:9/", Duration::from_secs(2));
    let broken = f.sync_with(&down, settings(50));
    match broken.run().await {
        Err(SyncError::Rt(_)) => {}
        other => panic!("a sync without RT must fail with an RT error, got {other:?}"),
    }
    assert_eq!(f.events.position().await.unwrap(), before, "the cursor did not move");
    let want = created_ids(&tickets);
    assert!(f.notification_ids().await.iter().all(|id| !want.contains(id)));
    wait_for("the next run to catch up", Duration::from_secs(60), || {
        let (good, f, want) = (&good, &f, &want);
        async move {
            good.run().await.unwrap();
            let ids: HashSet<String> = f.notification_ids().await.into_iter().collect();
            want.is_subset(&ids).then_some(())
        }
    })
    .await;
}
