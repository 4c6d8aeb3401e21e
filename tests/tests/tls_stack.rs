//! The one TLS stack (`rt_relay_shared::net`, `rt_relay_shared::aws`) against the real
//! services over TLS: a loopback TLS front with a throw-away CA before moto and before RT.
//! With the CA in `EXTRA_CA_FILE`, the AWS SDK (over the shared reqwest client) and the RT
//! client both work through it; a client with only the compiled-in roots is refused, which
//! shows the connections really are verified TLS. The warm-up (`rt_relay_shared::warmup`)
//! opens one connection to each service, and later calls reuse pooled connections.
//!
//! One test per binary: `EXTRA_CA_FILE` is read once per process.

use std::time::Duration;

use rt_relay_shared::{
    aws,
    config::RtApi,
    net::{self, EXTRA_CA_FILE},
    rt::RtCreate,
    store::schema::TableKind,
    warmup::{self, WarmUp},
};
use rt_relay_tests::{
    rt::{config_at, rt_client, token_auth},
    services::{delete_tables, fresh_tables, require_env},
    tls_proxy::TlsCa,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_and_rt_are_reached_over_tls_through_the_shared_stack() {
    let ca = TlsCa::new();
    let ca_file = ca.pem_file();
    // Before any client is built in this process: the roots are made once, at first use.
    std::env::set_var(EXTRA_CA_FILE, &ca_file);
    let moto = ca.proxy(&require_env("AWS_ENDPOINT_URL")).await;
    let rt = ca.proxy(&require_env("RT_URL")).await;
    let (plain, tables) = fresh_tables("tls").await;

    // GIVEN the SDK configuration from the environment, pointed at moto's TLS front
    let moto_url = moto.url();
    let conf = aws::sdk_config_from(&|var| match var {
        "AWS_ENDPOINT_URL" => Some(moto_url.clone()),
        _ => std::env::var(var).ok(),
    })
    .expect("SDK configuration");
    let dynamodb = aws_sdk_dynamodb::Client::new(&conf);
    // AND the RT client pointed at RT's TLS front
    let rt_config =
        config_at(RtApi::Rest2, token_auth(), &format!("{}/", rt.url()), Duration::from_secs(10));
    let rt_client = rt_client(&rt_config);
    // WHEN the warm-up runs THEN it opened one connection to each
    let warm = WarmUp { timeout: Some(Duration::from_secs(10)) };
    let probe = warmup::Probe::Get(TableKind::Tickets);
    warm.run(vec![warmup::dynamodb(&conf, probe, &tables.tickets), warmup::rt(&rt_config)]).await;
    assert_eq!((moto.handshakes(), rt.handshakes()), (1, 1), "one connection each");

    // WHEN the SDK calls DynamoDB THEN the calls succeed over TLS, on pooled connections
    for _ in 0..3 {
        let described = dynamodb
            .describe_table()
            .table_name(&tables.tickets)
            .send()
            .await
            .expect("DescribeTable over TLS");
        assert_eq!(
            described.table().and_then(|t| t.table_name()),
            Some(tables.tickets.as_str()),
            "moto answered through the TLS front"
        );
    }

    // WHEN the RT client creates and reads a ticket THEN both work over TLS
    let id = rt_client
        .create(&RtCreate::new(
            "General",
            "tls stack test",
            "Created through the loopback TLS front.",
        ))
        .await
        .expect("RT create over TLS");
    let read = rt_client.get(id).await.expect("RT read over TLS");
    assert_eq!(read.subject, "tls stack test");
    // (A connection returns to the pool a moment after its answer is read, so a call made
    // at once may open another; the warm-up's own connection is counted above. Lambda asks
    // for its first event between the two, and the cold-start bench times that case.)
    let (moto_calls, rt_calls) = (1 + 3, 1 + 2);
    assert!(
        moto.handshakes() < moto_calls && rt.handshakes() < rt_calls,
        "connections are kept and reused: {} handshakes for {moto_calls} DynamoDB calls, {} for {rt_calls} RT calls",
        moto.handshakes(),
        rt.handshakes()
    );

    // AND a client that trusts only the compiled-in roots is refused by the same front
    let strict = reqwest::Client::builder()
        .tls_backend_preconfigured(net::tls_config_from(&|_| None).expect("TLS config"))
        .build()
        .expect("client");
    let refused = strict.get(format!("{}/", moto.url())).send().await;
    let err = refused.expect_err("an unknown CA must be refused");
    assert!(err.is_connect(), "refused at the handshake: {err:?}");

    delete_tables(&plain, &tables).await;
    let _ = std::fs::remove_file(ca_file);
}
