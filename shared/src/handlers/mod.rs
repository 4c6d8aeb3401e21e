//! The functions' transports, testable without the Lambda runtime: each handler turns its
//! event (HTTP request, WebSocket event, stream batch, authorizer event) into a use case's
//! input ([`crate::usecases`]) and the result into the answer; HTTP errors are mapped in
//! [`crate::http`]. Routing is API Gateway's (or the local gateway's) job: handlers read
//! path parameters from the event and never look at the method or the path.

pub mod authorizer;
pub mod board;
pub mod notifications;
pub mod push;
pub mod push_worker;
pub mod tickets;
pub mod ws;

use lambda_http::{Body, Request, Response};

use crate::http::ApiError;

/// An HTTP API function's handler, as its Lambda `main` runs it and as the local gateway
/// calls it: a request in, a response out (errors are already responses).
#[async_trait::async_trait]
pub trait HttpHandler: Send + Sync + std::fmt::Debug {
    /// Answers one request.
    async fn handle(&self, req: Request) -> Response<Body>;
}

/// An HTTP handler whose failures are [`ApiError`]s: it is an [`HttpHandler`] that answers
/// them through the one error-to-status map.
#[async_trait::async_trait]
pub trait ApiHandler: Send + Sync + std::fmt::Debug {
    /// Answers one request, or fails with the error to answer instead.
    async fn answer(&self, req: Request) -> Result<Response<Body>, ApiError>;
}

#[async_trait::async_trait]
impl<T: ApiHandler> HttpHandler for T {
    async fn handle(&self, req: Request) -> Response<Body> {
        self.answer(req).await.unwrap_or_else(ApiError::into_response)
    }
}

/// [`HttpHandler`] for handlers whose inherent `handle` already has that shape.
macro_rules! http_handlers {
    ($($handler:ty),* $(,)?) => {$(
        #[async_trait::async_trait]
        impl HttpHandler for $handler {
            async fn handle(&self, req: Request) -> Response<Body> {
                <$handler>::handle(self, req).await
            }
        }
    )*};
}

http_handlers!(board::Board, crate::events::webhook::RtWebhook);
