//! Tenant safety (issue 14) against the real services: what one API key may see and do,
//! and what it cannot do to another's data.

use chrono::{Duration, Utc};
use rt_relay_shared::store::{
    dynamodb::DynamoStore, Connection, ConnectionOwner, ConnectionStore, Recipient,
};
use rt_relay_tests::services::{delete_tables, fresh_tables};

/// Connections record the key they were admitted with: the `by-key` index counts and lists
/// one key's connections, and the push reads each connection's queue rights.
#[tokio::test]
async fn connections_record_their_api_key_and_are_found_by_it() {
    let (client, tables) = fresh_tables("tenancy-conn").await;
    let store = DynamoStore::new(client.clone(), tables.clone());
    let now = Utc::now();
    let conn = |id: &str| Connection {
        id: id.to_owned(),
        connected_at: now,
        expires_at: now + Duration::hours(3),
    };
    let owner = |key: &str, queues: &str| ConnectionOwner {
        key_id: key.to_owned(),
        queues: queues.to_owned(),
    };
    store.add_owned(&conn("a1"), &owner("aaaa", r#"["A"]"#)).await.unwrap();
    store.add_owned(&conn("a2"), &owner("aaaa", r#"["A"]"#)).await.unwrap();
    store.add_owned(&conn("b1"), &owner("bbbb", r#"["*"]"#)).await.unwrap();
    store.add(&conn("legacy")).await.unwrap();

    assert_eq!(store.count_for_key("aaaa").await.unwrap(), 2);
    let mut ids = store.ids_for_key("aaaa").await.unwrap();
    ids.sort();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(store.count_for_key("cccc").await.unwrap(), 0);

    let mut all = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = store.recipients(after.as_deref(), 2).await.unwrap();
        all.extend(page);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    all.sort_by(|x, y| x.id.cmp(&y.id));
    let expected = [
        Recipient { id: "a1".into(), queues: Some(r#"["A"]"#.into()) },
        Recipient { id: "a2".into(), queues: Some(r#"["A"]"#.into()) },
        Recipient { id: "b1".into(), queues: Some(r#"["*"]"#.into()) },
        Recipient { id: "legacy".into(), queues: None },
    ];
    assert_eq!(all, expected);

    store.remove("a1").await.unwrap();
    assert_eq!(store.ids_for_key("aaaa").await.unwrap(), ["a2"]);
    delete_tables(&client, &tables).await;
}
