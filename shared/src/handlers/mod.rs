//! The functions' transports, testable without the Lambda runtime: each handler turns its
//! event (HTTP request, WebSocket event, stream batch, authorizer event) into a use case's
//! input ([`crate::usecases`]) and the result into the answer; HTTP errors are mapped in
//! [`crate::http`]. Routing is API Gateway's (or the local gateway's) job: handlers read
//! path parameters from the event and never look at the method or the path.

pub mod authorizer;
pub mod notifications;
pub mod push;
pub mod tickets;
pub mod ws;
