//! HTTP for `POST /tickets`, `GET /tickets`, `GET /tickets/{id}`: requests become use-case
//! inputs, results become answers, errors go through [`ApiError`].

use lambda_http::{
    http::{header, StatusCode},
    Body, Request, Response,
};

use super::ApiHandler;
use crate::{
    http::{json_body, json_response, path_param, query_param, raw_json_response, ApiError},
    model::{validate_queue_name, validate_status_name, NewTicket, Ticket, ValidationError},
    store::{PageRequest, StoreError, TicketFilter, TicketQuery},
    tenant::{relay_default_queue, Caller},
    usecases::{
        create_ticket::{CreateTicket, Created, IdempotencyKey},
        feeds::TicketFeed,
        refresh_ticket::RefreshTicket,
        Error,
    },
};

/// Header that makes `POST /tickets` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Header set on an answer replayed from an earlier request with the same key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// `POST /tickets` over [`CreateTicket`].
#[derive(Debug, Clone)]
pub struct PostTicket {
    create: CreateTicket,
}

impl PostTicket {
    /// Over the use case.
    pub fn new(create: CreateTicket) -> Self {
        Self { create }
    }
}

#[async_trait::async_trait]
impl ApiHandler for PostTicket {
    async fn answer(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_http(&req, relay_default_queue());
        let key = idempotency_key(&req, caller.as_ref())?;
        let mut new = NewTicket::from_json(json_body(&req)?)?;
        if let Some(caller) = &caller {
            caller.check_requestor(new.requestor.as_deref())?;
            new.queue =
                Some(caller.create_queue(new.queue.as_deref(), self.create.default_queue())?);
        }
        match self.create.create(&new, key.as_ref()).await? {
            Created::New(ticket) => Ok(created(&ticket)),
            Created::Replayed { status, body, ticket_id } => {
                let status = StatusCode::from_u16(status).map_err(|_| {
                    Error::Store(StoreError::Corrupt(format!("stored answer has status {status}")))
                })?;
                let mut resp = raw_json_response(status, body);
                resp.headers_mut()
                    .insert(IDEMPOTENT_REPLAYED, header::HeaderValue::from_static("true"));
                if let Some(id) = ticket_id {
                    set_location(&mut resp, id);
                }
                Ok(resp)
            }
        }
    }
}

fn created(ticket: &Ticket) -> Response<Body> {
    let mut resp = json_response(StatusCode::CREATED, ticket);
    set_location(&mut resp, ticket.id);
    resp
}

/// `Location: /tickets/{id}` (digits only, so always a valid header value).
fn set_location(resp: &mut Response<Body>, id: u64) {
    if let Ok(loc) = header::HeaderValue::from_str(&format!("/tickets/{id}")) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
}

/// Reads and checks the `Idempotency-Key` header; its stored form is scoped by the API key's
/// id, so each API key has its own key space.
fn idempotency_key(
    req: &Request,
    caller: Option<&Caller>,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else { return Ok(None) };
    let raw = value.to_str().map_err(|_| ApiError::BadIdempotencyKey)?;
    IdempotencyKey::parse_scoped(caller.map(|c| c.key_id.as_str()), raw)
        .map(Some)
        .ok_or(ApiError::BadIdempotencyKey)
}

/// `GET /tickets/{id}` over [`RefreshTicket`].
#[derive(Debug, Clone)]
pub struct GetTicket {
    refresh: RefreshTicket,
}

impl GetTicket {
    /// Over the use case.
    pub fn new(refresh: RefreshTicket) -> Self {
        Self { refresh }
    }
}

#[async_trait::async_trait]
impl ApiHandler for GetTicket {
    async fn answer(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let id = path_param(&req, "id")
            .and_then(|raw| raw.parse::<u64>().ok())
            .filter(|id| *id > 0)
            .ok_or_else(|| ValidationError::field("id", "ticket id must be a positive integer"))?;
        let ticket = self.refresh.get(id).await?;
        // A ticket outside the key's queues is answered as RT's missing ones are: the key
        // learns nothing about it, not even that it exists.
        if let Some(caller) = Caller::from_http(&req, relay_default_queue()) {
            if !caller.queues.allows(&ticket.queue) {
                return Err(ApiError::NotFound(format!("no ticket {id}")));
            }
        }
        Ok(json_response(StatusCode::OK, &ticket))
    }
}

/// `GET /tickets` over [`TicketFeed`]: `limit`, `cursor`, `status`, `queue`.
#[derive(Debug, Clone)]
pub struct ListTickets {
    feed: TicketFeed,
}

