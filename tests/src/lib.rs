//! placeholder
pub mod services;
