//! Test support for rt-relay's tests against the real services: access to RT and moto,
//! a controllable `@connections` server, and the in-process local stack.

pub mod connections_server;
pub mod rt;
pub mod services;
pub mod stack;
