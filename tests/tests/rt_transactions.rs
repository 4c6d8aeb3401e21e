//! Reading RT's transaction log against the real RT: every catalogue event made in RT is
//! read back in id order with names (not ids) for owner and queue, one transaction is found
//! by id (and a wrong one is not), a reply's text is readable, and paging reports what is
//! left.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is the test failing

use rt_relay_shared::{
    config::RtApi,
    events::classify,
    rt::{
        transactions::{RtTransaction, RtTransactions, TxnPosition},
        transactions_client_from_config,
    },
};
use rt_relay_tests::{
    rt::{password_auth, rt_config, token_auth},
    rt_actions::RtActor,
};
use serde_json::json;
use std::sync::Arc;

/// An event type and, for changes, its field, old and new value.
type EventSeen = (String, Option<(String, String, String)>);

fn reader(api: RtApi) -> Arc<dyn RtTransactions> {
    let auth = match api {
        RtApi::Rest2 => token_auth(),
        RtApi::Rest1 => password_auth(),
    };
    transactions_client_from_config(&rt_config(api, auth)).unwrap_or_else(|e| panic!("reader: {e}"))
}

/// Every transaction after `start` on `ticket`, reading the whole log in pages of 100.
async fn history(rt: &dyn RtTransactions, start: TxnPosition, ticket: u64) -> Vec<RtTransaction> {
    let mut out = Vec::new();
    let mut at = start;
    for _ in 0..200 {
        let page = rt.transactions_after(at, 100).await.unwrap();
        let Some(last) = page.transactions.last() else { break };
        at = TxnPosition { id: last.id, created: last.created };
        assert!(page.transactions.windows(2).all(|w| w[0].id < w[1].id), "id order");
        out.extend(page.transactions.into_iter().filter(|t| t.ticket_id == ticket));
        if page.remaining == 0 {
            break;
        }
    }
    out
}

async fn catalogue_round_trip(api: RtApi) {
    let rt = reader(api);
    let start = rt.latest_transaction().await.unwrap().expect("RT has transactions");
    let actor = RtActor::new();
    let id = actor.create("General", "events adapter test", "first message").await;
    actor.update(id, json!({"Status": "open"})).await;
    actor.update(id, json!({"Owner": "root"})).await;
    actor.update(id, json!({"Queue": "Support"})).await;
    actor.update(id, json!({"Subject": "events adapter test, renamed"})).await;
    actor.update(id, json!({"Priority": 7})).await;
    actor.reply(id, "a reply\n\nwith two lines").await;
    actor.comment(id, "an internal comment").await;

    let txns = history(rt.as_ref(), start, id).await;
    let events: Vec<EventSeen> = txns
        .iter()
        .filter_map(|t| classify(t).map(|e| (t, e)))
        .map(|(t, e)| {
            let change = match e {
                rt_relay_shared::events::TicketEvent::StatusChanged(c)
                | rt_relay_shared::events::TicketEvent::Updated(c) => Some((c.field, c.old, c.new)),
                _ => None,
            };
            (t.kind.clone(), change)
        })
        .collect();
    let ch = |f: &str, o: &str, n: &str| Some((f.to_owned(), o.to_owned(), n.to_owned()));
    assert_eq!(
        events,
        vec![
            ("Create".to_owned(), None),
            ("Status".to_owned(), ch("status", "new", "open")),
            ("Set".to_owned(), ch("owner", "Nobody", "root")),
            ("Set".to_owned(), ch("queue", "General", "Support")),
            (
                "Set".to_owned(),
                ch("subject", "events adapter test", "events adapter test, renamed")
            ),
            ("Set".to_owned(), ch("priority", "0", "7")),
            ("Correspond".to_owned(), None),
            ("Comment".to_owned(), None),
        ],
        "{api:?}"
    );
    assert!(txns.iter().all(|t| t.creator == "root" || t.creator == "RT_System"), "{txns:?}");

    let reply = txns.iter().find(|t| t.kind == "Correspond").unwrap();
    assert_eq!(rt.message_text(reply).await.unwrap().as_deref(), Some("a reply\n\nwith two lines"));
    let found = rt.transaction(id, reply.id).await.unwrap();
    assert_eq!(found.as_ref(), Some(reply));
    assert_eq!(rt.transaction(id + 100_000, reply.id).await.unwrap(), None, "wrong ticket");
    assert_eq!(rt.transaction(id, 999_999_999).await.unwrap(), None, "no such transaction");

    // A small page reports what is left after it.
    let page = rt.transactions_after(start, 2).await.unwrap();
    assert_eq!(page.transactions.len(), 2);
    assert!(page.remaining >= txns.len() as u64 - 2, "remaining {}", page.remaining);
}

#[tokio::test]
async fn rest2_reads_every_catalogue_event_in_order() {
    catalogue_round_trip(RtApi::Rest2).await;
}

#[tokio::test]
async fn rest1_reads_every_catalogue_event_in_order() {
    catalogue_round_trip(RtApi::Rest1).await;
}
