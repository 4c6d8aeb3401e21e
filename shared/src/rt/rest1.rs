//! The RT REST 1.0 adapter: text forms at `{base}REST/1.0/`. Every request is a POST whose
//! urlencoded body carries `user` and `pass` (RT 5.0.3 ignores HTTP Basic on REST 1.0), so no
//! credential ever sits in a URL. HTTP is always 200; the real status is the body's first
//! line. Every form is built by [`super::rest1_form`], so no value can add or change a field.
//!
//! Two things REST 1.0 cannot say directly, and how this adapter gets them:
//! * Dates are printed in the RT user's display timezone and locale, without an offset. The
//!   UTC creation time comes from the ticket's Create transaction (printed raw, in UTC), read
//!   in the same round trip; the ticket's own printed `Created` refines it to the second.
//! * A search has no paging. [`Rest1Client::list`] streams the matching ids (`format=i`),
//!   counting them and keeping only the requested page, then reads just those tickets.
//!
//! What REST 1.0 cannot store unchanged is refused with [`RtError::Rejected`] before any
//! request: a description whose first line is empty (RT drops leading empty lines), the
//! description `"0"` (false to Perl, so RT stores no message), one-line values with control
//! characters or leading whitespace, and a requestor list.

use std::{
    collections::HashMap,
    fmt,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use http::{header, HeaderValue, StatusCode};
use tracing::{debug, instrument, warn};
use url::{form_urlencoded, Url};

use super::{
    answer::{self, MAX_ANSWER_BYTES},
    display_url, http_client,
    rest1_form::{
        parse_answer, parse_answers, parse_forms, parse_status_line, Answer, Form, FormError,
        ParsedForm,
    },
    ticket_sql::{ids_sql, ticket_sql},
    RtClient, RtCreate, RtError, RtPage, RtQuery, RtTicket, MAX_PER_PAGE,
};
use crate::{
    config::{RtAuth, RtConfig},
    secret::Secret,
};

/// The ticket fields read by `get` and `list`.
const TICKET_FIELDS: &str = "Subject,Status,Queue,Owner,Priority,Created,Requestors";
/// RT's default display format for dates (`RT::Date::DefaultFormat`, English).
const DISPLAY_DATE: &str = "%a %b %d %H:%M:%S %Y";
/// How transactions print their raw, UTC `Created`.
const SQL_DATE: &str = "%Y-%m-%d %H:%M:%S";
/// Longest line accepted in the id list (`ticket/<id>`).
const MAX_ID_LINE: usize = 64;

enum Credentials {
    /// `user` and `pass` form fields.
    Form { user: String, pass: Secret },
    /// `Authorization: token ...` (RT 5 accepts auth tokens on REST 1.0 too).
    Token(HeaderValue),
}

/// Speaks RT REST 1.0. Reuses RT's session cookie when RT sets one: each login through
/// `user`/`pass` otherwise leaves a new session on RT's disk. The credentials still go with
/// every request, so an expired or lost session only costs one fresh login.
pub struct Rest1Client {
    http: reqwest::Client,
    base: Url,
    api: Url,
    credentials: Credentials,
    timeout: Duration,
    session: Mutex<Option<HeaderValue>>,
}

impl fmt::Debug for Rest1Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.credentials {
            Credentials::Form { .. } => "user/pass",
            Credentials::Token(_) => "token",
        };
        f.debug_struct("Rest1Client")
            .field("api", &self.api.as_str())
            .field("auth", &auth)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn form_error(err: FormError) -> RtError {
    RtError::Rejected(format!("RT REST 1.0 cannot carry this ticket unchanged: {err}"))
}

/// The error a form's `#` comments report, if any (`# Ticket 7 does not exist.`, ...).
fn comment_error(comments: &[String]) -> Option<RtError> {
    let text = comments.join(" ");
    let lower = text.to_ascii_lowercase();
    if lower.contains("does not exist") {
        Some(RtError::NotFound)
    } else if lower.contains("not allowed")
        || lower.contains("no permission")
        || lower.contains("permission denied")
    {
        Some(RtError::Forbidden(answer::message(&text)))
    } else {
        None
    }
}

/// Maps an answer's status to an error, or returns the answer.
fn check_status(answer: Answer<'_>) -> Result<Answer<'_>, RtError> {
    let msg = || {
        let m = answer::message(answer.body);
        if m.is_empty() {
            answer.reason.to_owned()
        } else {
            m
        }
    };
    match answer.code {
        200 => Ok(answer),
        401 => Err(RtError::Unauthenticated),
        403 => Err(RtError::Forbidden(msg())),
        404 => Err(RtError::NotFound),
        400 | 409 | 422 => Err(RtError::Rejected(msg())),
        code @ 500..=599 => Err(RtError::Server(code)),
        code => Err(RtError::Malformed(format!("RT REST 1.0 status {code} {}", answer.reason))),
    }
}

fn parse_answer_text(text: &str) -> Result<Answer<'_>, RtError> {
    // RT prints nothing at all, not even a status line, for a 200 with nothing to say
    // (e.g. the attachment list of a ticket without attachments).
    if text.is_empty() {
        return Ok(Answer { code: 200, reason: "", body: "" });
    }
    let answer = parse_answer(text).ok_or_else(|| {
        let start: String = text.chars().take(80).collect();
        RtError::Malformed(format!("not an RT REST 1.0 answer: {start:?}"))
    })?;
    check_status(answer)
}

/// The ticket's creation time in UTC. `shown` is the ticket's `Created` as REST 1.0 prints
/// it (display timezone, no offset); `create_utc` is its Create transaction's raw time (UTC,
/// the same second or a moment later). The display offset is the difference rounded to a
/// quarter hour; without a usable `shown` the transaction time is used.
pub fn resolve_created(
    shown: Option<&str>,
    create_utc: Option<NaiveDateTime>,
) -> Result<DateTime<Utc>, RtError> {
    const QUARTER: i64 = 15 * 60;
    let shown_at = shown.and_then(|s| NaiveDateTime::parse_from_str(s.trim(), DISPLAY_DATE).ok());
    let at = match (shown_at, create_utc) {
        (Some(shown_at), Some(create_utc)) => {
            let delta = (shown_at - create_utc).num_seconds();
            let offset = (delta + QUARTER / 2).div_euclid(QUARTER) * QUARTER;
            if (delta - offset).abs() <= 120 {
                shown_at - chrono::Duration::seconds(offset)
            } else {
                create_utc
            }
        }
        (None, Some(create_utc)) => create_utc,
        // No Create transaction to compare with: the printed time is taken as UTC.
        (Some(shown_at), None) => shown_at,
        (None, None) => {
            return Err(RtError::Malformed(format!(
                "cannot read the ticket's creation time from {shown:?}"
            )));
        }
    };
    Ok(Utc.from_utc_datetime(&at))
}

/// Builds a ticket from a `ticket/<id>` form of `show` or `search`.
fn ticket_from_form(
    form: &ParsedForm,
    create_utc: Option<NaiveDateTime>,
) -> Result<RtTicket, RtError> {
    let id = form
        .get("id")
        .and_then(|v| v.strip_prefix("ticket/"))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            RtError::Malformed(format!("ticket form without a ticket id: {:?}", form.get("id")))
        })?;
    let required = |key: &str| {
        form.get(key)
            .map(str::to_owned)
            .ok_or_else(|| RtError::Malformed(format!("ticket {id} without {key}")))
    };
    let priority = match form.get("Priority").map(str::trim) {
        None | Some("") => 0,
        Some(p) => p.parse().map_err(|_| {
            RtError::Malformed(format!("ticket {id}: Priority {p:?} is not a number"))
        })?,
    };
    Ok(RtTicket {
        id,
        subject: form.get("Subject").unwrap_or_default().to_owned(),
        status: required("Status")?,
        queue: required("Queue")?,
        owner: required("Owner")?,
        priority,
        requestors: form
            .get("Requestors")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        created: resolve_created(form.get("Created"), create_utc)?,
    })
}

