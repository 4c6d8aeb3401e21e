//! Test support for rt-relay's tests against the real services: access to RT and moto,
//! a controllable `@connections` server, a fault-injecting proxy, the in-process local
//! stack and the gateway binary as a process, a loopback TLS front with its own CA, the OpenAPI document's checker, and the
//! benchmarks' shared pieces.

pub mod bench;
pub mod browser;
pub mod connections_server;
pub mod fault_proxy;
pub mod gateway_process;
pub mod openapi;
pub mod rt;
pub mod rt_actions;
pub mod services;
pub mod stack;
pub mod tls_proxy;
