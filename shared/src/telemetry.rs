//! Tracing set-up. The Lambda functions use the runtime's own ([`init_lambda`]), so the
//! template's `LoggingConfig` takes effect: `AWS_LAMBDA_LOG_LEVEL` (`LogLevel`) sets the
//! level and `AWS_LAMBDA_LOG_FORMAT=JSON` gives JSON lines. The local gateway and the
//! command-line tools use [`init`]: level from `RUST_LOG`, text unless
//! `AWS_LAMBDA_LOG_FORMAT=JSON`. Spans never carry secrets: handlers instrument with
//! `skip_all` or explicit fields, and credentials are [`crate::secret::Secret`]s.

use tracing_subscriber::{fmt, EnvFilter};

/// The Lambda runtime's subscriber (`lambda_runtime::tracing::init_default_subscriber`):
/// level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; JSON when
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON`. Call once, first thing in a function's `main`.
pub fn init_lambda() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Installs the global subscriber for the gateway and tools once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).without_time().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}
