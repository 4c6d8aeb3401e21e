//! How the REST 1.0 adapter talks to RT: every request is a POST whose urlencoded body
//! carries `user` and `pass` (RT 5.0.3 ignores HTTP Basic on REST 1.0), or an
//! `Authorization: token` header, so no credential ever sits in a URL; RT's session cookie is
//! reused; an answer's status line is checked before anything reads its body.

use std::sync::PoisonError;

use http::{header, HeaderValue, StatusCode};
use url::form_urlencoded;

use super::{
    super::{answer::MAX_ANSWER_BYTES, RtError},
    parse::{parse_answer_text, parse_forms, Answer, ParsedForm},
    Rest1Client,
};
use crate::{config::RtAuth, secret::Secret};

/// How each request proves who rt-relay is.
pub(super) enum Credentials {
    /// `user` and `pass` form fields.
    Form { user: String, pass: Secret },
    /// `Authorization: token ...` (RT 5 accepts auth tokens on REST 1.0 too).
    Token(HeaderValue),
}

impl Credentials {
    /// With [`RtAuth::Basic`] the name and password go as `user`/`pass` fields; with
    /// [`RtAuth::Token`] as `Authorization: token`, a header marked sensitive.
    pub(super) fn new(auth: &RtAuth) -> Result<Self, RtError> {
        Ok(match auth {
            RtAuth::Basic { username, password } => {
                Credentials::Form { user: username.clone(), pass: password.clone() }
            }
            RtAuth::Token(token) => {
                let mut value = HeaderValue::from_str(&format!("token {}", token.expose()))
                    .map_err(|_| {
                        RtError::Malformed(
                            "RT token contains characters an HTTP header cannot carry".into(),
                        )
                    })?;
                value.set_sensitive(true);
                Credentials::Token(value)
            }
        })
    }

    /// What `Debug` may show: the kind of credential, never the credential.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Credentials::Form { .. } => "user/pass",
            Credentials::Token(_) => "token",
        }
    }
}

impl Rest1Client {
    fn session(&self) -> Option<HeaderValue> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_session(&self, cookie: Option<HeaderValue>) {
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = cookie;
    }

    /// Keeps RT's session cookie (`RT_SID_<name>.<port>=<id>`) from an answer.
    fn keep_session(&self, resp: &reqwest::Response) {
        for value in resp.headers().get_all(header::SET_COOKIE) {
            let Some(pair) = value.to_str().ok().and_then(|v| v.split(';').next()).map(str::trim)
            else {
                continue;
            };
            if pair.starts_with("RT_SID_") && pair.contains('=') {
                if let Ok(mut cookie) = HeaderValue::from_str(pair) {
                    cookie.set_sensitive(true);
                    self.set_session(Some(cookie));
                }
            }
        }
    }

    /// POSTs `params` (after the credentials) to `path` and returns the answer unread.
    pub(super) async fn post(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<reqwest::Response, RtError> {
        let url = self.endpoint.url(path)?;
        let body = {
            // The serializer is not Send; it must be gone before the first await.
            let mut body = form_urlencoded::Serializer::new(String::new());
            if let Credentials::Form { user, pass } = &self.credentials {
                body.append_pair("user", user).append_pair("pass", pass.expose());
            }
            body.extend_pairs(params);
            body.finish()
        };
        let mut request = self
            .endpoint
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Credentials::Token(token) = &self.credentials {
            request = request.header(header::AUTHORIZATION, token.clone());
        }
        if let Some(cookie) = self.session() {
            request = request.header(header::COOKIE, cookie);
        }
        let resp = request.send().await.map_err(|e| self.endpoint.transport_error(e))?;
        self.keep_session(&resp);
        // Only RT's own REST 1.0 answers (always HTTP 200) are read; whatever else a web
        // server in front of RT answers is reduced to a fixed text.
        match resp.status() {
            StatusCode::OK => Ok(resp),
            StatusCode::UNAUTHORIZED => Err(RtError::Unauthenticated),
            StatusCode::FORBIDDEN => {
                Err(RtError::Forbidden("RT's web server refused the request".into()))
            }
            s if s.is_server_error() => Err(RtError::Server(s.as_u16())),
            s => Err(RtError::Malformed(format!(
                "RT REST 1.0 answered HTTP {s}; check RT's base URL"
            ))),
        }
    }

    /// POSTs and reads the whole answer as text.
    pub(super) async fn call(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<String, RtError> {
        let mut resp = self.post(path, params).await?;
        let body = self.endpoint.read(&mut resp, MAX_ANSWER_BYTES).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// POSTs, checks the status line and parses the answer's forms.
    pub(super) async fn forms(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Vec<ParsedForm>, RtError> {
        let text = self.call(path, params).await?;
        Ok(parse_forms(self.check(&text)?.body))
    }

    /// Parses an answer's status, forgetting the session when RT refused the credentials.
    pub(super) fn check<'a>(&self, text: &'a str) -> Result<Answer<'a>, RtError> {
        let result = parse_answer_text(text);
        if matches!(result, Err(RtError::Unauthenticated)) {
            self.set_session(None);
        }
        result
    }

    /// The error a raw answer whose status line is not `200` stands for.
    pub(super) fn refusal(&self, raw: &[u8]) -> RtError {
        self.check(&String::from_utf8_lossy(raw))
            .err()
            .unwrap_or_else(|| RtError::Malformed("unreadable status".into()))
    }
}
