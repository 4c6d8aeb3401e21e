//! Where a command reaches DynamoDB: the usual AWS configuration (region, credentials,
//! `AWS_ENDPOINT_URL`), or `--endpoint-url` for a local DynamoDB such as moto.

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;

/// The DynamoDB endpoint option every command takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Endpoint {
    /// DynamoDB endpoint, e.g. http://127.0.0.1:5055 for moto [default: AWS's, for the region
    /// in AWS_REGION or the AWS profile]
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL", global = true)]
    pub endpoint_url: Option<String>,
}

impl Endpoint {
    /// A DynamoDB client for this endpoint, with the rest of the AWS configuration loaded the
    /// usual way.
    pub async fn client(&self) -> Client {
        Client::new(&self.sdk_config().await)
    }

    /// The AWS configuration with this endpoint (for the other clients a command needs).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        // The shared HTTP stack (rustls, compiled-in roots): the SDK's default client is not
        // built in this workspace (rt_relay_shared::aws).
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(rt_relay_shared::aws::http_client());
        if let Some(url) = super::given(self.endpoint_url.as_deref()) {
            loader = loader.endpoint_url(url);
        }
        loader.load().await
    }
}