/// Whether the ticket's attachment list (`ticket/<id>/attachments`) names `aid` as an
/// unnamed text/plain part, i.e. a message body rather than a file.
fn is_body_part(list: &str, aid: u64) -> bool {
    let entry = format!("{aid}: (Unnamed) (text/plain / ");
    list.match_indices(&entry).any(|(at, _)| at == 0 || list[..at].ends_with([' ', '\n', ',']))
}

/// Attachment ids listed by a transaction's `Attachments` field (`22: untitled (0b)` lines).
fn listed_attachment_ids(value: &str) -> Vec<u64> {
    value
        .lines()
        .filter_map(|l| l.trim().split_once(':').and_then(|(id, _)| id.parse().ok()))
        .collect()
}

/// Counts the `ticket/<id>` lines of a `format=i` search, fed in arbitrary pieces, and
/// keeps only one page of ids.
#[derive(Debug)]
struct IdPage {
    skip: u64,
    limit: usize,
    total: u64,
    ids: Vec<u64>,
    partial: Vec<u8>,
}

impl IdPage {
    fn new(skip: u64, limit: u32) -> Self {
        Self { skip, limit: limit as usize, total: 0, ids: Vec::new(), partial: Vec::new() }
    }

    fn line(&mut self, line: &[u8]) -> Result<(), RtError> {
        let line = std::str::from_utf8(line).map(str::trim).unwrap_or("?");
        if line.is_empty() {
            return Ok(());
        }
        let id: u64 =
            line.strip_prefix("ticket/").and_then(|n| n.parse().ok()).ok_or_else(|| {
                RtError::Malformed(format!("unexpected line in RT's id list: {line:?}"))
            })?;
        if self.total >= self.skip && self.ids.len() < self.limit {
            self.ids.push(id);
        }
        self.total += 1;
        Ok(())
    }

