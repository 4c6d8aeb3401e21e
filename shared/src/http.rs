//! HTTP mapping for the API functions: the ONE place that turns errors into status codes
//! and JSON bodies `{"error": {"code", "message", "field"?}}`, plus request helpers
//! (content type, body size, query parameters). Clients never see internal detail: RT and
//! AWS failures are logged with their source here and answered with a fixed message.

use lambda_http::{
    http::{header, StatusCode},
    Body, Request, RequestExt, Response,
};
use serde::Serialize;
use serde_json::json;

use crate::{
    events::signature::SignatureError,
    model::ValidationError,
    rt::RtError,
    store::{CursorError, StoreError},
    usecases::Error as UseCaseError,
};

/// Largest request body accepted. A 64 KiB description can grow when JSON-escaped.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

/// Everything an API call can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field or the body is invalid.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// `Content-Type` is not JSON.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// The body is over [`MAX_BODY_BYTES`].
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    /// Bad `limit` or `cursor`.
    #[error(transparent)]
    Paging(#[from] CursorError),
    /// Nothing at this path (or no such ticket).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed {
        /// Methods the route accepts.
        allow: &'static str,
    },
    /// The `Idempotency-Key` header is malformed.
    #[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
    BadIdempotencyKey,
    /// A use case did not do it.
    #[error(transparent)]
    UseCase(#[from] UseCaseError),
    /// A webhook call whose signature is missing, wrong or outside its window.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A webhook call that was already accepted.
    #[error("this call was already accepted; a replay changes nothing")]
    Replayed,
    /// The API key may not do this (a queue outside its list, `requestor` without scope).
    #[error(transparent)]
    Tenant(#[from] crate::tenant::Refusal),
}

impl From<RtError> for ApiError {
    fn from(e: RtError) -> Self {
        ApiError::UseCase(e.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::UseCase(e.into())
    }
}

/// Status, machine-readable code, and the message a client may see.
struct Mapped {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn mapped(&self) -> Mapped {
        use UseCaseError as U;
        let m = |status, code, message: String| Mapped { status, code, message, field: None };
        let field = |field: &str, mapped: Mapped| Mapped { field: Some(field.into()), ..mapped };
        match self {
            ApiError::Validation(v) => Mapped {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                message: v.message.clone(),
                field: v.field.clone(),
            },
            ApiError::UnsupportedMediaType => {
                m(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", self.to_string())
            }
            ApiError::PayloadTooLarge => {
                m(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", self.to_string())
            }
            ApiError::Paging(CursorError::BadLimit) => {
                field("limit", m(StatusCode::BAD_REQUEST, "invalid_limit", self.to_string()))
            }
            ApiError::Paging(CursorError::BadCursor)
            | ApiError::UseCase(U::Store(StoreError::BadCursor(_))) => field(
                "cursor",
                m(StatusCode::BAD_REQUEST, "invalid_cursor", CursorError::BadCursor.to_string()),
            ),
            ApiError::NotFound(what) => m(StatusCode::NOT_FOUND, "not_found", what.clone()),
            ApiError::UseCase(U::PositionExpired(_)) => {
                field("since", m(StatusCode::GONE, "position_expired", self.to_string()))
            }
            ApiError::UseCase(U::TicketNotFound(_)) => {
                m(StatusCode::NOT_FOUND, "not_found", self.to_string())
            }
            ApiError::MethodNotAllowed { .. } => {
                m(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", self.to_string())
            }
            ApiError::BadIdempotencyKey => field(
                "Idempotency-Key",
                m(StatusCode::BAD_REQUEST, "invalid_idempotency_key", self.to_string()),
            ),
            ApiError::UseCase(U::IdempotencyKeyReused) => {
                m(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", self.to_string())
            }
            ApiError::UseCase(U::IdempotencyInProgress) => {
                m(StatusCode::CONFLICT, "idempotency_in_progress", self.to_string())
            }
            ApiError::Signature(SignatureError::Stale) => m(StatusCode::UNAUTHORIZED, "stale_signature", self.to_string()),
            ApiError::Signature(_) => m(StatusCode::UNAUTHORIZED, "invalid_signature", self.to_string()),
            ApiError::Replayed => m(StatusCode::CONFLICT, "replayed", self.to_string()),
            ApiError::UseCase(U::Rt(rt)) => rt_mapped(rt),
            ApiError::UseCase(U::Store(StoreError::Aws { .. })) => m(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "storage is unavailable; retry later (POST /tickets: with the same Idempotency-Key)"
                    .into(),
            ),
            ApiError::UseCase(
                U::Store(StoreError::Conflict(_) | StoreError::Corrupt(_)) | U::Internal(_) | U::Queue(_),
            ) => m(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error".into()),
            ApiError::Tenant(crate::tenant::Refusal::Queue(_)) => {
                Mapped { field: Some("queue".into()), ..m(StatusCode::FORBIDDEN, "queue_forbidden", self.to_string()) }
            }
            ApiError::Tenant(crate::tenant::Refusal::Requestor) => Mapped {
                field: Some("requestor".into()),
                ..m(StatusCode::FORBIDDEN, "requestor_forbidden", self.to_string())
            },
            ApiError::Tenant(crate::tenant::Refusal::SeveralQueues) => Mapped {
                field: Some("queue".into()),
                ..m(StatusCode::BAD_REQUEST, "invalid_request", self.to_string())
            },
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        self.mapped().status.as_u16()
    }

    /// The JSON error response. Server-side failures are logged here, with their source
    /// chain; client errors are logged at debug level.
    pub fn into_response(self) -> Response<Body> {
        let m = self.mapped();
        if m.status.is_server_error() {
            tracing::error!(status = m.status.as_u16(), code = m.code, error = %error_chain(&self), "request failed");
        } else {
            tracing::info!(status = m.status.as_u16(), code = m.code, error = %self, "request refused");
        }
        let mut error = json!({ "code": m.code, "message": m.message });
        if let Some(field) = m.field {
            error["field"] = json!(field);
        }
        let mut resp = json_response(m.status, &json!({ "error": error }));
        if let ApiError::MethodNotAllowed { allow } = self {
            if let Ok(v) = header::HeaderValue::from_str(allow) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        resp
    }
}

/// How each RT failure answers: RT's own refusal text for a refused request, a fixed
/// message for everything else.
fn rt_mapped(rt: &RtError) -> Mapped {
    let m = |status, code, message: String| Mapped { status, code, message, field: None };
    let unavailable = |message: &str| m(StatusCode::BAD_GATEWAY, "rt_unavailable", message.into());
    match rt {
        RtError::NotFound => m(StatusCode::NOT_FOUND, "not_found", "no such ticket".into()),
        RtError::Forbidden(msg) => m(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rt_refused",
            format!("RT refused the request: {msg}"),
        ),
        RtError::Rejected(msg) => m(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rt_rejected",
            format!("RT rejected the request: {msg}"),
        ),
        RtError::Timeout(_) => m(
            StatusCode::GATEWAY_TIMEOUT,
            "rt_timeout",
            "the ticket system (RT) did not answer in time; nothing was recorded".into(),
        ),
        RtError::Unauthenticated => {
            unavailable("the ticket system (RT) refused rt-relay's credentials")
        }
        RtError::Unreachable(_) | RtError::Server(_) | RtError::Malformed(_) => {
            unavailable("the ticket system (RT) could not be reached or failed")
        }
    }
}

/// `err: cause: cause ...`, for logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A JSON response with the given status. A body that cannot be encoded is an explicit
/// 500 (logged), never an empty or made-up success.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => raw_json_response(status, text),
        Err(e) => {
            ApiError::UseCase(UseCaseError::Internal(format!("cannot encode the answer: {e}")))
                .into_response()
        }
    }
}

/// A response whose body is already JSON text (an idempotent replay).
pub fn raw_json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp
}

/// Checks `Content-Type` and size and returns the body bytes.
pub fn json_body(req: &Request) -> Result<&[u8], ApiError> {
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" && !(mime.starts_with("application/") && mime.ends_with("+json"))
    {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(bytes)
}

/// The first value of a query parameter.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref().and_then(|q| q.first(name)).map(str::to_owned)
}

/// The `{name}` path parameter, as API Gateway (or the local gateway) set it from the
/// route; handlers never parse the path themselves.
pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters_ref().and_then(|p| p.first(name)).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(resp: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(resp.body().as_ref()).unwrap()
    }

    #[test]
    fn validation_error_names_the_field() {
        let resp = ApiError::from(ValidationError::field("title", "is required")).into_response();
        assert_eq!(resp.status(), 400);
        let b = body_of(&resp);
        assert_eq!(b["error"]["code"], "invalid_request");
        assert_eq!(b["error"]["field"], "title");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn rt_failures_are_5xx_without_detail() {
        let resp =
            ApiError::from(RtError::Malformed("secret internal detail".into())).into_response();
        assert_eq!(resp.status(), 502);
        assert!(!String::from_utf8_lossy(resp.body().as_ref()).contains("secret internal"));
        assert_eq!(
            ApiError::from(RtError::Timeout(std::time::Duration::from_secs(1))).status(),
            504
        );
        assert_eq!(ApiError::from(RtError::Unauthenticated).status(), 502);
    }

    #[test]
    fn store_failures_hide_the_aws_message() {
        let err = ApiError::from(StoreError::aws(
            "Query",
            std::io::Error::other("arn:aws:dynamodb:secret"),
        ));
        let resp = err.into_response();
        assert_eq!(resp.status(), 503);
        assert!(!String::from_utf8_lossy(resp.body().as_ref()).contains("arn:aws"));
    }

    #[test]
    fn method_not_allowed_sets_allow() {
        let resp = ApiError::MethodNotAllowed { allow: "GET" }.into_response();
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()[header::ALLOW], "GET");
    }
}
