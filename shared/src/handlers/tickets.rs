//! `POST /tickets`, `GET /tickets`, `GET /tickets/{id}`.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use lambda_http::{http::header, Body, Request, Response};
use sha2::{Digest, Sha256};
use tracing::{info, instrument, warn};

use crate::{
    config::Tables,
    http::{
        json_body, json_response, path_param, query_param, raw_json_response, require_method,
        ApiError,
    },
    model::{validate_queue_name, NewTicket, Notification, Ticket, ValidationError},
    rt::{client_from_config, RtClient, RtCreate, RtError, RtQuery, RtTicket},
    store::{
        dynamodb::{client_from_env, DynamoStore},
        Claim, IdempotencyCompletion, IdempotencyStore, Lease, PageRequest, StoreError,
        TicketFilter, TicketStore,
    },
    tenant::{relay_default_queue, scoped_idempotency_key, Caller},
};

/// Header that makes `POST /tickets` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// How long after a failed attempt a retry with the same key may take over.
const RETRY_GRACE: chrono::Duration = chrono::Duration::seconds(2);
/// Header set on an answer replayed from an earlier request with the same key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// `POST /tickets`: validate, create in RT, record ticket and notification in one
/// transaction, answer 201.
#[derive(Debug, Clone)]
pub struct PostTicket {
    rt: Arc<dyn RtClient>,
    tickets: Arc<dyn TicketStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    default_queue: String,
    /// How long a request holds an idempotency key; must outlast an RT create.
    lease: Duration,
    /// How long a request waits for a concurrent one with the same key before 409.
    wait_for_peer: Duration,
}

impl PostTicket {
    /// Wires the handler from its parts. `rt_timeout` sizes the idempotency lease.
    pub fn new(
        rt: Arc<dyn RtClient>,
        tickets: Arc<dyn TicketStore>,
        idempotency: Arc<dyn IdempotencyStore>,
        default_queue: String,
        rt_timeout: Duration,
    ) -> Self {
        // One RT create, one RT read and the DynamoDB writes, each bounded by the timeout.
        let lease = rt_timeout * 3 + Duration::from_secs(5);
        Self {
            rt,
            tickets,
            idempotency,
            default_queue,
            lease,
            wait_for_peer: Duration::from_secs(20),
        }
    }

    /// Changes how long a request waits for a concurrent one with the same key.
    pub fn with_wait_for_peer(mut self, wait: Duration) -> Self {
        self.wait_for_peer = wait;
        self
    }