    /// Takes the next bytes of the answer (after its status line).
    fn feed(&mut self, bytes: &[u8]) -> Result<(), RtError> {
        let mut buf = std::mem::take(&mut self.partial);
        buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(len) = buf[start..].iter().position(|&b| b == b'\n') {
            self.line(&buf[start..start + len])?;
            start += len + 1;
        }
        buf.drain(..start);
        if buf.len() > MAX_ID_LINE {
            return Err(RtError::Malformed("unexpected long line in RT's id list".into()));
        }
        self.partial = buf;
        Ok(())
    }

    /// How many ids there were, and the page's ids.
    fn finish(mut self) -> Result<(u64, Vec<u64>), RtError> {
        let rest = std::mem::take(&mut self.partial);
        self.line(&rest)?;
        Ok((self.total, self.ids))
    }
}

impl Rest1Client {
    /// Builds the adapter. With [`RtAuth::Basic`] the name and password go as `user`/`pass`
    /// fields; with [`RtAuth::Token`] as `Authorization: token`.
    pub fn new(config: RtConfig) -> Result<Self, RtError> {
        let api = config
            .base_url
            .join("REST/1.0/")
            .map_err(|e| RtError::Malformed(format!("RT base URL: {e}")))?;
        let credentials = match &config.auth {
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
        };
        Ok(Self {
            http: http_client(&config)?,
            base: config.base_url,
            api,
            credentials,
            timeout: config.timeout,
            session: Mutex::new(None),
        })
    }

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
    async fn post(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<reqwest::Response, RtError> {
        let url =
            self.api.join(path).map_err(|e| RtError::Malformed(format!("URL for {path}: {e}")))?;
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
        let resp = request.send().await.map_err(|e| RtError::from_transport(e, self.timeout))?;
        self.keep_session(&resp);
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
    async fn call(&self, path: &str, params: &[(&str, &str)]) -> Result<String, RtError> {
        let mut resp = self.post(path, params).await?;
        let body = answer::read_body(&mut resp, MAX_ANSWER_BYTES, self.timeout).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Parses an answer's status, forgetting the session when RT refused the credentials.
    fn check<'a>(&self, text: &'a str) -> Result<Answer<'a>, RtError> {
        let result = parse_answer_text(text);
        if matches!(result, Err(RtError::Unauthenticated)) {
            self.set_session(None);
        }
        result
    }

    /// The raw UTC creation time of each ticket's Create transaction, in one request.
    /// Best effort: a failure here only makes dates fall back to the printed ones.
    async fn create_times(&self, ids: &[u64]) -> HashMap<u64, NaiveDateTime> {
        let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let spec = format!("ticket/{list}/history/type/Create");
        let text =
            match self.call("show", &[("id", spec.as_str()), ("fields", "Created,Ticket")]).await {
                Ok(text) => text,
                Err(err) => {
                    debug!(error = %err, "no Create transaction times");
                    return HashMap::new();
                }
            };
        let mut times = HashMap::new();
        for answer in parse_answers(&text).into_iter().filter(|a| a.code == 200) {
            for form in parse_forms(answer.body) {
                let ticket = form.get("Ticket").and_then(|t| t.trim().parse::<u64>().ok());
                let created = form
                    .get("Created")
                    .and_then(|c| NaiveDateTime::parse_from_str(c.trim(), SQL_DATE).ok());
                if let (Some(ticket), Some(created)) = (ticket, created) {
                    times.entry(ticket).or_insert(created);
                }
            }
        }
        times
    }

    /// Streams the ids matching `sql`, newest first; returns how many there are and the
    /// `limit` ids after the first `skip`. Memory stays bounded by `limit`, whatever the total.
    async fn ticket_ids(
        &self,
        sql: &str,
        skip: u64,
        limit: u32,
    ) -> Result<(u64, Vec<u64>), RtError> {
        let mut resp = self
            .post("search/ticket", &[("query", sql), ("orderby", "-id"), ("format", "i")])
            .await?;
        // The status line first.
        let mut head = Vec::new();
        while !head.contains(&b'\n') && head.len() <= 1024 {
            match resp.chunk().await.map_err(|e| RtError::from_transport(e, self.timeout))? {
                Some(chunk) => head.extend_from_slice(&chunk),
                None => break,
            }
        }
        if head.is_empty() {
            return Ok((0, Vec::new()));
        }
        let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
        let line = String::from_utf8_lossy(&head[..end]).into_owned();
        match parse_status_line(&line) {
            Some((200, _)) => {}
            Some(_) => {
                // Not 200: the rest is RT's (short) message.
                head.extend_from_slice(
                    &answer::read_body(&mut resp, 64 * 1024, self.timeout).await?,
                );
                let text = String::from_utf8_lossy(&head).into_owned();
                return Err(self
                    .check(&text)
                    .err()
                    .unwrap_or_else(|| RtError::Malformed("unreadable status".into())));
            }
            None => {
                let start: String = line.chars().take(80).collect();
                return Err(RtError::Malformed(format!("not an RT REST 1.0 answer: {start:?}")));
            }
        }
        let mut page = IdPage::new(skip, limit);
        page.feed(head.get(end + 1..).unwrap_or_default())?;
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| RtError::from_transport(e, self.timeout))?
        {
            page.feed(&chunk)?;
        }
        page.finish()
    }

