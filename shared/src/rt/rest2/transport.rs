//! How the REST 2.0 adapter talks to RT: credentials sent up front on every request (RT
//! sends no challenge) in a header marked sensitive, JSON both ways, and every non-2xx
//! answer turned into an [`RtError`] by [`super::json::status_error`].

use base64::Engine as _;
use http::{header, HeaderValue};
use serde::{de::DeserializeOwned, Serialize};
use tracing::debug;
use url::Url;

use super::{
    super::{answer::MAX_ANSWER_BYTES, RtError},
    json::status_error,
    Rest2Client,
};
use crate::config::RtAuth;

/// The `Authorization` header for `auth`, marked sensitive so it is never printed.
pub(super) fn authorization(auth: &RtAuth) -> Result<HeaderValue, RtError> {
    let raw = match auth {
        RtAuth::Token(token) => format!("token {}", token.expose()),
        RtAuth::Basic { username, password } => {
            let pair = format!("{username}:{}", password.expose());
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        }
    };
    let mut value = HeaderValue::from_str(&raw).map_err(|_| {
        RtError::Malformed("RT credentials contain characters an HTTP header cannot carry".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

impl Rest2Client {
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, RtError> {
        let mut url = self.endpoint.url(path)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends one request with credentials and reads the body; non-2xx answers become errors.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, RtError> {
        let mut resp = request
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.endpoint.transport_error(e))?;
        let status = resp.status();
        let body = self.endpoint.read(&mut resp, MAX_ANSWER_BYTES).await?;
        if status.is_success() {
            Ok(body)
        } else {
            let err = status_error(status, &body);
            debug!(status = status.as_u16(), error = %err, "RT REST 2.0 refused");
            Err(err)
        }
    }

    /// Sends one request for `path` and reads its JSON answer as `T`.
    async fn send_json<T: DeserializeOwned>(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, RtError> {
        let body = self.send(request).await?;
        serde_json::from_slice(&body).map_err(|e| RtError::Malformed(format!("{path}: {e}")))
    }

    /// `GET {api}{path}?{query}`, its JSON answer read as `T`. A new read endpoint is one
    /// call to this with the answer's shape from `json`.
    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, RtError> {
        self.send_json(path, self.endpoint.http.get(self.url(path, query)?)).await
    }

    /// `POST {api}{path}` with a JSON body, its JSON answer read as `T`.
    pub(super) async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, RtError> {
        self.send_json(path, self.endpoint.http.post(self.url(path, &[])?).json(body)).await
    }
}
