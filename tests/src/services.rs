//! Access to the real services the test command starts (RT, moto): environment checks,
//! DynamoDB clients and fresh, uniquely named tables per test.

use rt_relay_gateway::{
    config::StreamSettings,
    stream::{Position, StreamsClient},
};
use rt_relay_shared::{
    config::Tables,
    model::{Notification, Ticket},
    store::{dynamodb::client_from_env, schema, Connection, Creation, TicketStore},
};

/// Reads a variable the test command exports, or stops the test saying how to run it.
pub fn require_env(name: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!("{name} is not set: run the tests with `make test` (scripts/test.sh), which starts RT and moto")
    })
}

/// The variables that point a relay process (the gateway, a function) at the test RT over
/// REST 2.0 with the test token, and at moto.
pub fn service_vars() -> [(&'static str, String); 6] {
    let rt_url = require_env("RT_URL");
    [
        ("RT_API_URL", format!("{}/REST/2.0/", rt_url.trim_end_matches('/'))),
        ("RT_TOKEN", require_env("RT_TOKEN")),
        ("AWS_ENDPOINT_URL", require_env("AWS_ENDPOINT_URL")),
        ("AWS_REGION", require_env("AWS_REGION")),
        ("AWS_ACCESS_KEY_ID", require_env("AWS_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY", require_env("AWS_SECRET_ACCESS_KEY")),
    ]
}

/// `tag` with a fresh UUID after it: a title or name no other run has used.
pub fn unique(tag: &str) -> String {
    format!("{tag} {}", uuid::Uuid::new_v4().simple())
}

/// A table-name prefix no other test uses.
pub fn unique_prefix(tag: &str) -> String {
    format!("t-{tag}-{}-", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// A DynamoDB client for moto (`AWS_ENDPOINT_URL`).
pub async fn dynamo() -> aws_sdk_dynamodb::Client {
    require_env("AWS_ENDPOINT_URL");
    client_from_env().await
}

/// A client and four fresh tables, created from the shared schema.
pub async fn fresh_tables(tag: &str) -> (aws_sdk_dynamodb::Client, Tables) {
    let client = dynamo().await;
    let tables = Tables::with_prefix(&unique_prefix(tag));
    schema::create_tables(&client, &tables).await.expect("create tables in moto");
    (client, tables)
}

/// Deletes every table of `tables` (best effort): benchmarks fill moto with many items and
/// should not leave them behind.
pub async fn delete_tables(client: &aws_sdk_dynamodb::Client, tables: &Tables) {
    for def in schema::TABLES {
        if let Some(name) = def.name(tables) {
            let _ = client.delete_table().table_name(name).send().await;
        }
    }
}

/// A ticket record for store tests (no RT involved).
pub fn sample_ticket(id: u64, status: &str, queue: &str) -> Ticket {
    let created =
        chrono::DateTime::from_timestamp(1_700_000_000 + id as i64, 0).unwrap_or_default();
    Ticket {
        id,
        title: format!("ticket {id}"),
        description: format!("line one\n  line two of {id}\n"),
        status: status.to_owned(),
        queue: queue.to_owned(),
        requestor: (id % 2 == 0).then(|| format!("user{id}@example.com")),
        created_at: created,
        updated_at: created,
        rt_url: format!("http://rt.invalid/Ticket/Display.html?id={id}"),
    }
}

/// The notification the API would record with `ticket`, created a millisecond per id apart.
pub fn sample_notification(ticket: &Ticket) -> Notification {
    let at = chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + ticket.id as i64)
        .unwrap_or_default();
    Notification::ticket_created(ticket, at)
}

/// Records `sample_ticket(id, "new", "General")` with its notification in `store`, as a
/// POST would, and returns the ticket.
pub async fn record_sample(store: &dyn TicketStore, id: u64) -> Ticket {
    let ticket = sample_ticket(id, "new", "General");
    store
        .record_created(&Creation::new(&ticket, &sample_notification(&ticket)))
        .await
        .unwrap_or_else(|e| panic!("record sample ticket {id}: {e}"));
    ticket
}

/// A connection record `id`, connected now and expiring in three hours (the template's TTL).
pub fn open_connection(id: &str) -> Connection {
    let now = chrono::Utc::now();
    Connection {
        id: id.to_owned(),
        connected_at: now,
        expires_at: now + chrono::Duration::hours(3),
    }
}

/// Reads every record currently in the notifications table's stream (from TRIM_HORIZON)
/// and returns them as the DynamoDB event Lambda would deliver, through the gateway's
/// Streams client (`aws-sdk-dynamodbstreams`) on moto.
pub async fn read_notification_stream(
    client: &aws_sdk_dynamodb::Client,
    tables: &Tables,
) -> aws_lambda_events::dynamodb::Event {
    let arn = schema::notifications_stream_arn(client, tables).await.expect("stream arn");
    let endpoint = url::Url::parse(&require_env("AWS_ENDPOINT_URL")).expect("endpoint URL");
    let streams = StreamsClient::new(&StreamSettings::new(endpoint, Default::default()));
    let mut records = Vec::new();
    for shard in streams.describe_stream(&arn).await.expect("DescribeStream") {
        let mut iterator = streams
            .shard_iterator(&arn, &shard.id, &Position::TrimHorizon)
            .await
            .expect("GetShardIterator");
        for _ in 0..100 {
            let page = streams.records(&iterator, 100).await.expect("GetRecords");
            if page.records.is_empty() {
                break;
            }
            records.extend(page.records.into_iter().map(|mut r| {
                r.event_source_arn = Some(arn.clone());
                r
            }));
            match page.next {
                Some(next) => iterator = next,
                None => break,
            }
        }
    }
    let mut event = aws_lambda_events::dynamodb::Event::default();
    event.records = records;
    event
}
