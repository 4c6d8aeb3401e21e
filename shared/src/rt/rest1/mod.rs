//! The RT REST 1.0 adapter: text forms at `{base}REST/1.0/`. HTTP is always 200; the real
//! status is the body's first line. The adapter is split by responsibility:
//!
//! * this module: [`Rest1Client`] and its [`RtClient`] methods, one per RT operation. A new
//!   endpoint is a method here (or in a private `impl Rest1Client` helper below the trait
//!   impl) that calls [`Rest1Client::forms`] or [`Rest1Client::post`] and hands the answer to
//!   a parser in `parse`/`ticket`;
//! * `transport`: credentials, RT's session cookie, the POST and the status-line check;
//! * `parse`: status lines, forms and what a refusal means (no I/O);
//! * [`form`]: the injection-proof encoder every submitted form is built with, so no value
//!   can add or change a field;
//! * `ticket`: ticket fields, UTC creation times and message parts from forms (no I/O);
//! * `id_list`: the streamed id list of a search (no I/O).
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

use std::{collections::HashMap, fmt, sync::Mutex};

use chrono::NaiveDateTime;
use http::HeaderValue;
use tracing::{debug, instrument, warn};

use self::{
    id_list::IdPage,
    parse::{comment_error, raw_status, ParsedForm},
    ticket::{
        create_form, created_id, form_ticket_id, is_body_part, listed_attachment_ids,
        parse_create_times, ticket_from_form, TICKET_FIELDS,
    },
    transport::Credentials,
};
use super::{
    answer::MAX_ANSWER_BYTES,
    endpoint::RtEndpoint,
    paging::PageWindow,
    ticket_sql::{ids_sql, ticket_sql},
    RtClient, RtCreate, RtError, RtPage, RtQuery, RtTicket,
};
use crate::config::RtConfig;

pub mod form;
mod id_list;
pub mod parse;
mod ticket;
mod transactions;
mod transport;

/// Speaks RT REST 1.0. Reuses RT's session cookie when RT sets one: each login through
/// `user`/`pass` otherwise leaves a new session on RT's disk. The credentials still go with
/// every request, so an expired or lost session only costs one fresh login.
pub struct Rest1Client {
    endpoint: RtEndpoint,
    credentials: Credentials,
    session: Mutex<Option<HeaderValue>>,
    names: transactions::Names,
}

impl fmt::Debug for Rest1Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rest1Client")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.credentials.kind())
            .finish_non_exhaustive()
    }
}

impl Rest1Client {
    /// Builds the adapter. With [`crate::config::RtAuth::Basic`] the name and password go as
    /// `user`/`pass` fields; with [`crate::config::RtAuth::Token`] as `Authorization: token`.
    pub fn new(config: RtConfig) -> Result<Self, RtError> {
        Ok(Self {
            endpoint: RtEndpoint::new(&config, "REST/1.0/")?,
            credentials: Credentials::new(&config.auth)?,
            session: Mutex::new(None),
            names: Mutex::new(HashMap::new()),
        })
    }
}

#[async_trait::async_trait]
impl RtClient for Rest1Client {
    #[instrument(level = "debug", skip_all, fields(rt.api = "rest1", queue = %ticket.queue))]
    async fn create(&self, ticket: &RtCreate) -> Result<u64, RtError> {
        let content = create_form(ticket)?;
        let forms = self.forms("ticket/new", &[("content", content.as_str())]).await?;
        let id = created_id(forms)?;
        debug!(ticket.id = id, "created");
        Ok(id)
    }

    #[instrument(level = "debug", skip(self), fields(rt.api = "rest1"))]
    async fn get(&self, id: u64) -> Result<RtTicket, RtError> {
        let path = format!("ticket/{id}/show");
        let (params, ids) = ([("fields", TICKET_FIELDS)], [id]);
        let (forms, times) = tokio::join!(self.forms(&path, &params), self.create_times(&ids));
        let forms = forms?;
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
            tokio::join!(self.forms(&history_path, &history_params), self.forms(&list_path, &[]));
        let create_parts = refused_by_comments(history?)?
            .into_iter()
            .find_map(|f| f.get("Attachments").map(listed_attachment_ids))
            .unwrap_or_default();
        let list = refused_by_comments(list?)?;
        let all_parts = list.iter().find_map(|f| f.get("Attachments")).unwrap_or_default();
        match create_parts.into_iter().find(|&aid| is_body_part(all_parts, aid)) {
            Some(aid) => self.attachment_content(id, aid).await,
            None => Ok(String::new()),
        }
    }

