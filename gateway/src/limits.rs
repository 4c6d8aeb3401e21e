//! Lambda's and API Gateway's size limits, enforced where and how AWS enforces them, so
//! tests against the local gateway see what a deployment would do:
//!
//! - an HTTP API request body over 10 MB: API Gateway answers 413 before anything runs
//!   (here also before the authorizer, from `Content-Length`, so an oversized body is never
//!   read);
//! - an invocation event (the request as JSON) over Lambda's synchronous payload limit,
//!   6,291,556 bytes: the function is not invoked, 413 `{"message":"Request Too Long"}`;
//! - a function response over the same limit: Lambda fails the invocation
//!   (`Function.ResponseSizeTooLarge`) and the HTTP API answers 500
//!   `{"message":"Internal Server Error"}`, whatever the function meant to send.

use axum::{
    http::{header, HeaderMap, StatusCode},
    response::Response,
};
use tracing::error;

use crate::http_api::gateway_error;

/// Lambda's synchronous invocation payload limit, request and response ("6 MB"; the exact
/// figure its error message names).
pub const LAMBDA_PAYLOAD_BYTES: usize = 6_291_556;

/// The 413 API Gateway sends for a body over its limit, if `headers` declare one
/// (`Content-Length`); a body without a declared length is bounded while it is read.
pub fn declared_body_too_large(headers: &HeaderMap, limit: usize) -> Option<Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    (declared > limit as u64)
        .then(|| gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"))
}

/// The refusal of an invocation event over Lambda's payload limit, as Lambda refuses it.
pub fn oversized_event(event: &str) -> Option<Response> {
    (event.len() > LAMBDA_PAYLOAD_BYTES)
        .then(|| gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Too Long"))
}

/// The answer to a function response (the JSON the runtime posts back) over Lambda's
/// payload limit, as Lambda and then API Gateway give it.
pub fn oversized_function_response(
    response: &serde_json::Value,
    function: &str,
) -> Option<Response> {
    let size = serde_json::to_vec(response).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > LAMBDA_PAYLOAD_BYTES {
        error!(
            function,
            size,
            "Response payload size exceeded maximum allowed payload size ({LAMBDA_PAYLOAD_BYTES} bytes)"
        );
        return Some(gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"));
    }
    None
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use serde_json::json;

    use super::*;

    async fn body(resp: Response) -> String {
        String::from_utf8(to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_7_mb_function_response_is_api_gateways_500() {
        let big = json!({"statusCode": 200, "body": "x".repeat(7 * 1024 * 1024)});
        let resp = oversized_function_response(&big, "list-tickets").expect("refused");
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body(resp).await, r#"{"message":"Internal Server Error"}"#);
        let fits = json!({"statusCode": 200, "body": "x".repeat(6 * 1000 * 1000)});
        assert!(oversized_function_response(&fits, "list-tickets").is_none());
    }

    #[tokio::test]
    async fn an_event_over_the_lambda_limit_is_refused_with_413() {
        let resp = oversized_event(&"x".repeat(LAMBDA_PAYLOAD_BYTES + 1)).expect("refused");
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body(resp).await, r#"{"message":"Request Too Long"}"#);
        assert!(oversized_event(&"x".repeat(LAMBDA_PAYLOAD_BYTES)).is_none());
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_without_reading() {
        let mut headers = HeaderMap::new();
        assert!(declared_body_too_large(&headers, 10).is_none());
        headers.insert(header::CONTENT_LENGTH, "11".parse().unwrap());
        assert_eq!(declared_body_too_large(&headers, 10).unwrap().status(), 413);
        headers.insert(header::CONTENT_LENGTH, "10".parse().unwrap());
        assert!(declared_body_too_large(&headers, 10).is_none());
    }
}
