//! RT for the adapter tests and the create benchmark: configurations built from the
//! variables `scripts/rt.sh` prints (`RT_URL`, `RT_USERNAME`, `RT_PASSWORD`, `RT_TOKEN`).

use std::{sync::Arc, time::Duration};

use reqwest::Url;
use rt_relay_shared::{
    config::{RtApi, RtAuth, RtConfig},
    rt::{client_from_config, RtClient, RtQuery},
    secret::Secret,
};

/// Reads a variable `scripts/rt.sh` exports, or stops the test saying how to run it.
pub fn rt_env(name: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!("{name} is not set: run make test (scripts/test.sh), which starts RT; or export the output of `bash scripts/rt.sh start`")
    })
}

/// RT's base URL, ending in `/`.
pub fn rt_base_url() -> Url {
    let raw = rt_env("RT_URL");
    let with_slash = if raw.ends_with('/') { raw } else { format!("{raw}/") };
    Url::parse(&with_slash).unwrap_or_else(|e| panic!("RT_URL {with_slash:?} is not a URL: {e}"))
}

/// `Authorization: token` with the test token.
pub fn token_auth() -> RtAuth {
    RtAuth::Token(Secret::new(rt_env("RT_TOKEN")))
}

/// User name and password (HTTP Basic on REST 2.0, `user`/`pass` on REST 1.0).
pub fn password_auth() -> RtAuth {
    RtAuth::Basic { username: rt_env("RT_USERNAME"), password: Secret::new(rt_env("RT_PASSWORD")) }
}

/// The right user with a wrong password.
pub fn wrong_password_auth() -> RtAuth {
    RtAuth::Basic { username: rt_env("RT_USERNAME"), password: Secret::new("not-the-password") }
}

/// A token RT never issued (RT's format: `<id>-<token id>-<hex>`).
pub fn wrong_token_auth() -> RtAuth {
    RtAuth::Token(Secret::new("1-999-00000000000000000000000000000000"))
}

/// A configuration for the running RT.
pub fn rt_config(api: RtApi, auth: RtAuth) -> RtConfig {
    RtConfig {
        api,
        base_url: rt_base_url(),
        auth,
        default_queue: "General".into(),
        timeout: Duration::from_secs(10),
    }
}

/// A configuration pointing at another address (closed ports, silent servers).
pub fn config_at(api: RtApi, auth: RtAuth, base_url: &str, timeout: Duration) -> RtConfig {
    let base_url = Url::parse(base_url).unwrap_or_else(|e| panic!("{base_url:?}: {e}"));
    RtConfig { api, base_url, auth, default_queue: "General".into(), timeout }
}

/// The adapter `config.api` names.
pub fn rt_client(config: &RtConfig) -> Arc<dyn RtClient> {
    client_from_config(config).unwrap_or_else(|e| panic!("cannot build the RT client: {e}"))
}

/// The id of RT's newest ticket (0 when it has none): tickets made after it have higher ids.
pub async fn highest_rt_id(rt: &dyn RtClient) -> u64 {
    rt.list(&RtQuery::default(), 1, 1)
        .await
        .expect("list RT's newest ticket")
        .tickets
        .first()
        .map(|t| t.id)
        .unwrap_or(0)
}