impl ListTickets {
    /// Over the use case.
    pub fn new(feed: TicketFeed) -> Self {
        Self { feed }
    }
}

#[async_trait::async_trait]
impl ApiHandler for ListTickets {
    async fn answer(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let page = page_request(&req)?;
        let status = query_param(&req, "status").map(|s| validate_status_name(&s)).transpose()?;
        let mut queue = query_param(&req, "queue").map(|q| validate_queue_name(&q)).transpose()?;
        if let Some(caller) = Caller::from_http(&req, relay_default_queue()) {
            queue = caller.list_queue(queue)?;
        }
        let query = TicketQuery { filter: TicketFilter { status, queue }, page };
        let mut page = self.feed.list(&query).await?;
        for ticket in &mut page.items {
            cut_to_excerpt(&mut ticket.description);
        }
        Ok(json_response(StatusCode::OK, &page))
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

/// `limit` and `cursor` of a list request.
pub(crate) fn page_request(req: &Request) -> Result<PageRequest, ApiError> {
    Ok(PageRequest::parse(
        query_param(req, "limit").as_deref(),
        query_param(req, "cursor").as_deref(),
    )?)
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;
    use crate::{
        handlers::HttpHandler,
        model::Notification,
        rt::memory::MemoryRt,
        store::{
            memory::MemoryStore, Claim, Creation, IdempotencyCompletion, IdempotencyStore, Term,
            TicketStore,
        },
        usecases::create_ticket::IdempotencyTiming,
    };

    fn post_ticket(store: &Arc<MemoryStore>) -> PostTicket {
        let rt = Arc::new(MemoryRt::new());
        let timing = IdempotencyTiming::for_rt_timeout(Duration::from_secs(1));
        PostTicket::new(CreateTicket::new(
            rt,
            store.clone(),
            store.clone(),
            "General".into(),
            timing,
        ))
    }

    fn post(body: &str, key: &str) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://api.test/tickets")
            .header("content-type", "application/json")
            .header(IDEMPOTENCY_KEY, key)
            .body(Body::Text(body.to_owned()))
            .unwrap()
    }

    #[tokio::test]
    async fn a_replay_carries_the_stored_answer_its_location_and_the_replay_header() {
        let post_ticket = post_ticket(&Arc::new(MemoryStore::new()));
        let first = post_ticket.handle(post(r#"{"title":"x"}"#, "k")).await;
        let again = post_ticket.handle(post(r#"{"title":"x"}"#, "k")).await;
        assert_eq!((first.status(), again.status()), (StatusCode::CREATED, StatusCode::CREATED));
        assert_eq!(again.headers()[header::LOCATION], "/tickets/1");
        assert_eq!(again.headers()[IDEMPOTENT_REPLAYED], "true");
        assert!(!first.headers().contains_key(IDEMPOTENT_REPLAYED));
        assert_eq!(first.body().as_ref(), again.body().as_ref());
    }

    #[tokio::test]
    async fn a_stored_answer_with_an_impossible_status_is_an_error_not_a_200() {
        let store = Arc::new(MemoryStore::new());
        let post_ticket = post_ticket(&store);
        let body = r#"{"title":"x"}"#;
        let new = NewTicket::from_json(body.as_bytes()).unwrap();
        let hash =
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(serde_json::to_vec(&new).unwrap()));
        let key = IdempotencyKey::parse("bad").unwrap();
        let claim = store
            .claim(key.hashed(), &hash, Term::of(chrono::Utc::now(), chrono::Duration::seconds(60)))
            .await
            .unwrap();
        let Claim::Acquired { lease, .. } = claim else { panic!("{claim:?}") };
        let ticket = Ticket {
            id: 9,
            title: "x".into(),
            description: String::new(),
            status: "new".into(),
            queue: "General".into(),
            requestor: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            rt_url: "u".into(),
        };
        let completion = IdempotencyCompletion { lease, status: 42, body: "{}".into() };
        let note = Notification::ticket_created(&ticket, chrono::Utc::now());
        store.record_created(&Creation::new(&ticket, &note).completing(&completion)).await.unwrap();
        let resp = post_ticket.handle(post(body, "bad")).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn the_ticket_id_comes_only_from_the_path_parameters() {
        let store = Arc::new(MemoryStore::new());
        let get = GetTicket::new(RefreshTicket::new(Arc::new(MemoryRt::new()), store));
        let req = lambda_http::http::Request::builder()
            .uri("https://api.test/tickets/1")
            .body(Body::Empty)
            .unwrap();
        let resp = get.handle(req).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "no routing from the path");
    }
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
