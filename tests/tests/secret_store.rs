//! RT's credentials and the webhook secret read from Secrets Manager (moto's), as the
//! functions do at cold start: the values arrive, a missing or malformed secret is a clear
//! error that never carries a value.

use rt_relay_shared::{
    config::{RtAuth, RtConfig},
    secret_store::{fetch, SecretError},
};
use rt_relay_tests::services::{require_env, unique_prefix};

async fn client() -> aws_sdk_secretsmanager::Client {
    require_env("AWS_ENDPOINT_URL");
    let conf = rt_relay_shared::aws::sdk_config().expect("AWS configuration from the environment");
    aws_sdk_secretsmanager::Client::new(&conf)
}

async fn create(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let out = client
        .create_secret()
        .name(format!("{}relay", unique_prefix("secret")))
        .secret_string(value)
        .send()
        .await
        .expect("create a secret in moto");
    out.arn().expect("the new secret's ARN").to_owned()
}

#[tokio::test]
async fn credentials_and_webhook_secret_come_from_secrets_manager() {
    let client = client().await;
    let arn = create(
        &client,
        r#"{"rt_username":"relay","rt_password":"pw-from-secret","webhook_secret":"whs"}"#,
    )
    .await;
    let values = fetch(&client, &arn).await.expect("read the secret");
    assert_eq!(values.webhook_secret().map(|s| s.expose()), Some("whs"));
    // The RT configuration reads the credentials through the overlay, not the environment.
    let env = |k: &str| match k {
        "RT_API_URL" => Some("https://rt.example.com/REST/1.0/".to_owned()),
        "RT_PASSWORD" => Some("stale-env-password".to_owned()),
        _ => None,
    };
    let rt = RtConfig::from_lookup(&values.overlay(&env)).expect("RT config from the secret");
    match rt.auth {
        RtAuth::Basic { username, password } => {
            assert_eq!(username, "relay");
            assert_eq!(password.expose(), "pw-from-secret");
        }
        other => panic!("expected Basic credentials, got {other:?}"),
    }
    let _ = client.delete_secret().secret_id(&arn).force_delete_without_recovery(true).send().await;
}

#[tokio::test]
async fn a_missing_or_malformed_secret_is_a_clear_error_without_its_value() {
    let client = client().await;
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-relay-secret";
    let err = fetch(&client, missing).await.unwrap_err();
    assert!(matches!(err, SecretError::Fetch { .. }), "{err}");
    assert!(err.to_string().contains(missing), "{err}");

    let arn = create(&client, "rt_password=hunter2").await;
    let err = fetch(&client, &arn).await.unwrap_err();
    assert!(matches!(err, SecretError::Malformed { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    let _ = client.delete_secret().secret_id(&arn).force_delete_without_recovery(true).send().await;
}
