//! rt-relay's shared crate: everything the Lambda functions and the local gateway have in
//! common. Each module is one boundary (RT, DynamoDB, the WebSocket fan-out, HTTP) or pure
//! domain logic (validation, paging cursors, notification building) that does no I/O.

pub mod auth;
pub mod aws;
pub mod config;
pub mod events;
pub mod fanout;
pub mod feed;
pub mod handlers;
pub mod http;
pub mod model;
pub mod net;
pub mod routes;
pub mod rt;
pub mod secret;
pub mod secret_store;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod usecases;
pub mod warmup;
pub mod wiring;