    /// Builds everything from the environment once at cold start.
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let rt_config = crate::secret_store::rt_config_from_env().await?;
        let tables = Tables::from_env()?;
        let rt = client_from_config(&rt_config).map_err(|e| crate::config::ConfigError {
            var: "RT_API_URL",
            problem: e.to_string(),
        })?;
        let store = Arc::new(DynamoStore::new(client_from_env().await, tables));
        Ok(Self::new(rt, store.clone(), store, rt_config.default_queue, rt_config.timeout))
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        self.post(req).await.unwrap_or_else(ApiError::into_response)
    }

    async fn post(&self, req: Request) -> Result<Response<Body>, ApiError> {
        require_method(&req, "POST")?;
        let caller = Caller::from_http(&req, relay_default_queue());
        let key = idempotency_key(&req, caller.as_ref())?;
        let mut new = NewTicket::from_json(json_body(&req)?)?;
        if let Some(caller) = &caller {
            caller.check_requestor(new.requestor.as_deref())?;
            new.queue = Some(caller.create_queue(new.queue.as_deref(), &self.default_queue)?);
        }
        let Some(key) = key else {
            let ticket = self.create_and_record(&new, None, None).await?;
            return Ok(created(&ticket));
        };
        let body_hash = hex::encode(Sha256::digest(serde_json::to_vec(&new).unwrap_or_default()));
        let deadline = tokio::time::Instant::now() + self.wait_for_peer;
        let mut pause = Duration::from_millis(50);
        let (lease, rt_ticket_id, previous_attempt) = loop {
            let lease_for =
                chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(60));
            match self.idempotency.claim(&key, &body_hash, Utc::now(), lease_for).await? {
                Claim::Acquired { lease, rt_ticket_id, previous_attempt } => {
                    break (lease, rt_ticket_id, previous_attempt)
                }
                Claim::Completed { status, body } => {
                    // The stored answer is the ticket: a replay carries its Location too.
                    let location =
                        serde_json::from_str::<Ticket>(&body).ok().map(|t| ticket_location(t.id));
                    let mut resp = raw_json_response(status, body);
                    resp.headers_mut()
                        .insert(IDEMPOTENT_REPLAYED, header::HeaderValue::from_static("true"));
                    if let Some(loc) = location.and_then(|l| header::HeaderValue::from_str(&l).ok())
                    {
                        resp.headers_mut().insert(header::LOCATION, loc);
                    }
                    return Ok(resp);
                }
                Claim::Mismatch => return Err(ApiError::IdempotencyKeyReused),
                Claim::InProgress if tokio::time::Instant::now() + pause > deadline => {
                    return Err(ApiError::IdempotencyInProgress)
                }
                Claim::InProgress => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(400));
                }
            }
        };
        let outcome = match (rt_ticket_id, previous_attempt) {
            // An earlier attempt stopped before noting an RT id: it may still have created
            // the ticket (RT answered too late). Look in RT before creating another.
            (None, Some(since)) => match self.find_interrupted_create(&new, since).await {
                Ok(found) => self.create_and_record(&new, Some(&lease), found).await,
                Err(e) => Err(e.into()),
            },
            (id, _) => self.create_and_record(&new, Some(&lease), id).await,
        };
        match outcome {
            Ok(ticket) => Ok(created(&ticket)),
            Err(e) => {
                self.give_up_key(&lease, &e).await;
                Err(e)
            }
        }
    }

    /// After a failure under `lease`: a definite refusal by RT releases the key (nothing
    /// was created; the client may fix the request); any other failure keeps the record
    /// and lets a retry take over soon, finishing what this attempt started.
    async fn give_up_key(&self, lease: &Lease, error: &ApiError) {
        let refused = matches!(
            error,
            ApiError::Rt(
                RtError::Forbidden(_)
                    | RtError::Rejected(_)
                    | RtError::Unauthenticated
                    | RtError::NotFound
            )
        );
        let result = if refused {
            self.idempotency.release(lease).await
        } else {
            // A short grace lets an RT create that is merely slow commit before the retry
            // looks for it.
            self.idempotency.abandon(lease, Utc::now() + RETRY_GRACE).await
        };
        if let Err(e) = result {
            warn!(error = %crate::http::error_chain(&e), "could not hand the idempotency key back");
        }
    }

    /// A ticket an interrupted attempt created: same queue, subject and description,
    /// created since that attempt began (less a few seconds: RT keeps whole seconds and
    /// its clock may differ). The oldest match wins.
    async fn find_interrupted_create(
        &self,
        new: &NewTicket,
        since: chrono::DateTime<Utc>,
    ) -> Result<Option<u64>, RtError> {
        let queue = new.queue.clone().unwrap_or_else(|| self.default_queue.clone());
        let query =
            RtQuery { queue: Some(queue), subject: Some(new.title.clone()), ..RtQuery::default() };
        let page = self.rt.list(&query, 1, 20).await?;
        let since = since - chrono::Duration::seconds(5);
        for candidate in
            page.tickets.iter().rev().filter(|t| t.created >= since && t.subject == new.title)
        {
            if self.rt.description(candidate.id).await? == new.description {
                info!(
                    ticket_id = candidate.id,
                    "found the RT ticket an interrupted attempt created"
                );
                return Ok(Some(candidate.id));
            }
        }
        Ok(None)
    }

    /// Creates the RT ticket (unless an earlier attempt did) and records it.
    #[instrument(skip_all, fields(retrying = rt_ticket_id.is_some()))]
    async fn create_and_record(
        &self,
        new: &NewTicket,
        lease: Option<&Lease>,
        rt_ticket_id: Option<u64>,
    ) -> Result<Ticket, ApiError> {
        let queue = new.queue.clone().unwrap_or_else(|| self.default_queue.clone());
        let id = match rt_ticket_id {
            Some(id) => id,
            None => {
                let create = RtCreate {
                    queue,
                    subject: new.title.clone(),
                    content: new.description.clone(),
                    requestor: new.requestor.clone(),
                };
                self.rt.create(&create).await?
            }
        };
        info!(ticket_id = id, "RT ticket created");
        if let (Some(lease), None) = (lease, rt_ticket_id) {
            // If this fails the transaction below will most likely fail too; the client's
            // retry then cannot know the RT id. Logged so an operator can reconcile.
            if let Err(e) = self.idempotency.note_rt_ticket(lease, id).await {
                warn!(ticket_id = id, error = %crate::http::error_chain(&e), "could not note RT ticket on idempotency record");
            }
        }
        let now = Utc::now();
        let rt_ticket = self.rt.get(id).await?;
        let ticket = ticket_from_rt(
            &rt_ticket,
            new.description.clone(),
            new.requestor.clone(),
            self.rt.ticket_url(id),
            now,
        );
        let notification = Notification::ticket_created(&ticket, now);
        let completion = lease.map(|lease| IdempotencyCompletion {
            lease: lease.clone(),
            status: 201,
            body: serde_json::to_string(&ticket).unwrap_or_default(),
        });
        match self.tickets.record_created(&ticket, &notification, completion.as_ref()).await {
            // RT's event log (the webhook or the sync) recorded this ticket and its one
            // `ticket.created` first: finish this request without a second notification.
            Err(StoreError::Conflict(why)) => {
                info!(ticket_id = id, %why, "ticket already recorded from RT's events");
                self.tickets.complete_recorded(&ticket, completion.as_ref()).await?;
            }
            other => other?,
        }
        Ok(ticket)
    }
}

