//! The push function fed real batches read from moto's DynamoDB stream, posting through
//! the real AWS SDK client to a local `@connections` server.

use std::{sync::Arc, time::Duration};

use rt_relay_shared::{
    fanout::ApiGatewayPoster,
    handlers::push::PushNotifications,
    model::Notification,
    store::{dynamodb::DynamoStore, ConnectionStore, Creation, PageAfter, TicketStore},
    usecases::push::Fanout,
};
use rt_relay_tests::{
    connections_server::ConnectionsServer,
    services::{
        fresh_tables, open_connection, read_notification_stream, sample_notification, sample_ticket,
    },
};

async fn connect(store: &DynamoStore, id: &str) {
    store.add(&open_connection(id)).await.expect("connection recorded");
}

#[tokio::test]
async fn a_real_stream_batch_reaches_every_live_connection() {
    let (client, tables) = fresh_tables("push").await;
    let store = Arc::new(DynamoStore::new(client.clone(), tables.clone()));
    let mut notes: Vec<Notification> = Vec::new();
    for id in 1..=3 {
        let t = sample_ticket(id, "new", "General");
        let n = sample_notification(&t);
        store.record_created(&Creation::new(&t, &n)).await.unwrap();
        notes.push(n);
    }
    for id in ["live-1", "live-2", "live-3", "live-4", "live-5", "gone-1", "gone-2"] {
        connect(&store, id).await;
    }
    let server = ConnectionsServer::start().await;
    let poster = Arc::new(ApiGatewayPoster::new(
        &rt_relay_shared::wiring::sdk_config().expect("AWS SDK configuration"),
        &server.url,
        Duration::from_secs(5),
    ));
    // Page size 2 forces four connection pages per record.
    let push = PushNotifications::from(
        Fanout::new(store.clone(), poster).with_concurrency(3).with_page_size(2),
    );

    let event = read_notification_stream(&client, &tables).await;
    assert_eq!(event.records.len(), 3, "one INSERT per notification");
    let resp = push.handle(event.clone()).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");

    for live in ["live-1", "live-2", "live-3", "live-4", "live-5"] {
        let got: Vec<Notification> = server
            .received(live)
            .iter()
            .map(|m| serde_json::from_str(m).expect("notification JSON"))
            .collect();
        assert_eq!(got, notes, "{live} receives every notification, in order, with its id");
    }
    let (left, _) = store.page(&PageAfter::first(100)).await.unwrap();
    let mut left = left;
    left.sort();
    assert_eq!(
        left,
        ["live-1", "live-2", "live-3", "live-4", "live-5"],
        "410 Gone deleted exactly those"
    );

    // GIVEN one connection fails WHEN the batch runs THEN its record and the later ones are
    // reported (Lambda retries from the lowest) and nothing is deleted.
    connect(&store, "flaky").await;
    server.set_failing("flaky", true);
    let resp = push.handle(event.clone()).await;
    let failed: Vec<String> =
        resp.batch_item_failures.iter().filter_map(|f| f.item_identifier.clone()).collect();
    let seqs: Vec<String> =
        event.records.iter().filter_map(|r| r.change.sequence_number.clone()).collect();
    assert_eq!(failed, seqs);
    assert_eq!(store.page(&PageAfter::first(100)).await.unwrap().0.len(), 6);

    // WHEN the connection recovers THEN the retried batch succeeds.
    server.set_failing("flaky", false);
    let resp = push.handle(event).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(server.received("flaky").len(), 3);
}
