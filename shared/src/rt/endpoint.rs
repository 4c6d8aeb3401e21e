//! What both HTTP adapters need to reach RT, built once per client: one pooled HTTP client
//! ([`super::http_client`]), RT's base URL, the root of the API spoken under it, and the bound
//! on each request. Credentials are not here: each API carries them its own way.

use std::{fmt, time::Duration};

use url::Url;

use super::{answer::read_body, display_url, http_client, RtError};
use crate::config::RtConfig;

/// RT as one adapter reaches it.
pub(crate) struct RtEndpoint {
    /// The pooled HTTP client.
    pub(crate) http: reqwest::Client,
    /// RT's base URL, ending in `/`.
    base: Url,
    /// The API's root under `base`, e.g. `{base}REST/2.0/`.
    api: Url,
    /// The bound on each request, reported by [`RtError::Timeout`].
    timeout: Duration,
}

impl RtEndpoint {
    /// The endpoint for the API rooted at `root` (`REST/1.0/`, `REST/2.0/`).
    pub(crate) fn new(config: &RtConfig, root: &str) -> Result<Self, RtError> {
        let api = config
            .base_url
            .join(root)
            .map_err(|e| RtError::Malformed(format!("RT base URL: {e}")))?;
        Ok(Self {
            http: http_client(config)?,
            base: config.base_url.clone(),
            api,
            timeout: config.timeout,
        })
    }

    /// The URL of `path` under the API's root.
    pub(crate) fn url(&self, path: &str) -> Result<Url, RtError> {
        self.api.join(path).map_err(|e| RtError::Malformed(format!("URL for {path}: {e}")))
    }

    /// The ticket's page in RT's web interface.
    pub(crate) fn ticket_url(&self, id: u64) -> String {
        display_url(&self.base, id)
    }

    /// Classifies a transport error with this endpoint's bound.
    pub(crate) fn transport_error(&self, err: reqwest::Error) -> RtError {
        RtError::from_transport(err, self.timeout)
    }

    /// Reads the rest of an answer, failing (not truncating) past `cap` bytes.
    pub(crate) async fn read(
        &self,
        resp: &mut reqwest::Response,
        cap: usize,
    ) -> Result<Vec<u8>, RtError> {
        read_body(resp, cap, self.timeout).await
    }
}

impl fmt::Debug for RtEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtEndpoint")
            .field("api", &self.api.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
