//! The functions' handler logic, testable without the Lambda runtime. Each API struct is
//! built once at cold start (from the environment, or from parts in tests and the local
//! gateway) and answers every request itself: errors are mapped in [`crate::http`].

pub mod authorizer;
pub mod notifications;
pub mod push;
pub mod tickets;
pub mod ws;
