//! Where RT's credentials and the RT webhook's signing secret come from.
//!
//! On AWS: one Secrets Manager secret, named by `RELAY_SECRET_ARN` (the template creates it or
//! takes an existing one, and lets each function read exactly that ARN). Its value is a JSON
//! object with `rt_token`, or `rt_username` and `rt_password`, and `webhook_secret`. It is
//! fetched once per cold start ([`load`]) and kept for the life of the process, so no
//! credential sits in a Lambda environment variable (readable by anyone with
//! `lambda:GetFunctionConfiguration`).
//!
//! Locally (no `RELAY_SECRET_ARN`): the same values from the environment (`RT_TOKEN`,
//! `RT_USERNAME`, `RT_PASSWORD`, `WEBHOOK_SECRET`). Either way callers read them through
//! [`SecretValues::overlay`], the lookup [`crate::config::RtConfig::from_lookup`] takes, so one
//! code path builds the RT client in both places.

use std::{collections::HashMap, sync::Arc};

use tokio::sync::OnceCell;

use crate::secret::Secret;

/// The variable naming the Secrets Manager secret (its ARN).
pub const SECRET_ARN_VAR: &str = "RELAY_SECRET_ARN";

/// Each secret value: its key in the secret's JSON and the environment variable it replaces.
const FIELDS: [(&str, &str); 4] = [
    ("rt_token", "RT_TOKEN"),
    ("rt_username", "RT_USERNAME"),
    ("rt_password", "RT_PASSWORD"),
    ("webhook_secret", "WEBHOOK_SECRET"),
];

/// Why the secret could not be read. Never carries the secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager failed or refused (the ARN is named; the value never is).
    #[error("cannot read the secret {arn} from Secrets Manager: {source}")]
    Fetch {
        /// The secret's ARN.
        arn: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The secret has no string value, or it is not a JSON object of strings.
    #[error("the secret {arn} is not a JSON object of strings ({problem})")]
    Malformed {
        /// The secret's ARN.
        arn: String,
        /// What is wrong with it, without its content.
        problem: String,
    },
}

/// The secret values, by the environment variable each one stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretValues {
    by_var: HashMap<&'static str, Secret>,
}

impl SecretValues {
    /// The values from the environment (or any lookup): the local path.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        let by_var = FIELDS
            .iter()
            .filter_map(|(_, var)| {
                lookup(var).filter(|v| !v.trim().is_empty()).map(|v| (*var, Secret::new(v)))
            })
            .collect();
        Self { by_var }
    }

    /// The values from a secret's JSON text; unknown keys are ignored, so the secret can
    /// carry notes for operators.
    pub fn from_json(arn: &str, text: &str) -> Result<Self, SecretError> {
        let malformed = |problem: &str| SecretError::Malformed {
            arn: arn.to_owned(),
            problem: problem.to_owned(),
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|_| malformed("not JSON"))?;
        let object = value.as_object().ok_or_else(|| malformed("not a JSON object"))?;
        let mut by_var = HashMap::new();
        for (key, var) in FIELDS {
            match object.get(key) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(s)) if s.trim().is_empty() => {}
                Some(serde_json::Value::String(s)) => {
                    by_var.insert(var, Secret::new(s.clone()));
                }
                Some(_) => return Err(malformed(&format!("{key} is not a string"))),
            }
        }
        Ok(Self { by_var })
    }

    /// The value standing for environment variable `var`, if the secret has it.
    pub fn get(&self, var: &str) -> Option<&Secret> {
        self.by_var.get(var)
    }

    /// The webhook's HMAC secret (`webhook_secret` / `WEBHOOK_SECRET`).
    pub fn webhook_secret(&self) -> Option<&Secret> {
        self.get("WEBHOOK_SECRET")
    }

    /// A lookup that answers the secret variables from these values only, and every other
    /// variable from `env`: the secrets never come from the environment once a secret ARN
    /// is configured.
    pub fn overlay<'a>(
        &'a self,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |var: &str| {
            if FIELDS.iter().any(|(_, v)| *v == var) {
                self.get(var).map(|s| s.expose().to_owned())
            } else {
                env(var)
            }
        }
    }
}

/// Reads the secret `arn` from Secrets Manager (no caching; see [`load`]).
pub async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<SecretValues, SecretError> {
    let out = client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
        SecretError::Fetch { arn: arn.to_owned(), source: Box::new(e.into_service_error()) }
    })?;
    let text = out.secret_string().ok_or_else(|| SecretError::Malformed {
        arn: arn.to_owned(),
        problem: "it has no string value".into(),
    })?;
    SecretValues::from_json(arn, text)
}

