//! The Lambda REQUEST authorizer for both APIs, one function for two event shapes:
//!
//! - HTTP API, payload 2.0 (`"version": "2.0"`): the key comes from
//!   `Authorization: Bearer <key>`; the answer is a simple response
//!   `{"isAuthorized", "context"}`. API Gateway answers 403 to `false`.
//! - WebSocket API `$connect` (has `methodArn`): the key comes from the `api_key` query
//!   parameter; the answer is an IAM policy (Allow, or Deny for a missing scope: 403), and
//!   an invalid key fails the invocation with the message `Unauthorized`, which API Gateway
//!   answers 401.
//!
//! The route's scope comes from the event's route key ([`crate::auth::required_scope`]).
//! The local gateway calls [`RequestAuthorizer::handle`] with the same event JSON.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayV2CustomAuthorizerV2Request,
};
use serde_json::{json, Value};
use tracing::{debug, error};

use crate::{
    auth::{http_credential, required_scope, ws_credential, Decision, KeyAuthorizer, WS_KEY_PARAM},
    http::error_chain,
    store::StoreError,
};

/// Why the authorizer did not answer with a decision.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// The credential is not a live key (WebSocket). The message must be exactly
    /// `Unauthorized`: API Gateway turns an authorizer failure with this message into 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// Neither an HTTP API 2.0 nor a WebSocket REQUEST authorizer event (API Gateway: 500).
    #[error("not an API Gateway REQUEST authorizer event")]
    UnsupportedEvent,
    /// The key store could not be read (API Gateway: 500, the request is refused).
    #[error("the API key store is unavailable")]
    Store(#[source] StoreError),
}

/// The authorizer function's handler.
#[derive(Debug, Clone)]
pub struct RequestAuthorizer {
    keys: KeyAuthorizer,
}

impl RequestAuthorizer {
    /// Over a key authorizer.
    pub fn new(keys: KeyAuthorizer) -> Self {
        Self { keys }
    }

    /// Answers one authorizer event (its JSON, as API Gateway sends it).
    pub async fn handle(&self, event: Value) -> Result<Value, AuthorizerError> {
        if event.get("version").and_then(Value::as_str) == Some("2.0") {
            self.http(event).await
        } else if event.get("methodArn").is_some() {
            self.websocket(event).await
        } else {
            error!("authorizer invoked with an event of unknown shape");
            Err(AuthorizerError::UnsupportedEvent)
        }
    }

    async fn decide(
        &self,
        presented: Option<&str>,
        route_key: &str,
    ) -> Result<Decision, AuthorizerError> {
        debug!(route_key, "authorizing");
        self.keys.authorize(presented, required_scope(route_key)).await.map_err(|e| {
            error!(route_key, error = %error_chain(&e), "cannot read the API keys table");
            AuthorizerError::Store(e)
        })
    }

    async fn http(&self, event: Value) -> Result<Value, AuthorizerError> {
        let req: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_value(event).map_err(|e| {
                error!(error = %e, "HTTP API authorizer event did not deserialize");
                AuthorizerError::UnsupportedEvent
            })?;
        let route_key =
            req.route_key.clone().or(req.request_context.route_key.clone()).unwrap_or_default();
        // Payload 2.0 header names are lower case.
        let header = req.headers.get("authorization").and_then(|v| v.to_str().ok());
        Ok(match self.decide(http_credential(header), &route_key).await? {
            Decision::Allow(p) => json!({ "isAuthorized": true, "context": p.context() }),
            // Only a 403 is possible here: API Gateway answers a missing header 401 itself.
            Decision::Forbidden(_) | Decision::Invalid(_) | Decision::Missing => {
                json!({ "isAuthorized": false })
            }
        })
    }

