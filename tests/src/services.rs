//! Access to the real services the test command starts (RT, moto): environment checks,
//! DynamoDB clients and fresh, uniquely named tables per test.

use rt_relay_shared::{
    config::Tables,
    model::{Notification, Ticket},
    store::{dynamodb::client_from_env, schema},
};

/// Reads a variable the test command exports, or stops the test saying how to run it.
pub fn require_env(name: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!("{name} is not set: run the tests with `make test` (scripts/test.sh), which starts RT and moto")
    })
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

/// Reads every record currently in the notifications table's stream (from TRIM_HORIZON)
/// and returns them as the DynamoDB event Lambda would deliver, using the raw Streams API
/// on moto (the records already have Lambda's event-record shape).
pub async fn read_notification_stream(
    client: &aws_sdk_dynamodb::Client,
    tables: &Tables,
) -> aws_lambda_events::dynamodb::Event {
    let arn = schema::notifications_stream_arn(client, tables).await.expect("stream arn");
    let endpoint = require_env("AWS_ENDPOINT_URL");
    let http = reqwest::Client::new();
    let call = |target: &'static str, body: serde_json::Value| {
        let http = http.clone();
        let endpoint = endpoint.clone();
        async move {
            http.post(&endpoint)
                .header("content-type", "application/x-amz-json-1.0")
                .header("x-amz-target", format!("DynamoDBStreams_20120810.{target}"))
                // moto picks the service from the credential scope; the signature is not checked.
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
                )
                .json(&body)
                .send()
                .await
                .expect("moto streams call")
                .json::<serde_json::Value>()
                .await
                .expect("moto streams JSON")
        }
    };
    let desc = call("DescribeStream", serde_json::json!({ "StreamArn": arn })).await;
    let mut records = Vec::new();
    for shard in desc["StreamDescription"]["Shards"].as_array().cloned().unwrap_or_default() {
        let it = call(
            "GetShardIterator",
            serde_json::json!({ "StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON" }),
        )
        .await;
        let mut iterator = it["ShardIterator"].clone();
        for _ in 0..100 {
            let out =
                call("GetRecords", serde_json::json!({ "ShardIterator": iterator, "Limit": 100 }))
                    .await;
            let batch = out["Records"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            records.extend(batch.into_iter().map(|mut r| {
                r["eventSourceARN"] = serde_json::json!(arn);
                r
            }));
            iterator = out["NextShardIterator"].clone();
        }
    }
    serde_json::from_value(serde_json::json!({ "Records": records }))
        .expect("Lambda DynamoDB event shape")
}