/// The relay's secret values, fetched once per process (a Lambda cold start) and cached:
/// from the secret named by `RELAY_SECRET_ARN` when `env` has it, else from `env` itself.
pub async fn load(
    env: &dyn Fn(&str) -> Option<String>,
    sdk: &aws_types::SdkConfig,
) -> Result<Arc<SecretValues>, SecretError> {
    static CACHE: OnceCell<Arc<SecretValues>> = OnceCell::const_new();
    let arn = env(SECRET_ARN_VAR).filter(|a| !a.trim().is_empty());
    CACHE
        .get_or_try_init(|| async {
            let values = match arn {
                Some(arn) => fetch(&aws_sdk_secretsmanager::Client::new(sdk), &arn).await?,
                None => SecretValues::from_lookup(env),
            };
            Ok(Arc::new(values))
        })
        .await
        .cloned()
}

/// RT's settings for a function at cold start: everything but the credentials from the
/// environment, the credentials through [`load`] (the secret on AWS, the environment
/// locally), over the function's one SDK configuration. A secret that cannot be read stops
/// the cold start, naming `RELAY_SECRET_ARN`.
pub async fn rt_config_from_env(
    sdk: &aws_types::SdkConfig,
) -> Result<crate::config::RtConfig, crate::config::ConfigError> {
    let env = |k: &str| std::env::var(k).ok();
    let values = match env(SECRET_ARN_VAR) {
        Some(_) => load(&env, sdk).await.map_err(|e| crate::config::ConfigError {
            var: SECRET_ARN_VAR,
            problem: crate::http::error_chain(&e),
        })?,
        None => Arc::new(SecretValues::from_lookup(&env)),
    };
    let lookup = values.overlay(&env);
    crate::config::RtConfig::from_lookup(&lookup)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rt-relay-AbCdEf";

    #[test]
    fn json_keys_stand_for_the_environment_variables() {
        let v = SecretValues::from_json(
            ARN,
            r#"{"rt_token":"tok","webhook_secret":"whs","rt_username":"","note":"ops"}"#,
        )
        .unwrap();
        assert_eq!(v.get("RT_TOKEN").map(Secret::expose), Some("tok"));
        assert_eq!(v.webhook_secret().map(Secret::expose), Some("whs"));
        assert_eq!(v.get("RT_USERNAME"), None, "an empty value is absent");
    }

    #[test]
    fn malformed_secrets_are_refused_without_echoing_them() {
        for text in ["tok", "[\"tok\"]", r#"{"rt_token": 12}"#] {
            let e = SecretValues::from_json(ARN, text).unwrap_err();
            assert!(matches!(e, SecretError::Malformed { .. }), "{text}");
            assert!(!e.to_string().contains("tok") || text.contains("rt_token"), "{e}");
        }
    }

    #[test]
    fn the_overlay_answers_secrets_only_from_the_secret() {
        let v = SecretValues::from_json(ARN, r#"{"rt_token":"from-secret"}"#).unwrap();
        let env = |k: &str| match k {
            "RT_TOKEN" => Some("from-env".to_owned()),
            "RT_PASSWORD" => Some("env-password".to_owned()),
            "RT_API_URL" => Some("https://rt.example.com/".to_owned()),
            _ => None,
        };
        let lookup = v.overlay(&env);
        assert_eq!(lookup("RT_TOKEN").as_deref(), Some("from-secret"));
        assert_eq!(lookup("RT_PASSWORD"), None, "not taken from the environment");
        assert_eq!(lookup("RT_API_URL").as_deref(), Some("https://rt.example.com/"));
    }

    #[test]
    fn locally_the_values_come_from_the_environment() {
        let env = |k: &str| (k == "RT_TOKEN").then(|| "t".to_owned());
        let v = SecretValues::from_lookup(&env);
        assert_eq!(v.overlay(&env)("RT_TOKEN").as_deref(), Some("t"));
        let rt = crate::config::RtConfig::from_lookup(&|k| match k {
            "RT_API_URL" => Some("http://127.0.0.1:8080/".to_owned()),
            other => v.overlay(&env)(other),
        })
        .unwrap();
        assert!(matches!(rt.auth, crate::config::RtAuth::Token(_)));
    }

    #[test]
    fn errors_print_no_value() {
        let v = SecretValues::from_json(ARN, r#"{"rt_password":"hunter2"}"#).unwrap();
        assert!(!format!("{v:?}").contains("hunter2"));
    }
}