    async fn websocket(&self, event: Value) -> Result<Value, AuthorizerError> {
        let route_key = event
            .pointer("/requestContext/routeKey")
            .and_then(Value::as_str)
            .unwrap_or("$connect")
            .to_owned();
        let req: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_value(event)
            .map_err(|e| {
                error!(error = %e, "WebSocket authorizer event did not deserialize");
                AuthorizerError::UnsupportedEvent
            })?;
        let method_arn = req.method_arn.clone().unwrap_or_default();
        let key = ws_credential(req.query_string_parameters.first(WS_KEY_PARAM));
        let (effect, principal) = match self.decide(key, &route_key).await? {
            Decision::Allow(p) => ("Allow", p),
            Decision::Forbidden(p) => ("Deny", p),
            Decision::Missing | Decision::Invalid(_) => return Err(AuthorizerError::Unauthorized),
        };
        Ok(json!({
            "principalId": principal.key_id,
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{ "Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn }],
            },
            "context": principal.context(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, sync::Arc};

    use aws_lambda_events::apigw::{
        ApiGatewayCustomAuthorizerResponse, ApiGatewayV2CustomAuthorizerSimpleResponse,
    };
    use aws_lambda_events::iam::IamPolicyEffect;
    use chrono::Utc;

    use super::*;
    use crate::auth::{memory::MemoryApiKeys, mint, ApiKeyStore, Scope};

    async fn setup(scopes: &[Scope]) -> (RequestAuthorizer, Arc<MemoryApiKeys>, String) {
        let store = Arc::new(MemoryApiKeys::new());
        let key =
            mint(store.as_ref(), "t", scopes.iter().copied().collect::<BTreeSet<_>>(), Utc::now())
                .await
                .unwrap();
        (RequestAuthorizer::new(KeyAuthorizer::new(store.clone())), store, key.key().to_owned())
    }

    /// An HTTP API payload 2.0 authorizer event, as in the API Gateway developer guide.
    fn http_event(route_key: &str, authorization: Option<&str>) -> Value {
        let mut headers = json!({ "host": "abc.execute-api.us-east-1.amazonaws.com" });
        if let Some(a) = authorization {
            headers["authorization"] = json!(a);
        }
        json!({
            "version": "2.0", "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:us-east-1:123456789012:abc/$default/POST/tickets",
            "identitySource": [authorization.unwrap_or(""), route_key],
            "routeKey": route_key, "rawPath": "/tickets", "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "abc", "domainName": "abc.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "abc",
                "http": { "method": "POST", "path": "/tickets", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "t" },
                "requestId": "r", "routeKey": route_key, "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": 1583348638390u64
            }
        })
    }

    /// A WebSocket `$connect` REQUEST authorizer event.
    fn ws_event(api_key: Option<&str>) -> Value {
        let mut e = json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/prod/$connect",
            "headers": { "Host": "abc.execute-api.us-east-1.amazonaws.com" },
            "requestContext": {
                "routeKey": "$connect", "eventType": "CONNECT", "stage": "prod", "connectionId": "c1",
                "requestId": "r", "apiId": "abc", "connectedAt": 1583348638390u64
            }
        });
        if let Some(k) = api_key {
            e["queryStringParameters"] = json!({ "api_key": k });
            e["multiValueQueryStringParameters"] = json!({ "api_key": [k] });
        }
        e
    }

    fn simple(v: Value) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
        serde_json::from_value(v).expect("a simple response")
    }

    #[tokio::test]
    async fn http_simple_responses_follow_the_route_scope() {
        let (auth, _, key) = setup(&[Scope::TicketsRead]).await;
        let bearer = format!("Bearer {key}");
        let ok = simple(auth.handle(http_event("GET /tickets", Some(&bearer))).await.unwrap());
        assert!(ok.is_authorized);
        assert_eq!(ok.context["scopes"], "tickets:read");
        assert_eq!(ok.context["key_name"], "t");
        assert!(
            !simple(auth.handle(http_event("POST /tickets", Some(&bearer))).await.unwrap())
                .is_authorized
        );
        assert!(
            !simple(auth.handle(http_event("GET /tickets", Some(&key))).await.unwrap())
                .is_authorized,
            "Bearer only"
        );
        assert!(
            !simple(auth.handle(http_event("GET /tickets", None)).await.unwrap()).is_authorized
        );
        assert!(
            !simple(
                auth.handle(http_event("GET /tickets", Some("Bearer rtr_nope"))).await.unwrap()
            )
            .is_authorized
        );
    }

    #[tokio::test]
    async fn websocket_answers_a_policy_or_unauthorized() {
        let (auth, store, key) = setup(&[Scope::NotificationsRead]).await;
        let allow: ApiGatewayCustomAuthorizerResponse =
            serde_json::from_value(auth.handle(ws_event(Some(&key))).await.unwrap()).unwrap();
        assert_eq!(allow.policy_document.statement[0].effect, IamPolicyEffect::Allow);
        assert_eq!(
            allow.policy_document.statement[0].resource,
            ["arn:aws:execute-api:us-east-1:123456789012:abc/prod/$connect"]
        );
        assert_eq!(allow.context["scopes"], "notifications:read");
        assert!(matches!(auth.handle(ws_event(None)).await, Err(AuthorizerError::Unauthorized)));
        let err = auth.handle(ws_event(Some("rtr_bad"))).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unauthorized",
            "API Gateway matches this exact message for a 401"
        );

        let (writer, _, wkey) = setup(&[Scope::TicketsWrite]).await;
        let deny: ApiGatewayCustomAuthorizerResponse =
            serde_json::from_value(writer.handle(ws_event(Some(&wkey))).await.unwrap()).unwrap();
        assert_eq!(deny.policy_document.statement[0].effect, IamPolicyEffect::Deny);

        let id = key.split('_').nth(1).unwrap().to_owned();
        store.revoke(&id, Utc::now()).await.unwrap();
        assert!(
            matches!(auth.handle(ws_event(Some(&key))).await, Err(AuthorizerError::Unauthorized)),
            "revoked at once"
        );
    }

    #[tokio::test]
    async fn a_store_failure_is_an_error_not_an_allow_and_odd_events_are_refused() {
        let (auth, store, key) = setup(&Scope::ALL).await;
        store.set_failing(true);
        let bearer = format!("Bearer {key}");
        assert!(matches!(
            auth.handle(http_event("GET /tickets", Some(&bearer))).await,
            Err(AuthorizerError::Store(_))
        ));
        assert!(matches!(
            auth.handle(json!({"hello": 1})).await,
            Err(AuthorizerError::UnsupportedEvent)
        ));
    }
}