    #[instrument(level = "debug", skip(self, query), fields(rt.api = "rest1"))]
    async fn list(&self, query: &RtQuery, page: u32, per_page: u32) -> Result<RtPage, RtError> {
        let window = PageWindow::new(page, per_page);
        let sql = ticket_sql(query)?;
        let (total, ids) = self.ticket_ids(&sql, window.skip(), window.per_page).await?;
        if ids.is_empty() {
            return Ok(window.page_of(Vec::new(), total));
        }
        let page_sql = ids_sql(&ids);
        let params = [
            ("query", page_sql.as_str()),
            ("orderby", "-id"),
            ("format", "l"),
            ("fields", TICKET_FIELDS),
        ];
        let (found, times) =
            tokio::join!(self.forms("search/ticket", &params), self.create_times(&ids));
        let forms: HashMap<u64, ParsedForm> =
            found?.into_iter().filter_map(|form| Some((form_ticket_id(&form)?, form))).collect();
        // A ticket gone between the two requests is left out rather than failing the page.
        let tickets = ids
            .iter()
            .filter_map(|id| {
                forms.get(id).map(|form| ticket_from_form(form, times.get(id).copied()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(window.page_of(tickets, total))
    }

    fn ticket_url(&self, id: u64) -> String {
        self.endpoint.ticket_url(id)
    }
}

/// The forms of an answer, or the error their `#` comments report
/// (`# Ticket 7 does not exist.`).
fn refused_by_comments(forms: Vec<ParsedForm>) -> Result<Vec<ParsedForm>, RtError> {
    match forms.iter().find_map(|f| comment_error(&f.comments)) {
        Some(err) => Err(err),
        None => Ok(forms),
    }
}

/// Endpoint helpers the [`RtClient`] methods share.
impl Rest1Client {
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
        parse_create_times(&text)
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
            match resp.chunk().await.map_err(|e| self.endpoint.transport_error(e))? {
                Some(chunk) => head.extend_from_slice(&chunk),
                None => break,
            }
        }
        if head.is_empty() {
            return Ok((0, Vec::new()));
        }
        let mut page = IdPage::new(skip, limit);
        match raw_status(&head) {
            (Some(200), rest) => page.feed(rest)?,
            (Some(_), _) => {
                // Not 200: the rest is RT's (short) message.
                head.extend_from_slice(&self.endpoint.read(&mut resp, 64 * 1024).await?);
                return Err(self.refusal(&head));
            }
            (None, _) => return Err(self.refusal(&head)),
        }
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.endpoint.transport_error(e))? {
            page.feed(&chunk)?;
        }
        page.finish()
    }

    /// Reads an attachment's content byte for byte (`.../content` answers `status\n\n<raw>`).
    async fn attachment_content(&self, ticket: u64, aid: u64) -> Result<String, RtError> {
        let mut resp =
            self.post(&format!("ticket/{ticket}/attachments/{aid}/content"), &[]).await?;
        let raw = self.endpoint.read(&mut resp, MAX_ANSWER_BYTES).await?;
        // RT prints nothing at all for an empty attachment, nor for the content "0" (false
        // to Perl); the attachment's own form tells the two apart.
        if raw.is_empty() {
            let forms = self.forms(&format!("ticket/{ticket}/attachments/{aid}"), &[]).await?;
            let zero = forms.iter().any(|f| f.get("Content") == Some("0"));
            return Ok(if zero { "0".to_owned() } else { String::new() });
        }
        let rest = match raw_status(&raw) {
            (Some(200), rest) => rest,
            _ => return Err(self.refusal(&raw)),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::{RtApi, RtAuth},
        rt::offline_config,
        secret::Secret,
    };

    /// A client whose every request would fail as Unreachable: refusals must come first.
    fn offline_client() -> Rest1Client {
        let auth = RtAuth::Basic { username: "u".into(), password: Secret::new("hunter2") };
        Rest1Client::new(offline_config(RtApi::Rest1, auth)).unwrap()
    }

    #[tokio::test]
    async fn given_input_rest1_cannot_carry_when_creating_then_it_is_rejected_before_any_request() {
        let rt = offline_client();
        let base = RtCreate::new("General", "s", "c");
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
}