    /// Reads an attachment's content byte for byte (`.../content` answers `status\n\n<raw>`).
    async fn attachment_content(&self, ticket: u64, aid: u64) -> Result<String, RtError> {
        let mut resp =
            self.post(&format!("ticket/{ticket}/attachments/{aid}/content"), &[]).await?;
        let raw = answer::read_body(&mut resp, MAX_ANSWER_BYTES, self.timeout).await?;
        // RT prints nothing at all for an empty attachment, nor for the content "0" (false
        // to Perl); the attachment's own form tells the two apart.
        if raw.is_empty() {
            let text = self.call(&format!("ticket/{ticket}/attachments/{aid}"), &[]).await?;
            let answer = self.check(&text)?;
            let zero = parse_forms(answer.body).iter().any(|f| f.get("Content") == Some("0"));
            return Ok(if zero { "0".to_owned() } else { String::new() });
        }
        let line_end = raw.iter().position(|&b| b == b'\n').unwrap_or(raw.len());
        let status = String::from_utf8_lossy(&raw[..line_end]).into_owned();
        if !matches!(parse_status_line(&status), Some((200, _))) {
            return Err(self
                .check(&String::from_utf8_lossy(&raw))
                .err()
                .unwrap_or_else(|| RtError::Malformed("unreadable status".into())));
        }
        let rest = raw.get(line_end + 1..).unwrap_or_default();
        let content = rest.strip_prefix(b"\n").unwrap_or(rest);
        match String::from_utf8(content.to_vec()) {
            Ok(text) => Ok(text),
            Err(_) => {
                // REST 1.0 returns the part in its original charset; rt-relay only writes UTF-8.
                warn!(ticket, attachment = aid, "attachment is not UTF-8; replacing invalid bytes");
                Ok(String::from_utf8_lossy(content).into_owned())
            }
        }
    }
}