fn created(ticket: &Ticket) -> Response<Body> {
    let mut resp = json_response(201, ticket);
    if let Ok(loc) = header::HeaderValue::from_str(&ticket_location(ticket.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

/// The `Location` of a created ticket.
fn ticket_location(id: u64) -> String {
    format!("/tickets/{id}")
}

/// Reads and checks the `Idempotency-Key` header; the stored key is SHA-256 over the API
/// key's id and the header, so each API key has its own key space.
fn idempotency_key(req: &Request, caller: Option<&Caller>) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else { return Ok(None) };
    let raw = value.to_str().map_err(|_| ApiError::BadIdempotencyKey)?;
    if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadIdempotencyKey);
    }
    Ok(Some(scoped_idempotency_key(caller.map(|c| c.key_id.as_str()), raw)))
}

/// The record of an RT ticket: RT's fields, the stored (or RT's first) message and
/// requestor, read at `now`. Also used by the event ingest (`crate::events::ingest`).
pub(crate) fn ticket_from_rt(
    rt: &RtTicket,
    description: String,
    requestor: Option<String>,
    rt_url: String,
    now: chrono::DateTime<Utc>,
) -> Ticket {
    Ticket {
        id: rt.id,
        title: rt.subject.clone(),
        description,
        status: rt.status.clone(),
        queue: rt.queue.clone(),
        requestor: requestor.or_else(|| rt.requestors.first().cloned()),
        created_at: rt.created,
        updated_at: now,
        rt_url,
    }
}

/// `GET /tickets/{id}`: the current state from RT, refreshing the stored record.
#[derive(Debug, Clone)]
pub struct GetTicket {
    rt: Arc<dyn RtClient>,
    tickets: Arc<dyn TicketStore>,
}

impl GetTicket {
    /// Wires the handler from its parts.
    pub fn new(rt: Arc<dyn RtClient>, tickets: Arc<dyn TicketStore>) -> Self {
        Self { rt, tickets }
    }

    /// Builds everything from the environment once at cold start.
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let rt_config = crate::secret_store::rt_config_from_env().await?;
        let tables = Tables::from_env()?;
        let rt = client_from_config(&rt_config).map_err(|e| crate::config::ConfigError {
            var: "RT_API_URL",
            problem: e.to_string(),
        })?;
        Ok(Self::new(rt, Arc::new(DynamoStore::new(client_from_env().await, tables))))
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        self.get(req).await.unwrap_or_else(ApiError::into_response)
    }

    async fn get(&self, req: Request) -> Result<Response<Body>, ApiError> {
        require_method(&req, "GET")?;
        let raw = path_param(&req, "id").unwrap_or_default();
        let id =
            raw.parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                ValidationError::field("id", "ticket id must be a positive integer")
            })?;
        let rt_ticket = match self.rt.get(id).await {
            Err(RtError::NotFound) => return Err(ApiError::NotFound(format!("no ticket {id}"))),
            other => other?,
        };
        // A ticket outside the key's queues is answered as RT's missing ones are: the key
        // learns nothing about it, not even that it exists.
        if let Some(caller) = Caller::from_http(&req, relay_default_queue()) {
            if !caller.queues.allows(&rt_ticket.queue) {
                return Err(ApiError::NotFound(format!("no ticket {id}")));
            }
        }
        let stored = self.tickets.get_ticket(id).await?;
        let description = match &stored {
            Some(t) => t.description.clone(),
            None => self.rt.description(id).await?,
        };
        let requestor = stored.as_ref().and_then(|t| t.requestor.clone());
        let ticket =
            ticket_from_rt(&rt_ticket, description, requestor, self.rt.ticket_url(id), Utc::now());
        if let Some(old) = &stored {
            let changed = old.status != ticket.status
                || old.title != ticket.title
                || old.queue != ticket.queue;
            if changed {
                // A failed refresh must not hide RT's answer from the client.
                if let Err(e) = self.tickets.put_ticket(&ticket).await {
                    warn!(ticket_id = id, error = %crate::http::error_chain(&e), "could not refresh stored ticket");
                }
            }
        }
        Ok(json_response(200, &ticket))
    }
}