#[async_trait::async_trait]
impl RtClient for Rest1Client {
    #[instrument(level = "debug", skip_all, fields(rt.api = "rest1", queue = %ticket.queue))]
    async fn create(&self, ticket: &RtCreate) -> Result<u64, RtError> {
        // RT's ticket/new handler tests the text for Perl truth: "0" would be dropped.
        if ticket.content == "0" {
            return Err(RtError::Rejected(
                "RT REST 1.0 stores a description of exactly \"0\" as no description".into(),
            ));
        }
        let mut form = Form::new();
        form.line("id", "ticket/new").map_err(form_error)?;
        form.line("Queue", &ticket.queue).map_err(form_error)?;
        form.line("Subject", &ticket.subject).map_err(form_error)?;
        if let Some(requestor) = &ticket.requestor {
            // One address: RT would read a list and add every address as a watcher.
            if requestor.contains([',', ';']) {
                return Err(RtError::Rejected("requestor must be one email address".into()));
            }
            form.line("Requestor", requestor).map_err(form_error)?;
        }
        if !ticket.content.is_empty() {
            form.text("Text", &ticket.content).map_err(form_error)?;
        }
        let content = form.finish();
        let text = self.call("ticket/new", &[("content", content.as_str())]).await?;
        let answer = self.check(&text)?;
        let comments: Vec<String> =
            parse_forms(answer.body).into_iter().flat_map(|f| f.comments).collect();
        let created = comments.iter().find_map(|c| {
            c.strip_prefix("Ticket ")
                .and_then(|r| r.strip_suffix(" created."))
                .and_then(|n| n.parse::<u64>().ok())
        });
        if let Some(id) = created {
            debug!(ticket.id = id, "created");
            return Ok(id);
        }
        let message = answer::message(&comments.join(" "));
        let lower = message.to_ascii_lowercase();
        // "Queue not set" is how RT reports a queue it cannot load; like REST 2.0's 403 it
        // does not say whether the queue is missing or hidden from this user.
        if lower.contains("queue not set")
            || lower.contains("no permission")
            || lower.contains("permission denied")
        {
            Err(RtError::Forbidden(message))
        } else if lower.contains("could not create") {
            Err(RtError::Rejected(message))
        } else {
            Err(RtError::Malformed(format!("create answer without a ticket id: {message:?}")))
        }
    }

    #[instrument(level = "debug", skip(self), fields(rt.api = "rest1"))]
    async fn get(&self, id: u64) -> Result<RtTicket, RtError> {
        let path = format!("ticket/{id}/show");
        let (params, ids) = ([("fields", TICKET_FIELDS)], [id]);
        let (shown, times) = tokio::join!(self.call(&path, &params), self.create_times(&ids));
        let shown = shown?;
        let answer = self.check(&shown)?;
        let forms = parse_forms(answer.body);
        let form = forms
            .first()
            .ok_or_else(|| RtError::Malformed(format!("empty answer for ticket {id}")))?;
        if let Some(err) = comment_error(&form.comments) {
            return Err(err);
        }
        ticket_from_form(form, times.get(&id).copied())
    }

    #[instrument(level = "debug", skip(self), fields(rt.api = "rest1"))]
    async fn description(&self, id: u64) -> Result<String, RtError> {
        let history_path = format!("ticket/{id}/history/type/Create");
        let list_path = format!("ticket/{id}/attachments");
        let history_params = [("format", "l"), ("fields", "Attachments")];
        let (history, list) =
            tokio::join!(self.call(&history_path, &history_params), self.call(&list_path, &[]));
        let history = history?;
        let history = self.check(&history)?;
        let forms = parse_forms(history.body);
        if let Some(err) = forms.iter().find_map(|f| comment_error(&f.comments)) {
            return Err(err);
        }
        let create_parts = forms
            .iter()
            .find_map(|f| f.get("Attachments"))
            .map(listed_attachment_ids)
            .unwrap_or_default();
        let list = list?;
        let list = self.check(&list)?;
        let list_forms = parse_forms(list.body);
        if let Some(err) = list_forms.iter().find_map(|f| comment_error(&f.comments)) {
            return Err(err);
        }
        let all_parts = list_forms.iter().find_map(|f| f.get("Attachments")).unwrap_or_default();
        match create_parts.into_iter().find(|&aid| is_body_part(all_parts, aid)) {
            Some(aid) => self.attachment_content(id, aid).await,
            None => Ok(String::new()),
        }
    }

    #[instrument(level = "debug", skip(self, query), fields(rt.api = "rest1"))]
    async fn list(&self, query: &RtQuery, page: u32, per_page: u32) -> Result<RtPage, RtError> {
        let page = page.max(1);
        let per_page = per_page.clamp(1, MAX_PER_PAGE);
        let sql = ticket_sql(query)?;
        let skip = u64::from(page - 1) * u64::from(per_page);
        let (total, ids) = self.ticket_ids(&sql, skip, per_page).await?;
        let has_more = u64::from(page) * u64::from(per_page) < total;
        if ids.is_empty() {
            return Ok(RtPage { tickets: Vec::new(), page, total, has_more });
        }
        let page_sql = ids_sql(&ids);
        let params = [
            ("query", page_sql.as_str()),
            ("orderby", "-id"),
            ("format", "l"),
            ("fields", TICKET_FIELDS),
        ];
        let (found, times) =
            tokio::join!(self.call("search/ticket", &params), self.create_times(&ids));
        let found = found?;
        let answer = self.check(&found)?;
        let mut forms: HashMap<u64, ParsedForm> = HashMap::new();
        for form in parse_forms(answer.body) {
            if let Some(id) =
                form.get("id").and_then(|v| v.strip_prefix("ticket/")).and_then(|v| v.parse().ok())
            {
                forms.insert(id, form);
            }
        }
        // A ticket gone between the two requests is left out rather than failing the page.
        let tickets = ids
            .iter()
            .filter_map(|id| {
                forms.get(id).map(|form| ticket_from_form(form, times.get(id).copied()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RtPage { tickets, page, total, has_more })
    }

    fn ticket_url(&self, id: u64) -> String {
        display_url(&self.base, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, SQL_DATE).unwrap()
    }

    /// A client whose every request would fail as Unreachable: refusals must come first.
    fn offline_client() -> Rest1Client {
        Rest1Client::new(RtConfig {
            api: crate::config::RtApi::Rest1,
            base_url: Url::parse("http://127.0.0.1:9/").unwrap(),
            auth: RtAuth::Basic { username: "u".into(), password: Secret::new("hunter2") },
            default_queue: "General".into(),
            timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn given_input_rest1_cannot_carry_when_creating_then_it_is_rejected_before_any_request() {
        let rt = offline_client();
        let base = RtCreate {
            queue: "General".into(),
            subject: "s".into(),
            content: "c".into(),
            requestor: None,
        };
        let cases = [
            RtCreate { subject: "x\nOwner: root".into(), ..base.clone() },
            RtCreate { subject: " leading space".into(), ..base.clone() },
            RtCreate { queue: "General\nOwner: root".into(), ..base.clone() },
            RtCreate { requestor: Some("a@example.com, b@example.com".into()), ..base.clone() },
            RtCreate { requestor: Some("a@example.com\nCc: b@example.com".into()), ..base.clone() },
            RtCreate { content: "\nleading empty line".into(), ..base.clone() },
            RtCreate { content: "0".into(), ..base.clone() },
        ];
        for case in cases {
            let result = rt.create(&case).await;
            assert!(matches!(result, Err(RtError::Rejected(_))), "{case:?}: {result:?}");
        }
    }

    #[test]
    fn debug_never_shows_credentials() {
        let shown = format!("{:?}", offline_client());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn created_in_utc_display_is_exact() {
        let t =
            resolve_created(Some("Sat Nov 28 23:58:04 2026"), Some(naive("2026-11-28 23:58:05")))
                .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-28T23:58:04+00:00");
    }

    #[test]
    fn created_in_another_timezone_is_shifted_by_the_rounded_offset() {
        // US/Eastern in winter (UTC-5), India (UTC+5:30), Nepal (UTC+5:45).
        let cases = [
            ("Sat Nov 28 18:58:04 2026", "2026-11-28 23:58:04"),
            ("Sun Nov 29 05:28:04 2026", "2026-11-28 23:58:05"),
            ("Sun Nov 29 05:43:04 2026", "2026-11-28 23:58:04"),
        ];
        for (shown, tx) in cases {
            let t = resolve_created(Some(shown), Some(naive(tx))).unwrap();
            assert_eq!(t.to_rfc3339(), "2026-11-28T23:58:04+00:00", "{shown}");
        }
    }

    #[test]
    fn created_falls_back_to_the_transaction_time() {
        let tx = naive("2026-11-28 23:58:05");
        for shown in [None, Some("28/11/2026 23:58"), Some("Not set")] {
            let t = resolve_created(shown, Some(tx)).unwrap();
            assert_eq!(t.naive_utc(), tx, "{shown:?}");
        }
        // Too far from a quarter-hour offset to be the same moment.
        assert_eq!(
            resolve_created(Some("Sat Nov 28 23:48:04 2026"), Some(tx)).unwrap().naive_utc(),
            tx
        );
        assert!(resolve_created(None, None).is_err());
    }

    #[test]
    fn id_lists_count_everything_and_keep_one_page_whatever_the_chunking() {
        let body = b"ticket/9\nticket/8\n\nticket/7\nticket/6\nticket/5";
        for split in 0..body.len() {
            let mut page = IdPage::new(2, 2);
            page.feed(&body[..split]).unwrap();
            page.feed(&body[split..]).unwrap();
            assert_eq!(page.finish().unwrap(), (5, vec![7, 6]), "split at {split}");
        }
        let mut past_the_end = IdPage::new(10, 3);
        past_the_end.feed(body).unwrap();
        assert_eq!(past_the_end.finish().unwrap(), (5, vec![]));
        let mut bad = IdPage::new(0, 3);
        assert!(matches!(bad.feed(b"No matching results.\n"), Err(RtError::Malformed(_))));
        let mut long = IdPage::new(0, 3);
        assert!(matches!(long.feed(&[b'1'; 200]), Err(RtError::Malformed(_))));
    }

    #[test]
    fn tickets_read_from_forms() {
        let body = "id: ticket/7\nQueue: Support\nOwner: Nobody\nSubject: Owner: root\nStatus: new\nPriority: 0\n\
                    Requestors: a@example.com, b@example.com\nCreated: Sat Nov 28 23:58:04 2026\n";
        let form = &parse_forms(body)[0];
        let t = ticket_from_form(form, Some(naive("2026-11-28 23:58:04"))).unwrap();
        assert_eq!(
            (t.id, t.subject.as_str(), t.queue.as_str(), t.owner.as_str(), t.priority),
            (7, "Owner: root", "Support", "Nobody", 0)
        );
        assert_eq!(t.requestors, vec!["a@example.com".to_owned(), "b@example.com".to_owned()]);
    }

    #[test]
    fn comments_report_missing_and_forbidden_tickets() {
        assert!(matches!(
            comment_error(&["Ticket 9 does not exist.".into()]),
            Some(RtError::NotFound)
        ));
        assert!(matches!(
            comment_error(&["You are not allowed to display ticket 9.".into()]),
            Some(RtError::Forbidden(_))
        ));
        assert!(comment_error(&["1/1 (id/38/total)".into()]).is_none());
    }

    #[test]
    fn statuses_map_to_errors() {
        let err = |text: &str| parse_answer_text(text).err();
        assert!(err("RT/5.0.3+dfsg-3~deb12u6 200 Ok\n\nx").is_none());
        assert!(matches!(
            err("RT/5.0.3 401 Credentials required\n\nYour username or password is incorrect\n"),
            Some(RtError::Unauthenticated)
        ));
        assert!(
            matches!(err("RT/5.0.3 400 Bad request\n\nInvalid query: 'x'.\n"), Some(RtError::Rejected(m)) if m == "Invalid query: 'x'.")
        );
        assert!(matches!(
            err("RT/5.0.3 409 Syntax Error\n\n# Could not create ticket.\n"),
            Some(RtError::Rejected(_))
        ));
        assert!(matches!(
            err("RT/5.0.3 500 Server Error\n\nUnsupported object type."),
            Some(RtError::Server(500))
        ));
        assert!(matches!(err("<html>login</html>"), Some(RtError::Malformed(_))));
        assert!(err("").is_none(), "RT's silent 200");
    }

    #[test]
    fn body_parts_are_found_in_the_attachment_list() {
        let list = "1: (Unnamed) (text/plain / 1b),\n22: (Unnamed) (multipart/mixed / 0b), 23: (Unnamed) (text/plain / 1.2k),\n122: x.txt (text/plain / 3b)";
        assert!(is_body_part(list, 1));
        assert!(is_body_part(list, 23));
        assert!(!is_body_part(list, 22));
        assert!(!is_body_part(list, 2));
        assert!(!is_body_part(list, 122));
        assert_eq!(listed_attachment_ids("22: untitled (0b)\n23: untitled (5b)"), vec![22, 23]);
    }
}