/// `GET /tickets`: stored tickets newest first, filtered by `status` and `queue`.
#[derive(Debug, Clone)]
pub struct ListTickets {
    tickets: Arc<dyn TicketStore>,
}

impl ListTickets {
    /// Wires the handler from its parts.
    pub fn new(tickets: Arc<dyn TicketStore>) -> Self {
        Self { tickets }
    }

    /// Builds everything from the environment once at cold start.
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let tables = Tables::from_env()?;
        Ok(Self::new(Arc::new(DynamoStore::new(client_from_env().await, tables))))
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        self.list(req).await.unwrap_or_else(ApiError::into_response)
    }

    async fn list(&self, req: Request) -> Result<Response<Body>, ApiError> {
        require_method(&req, "GET")?;
        let page = PageRequest::parse(
            query_param(&req, "limit").as_deref(),
            query_param(&req, "cursor").as_deref(),
        )?;
        let status = query_param(&req, "status").map(|s| validate_status(&s)).transpose()?;
        let mut queue = query_param(&req, "queue").map(|q| validate_queue_name(&q)).transpose()?;
        if let Some(caller) = Caller::from_http(&req, relay_default_queue()) {
            queue = caller.list_queue(queue)?;
        }
        let mut page = self.tickets.list_tickets(&TicketFilter { status, queue }, &page).await?;
        for ticket in &mut page.items {
            cut_to_excerpt(&mut ticket.description);
        }
        Ok(json_response(200, &page))
    }
}

/// Longest description a list item carries, in UTF-8 bytes: a page of 100 items then stays
/// far under Lambda's 6 MB response limit even when every character is one JSON escapes
/// (100 × (1 KiB × 6 + title and fields) < 1 MB); the full text is `GET /tickets/{id}`'s.
pub const LIST_DESCRIPTION_BYTES: usize = 1024;

/// Cuts `description` to at most [`LIST_DESCRIPTION_BYTES`], at a character boundary.
fn cut_to_excerpt(description: &mut String) {
    if description.len() > LIST_DESCRIPTION_BYTES {
        let mut end = LIST_DESCRIPTION_BYTES;
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        description.truncate(end);
    }
}

fn validate_status(raw: &str) -> Result<String, ValidationError> {
    let s = raw.trim();
    // The document's maxLength (64) counts the value as sent, surrounding white space too.
    if s.is_empty() || s.len() > 64 || raw.chars().count() > 64 || s.chars().any(char::is_control) {
        return Err(ValidationError::field(
            "status",
            "must be an RT status name such as new, open or resolved",
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod excerpt_tests {
    use super::*;

    #[test]
    fn list_descriptions_are_cut_at_a_character_boundary() {
        let mut long = "é".repeat(LIST_DESCRIPTION_BYTES); // 2 bytes each
        cut_to_excerpt(&mut long);
        assert_eq!(long.len(), LIST_DESCRIPTION_BYTES);
        let mut odd = format!("a{}", "€".repeat(LIST_DESCRIPTION_BYTES)); // 1 + 3 bytes each
        cut_to_excerpt(&mut odd);
        assert!(odd.len() <= LIST_DESCRIPTION_BYTES && odd.len() > LIST_DESCRIPTION_BYTES - 3);
        let mut short = "short".to_owned();
        cut_to_excerpt(&mut short);
        assert_eq!(short, "short");
    }
}
