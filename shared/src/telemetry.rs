//! Tracing set-up shared by every binary: JSON lines on Lambda
//! (`AWS_LAMBDA_LOG_FORMAT=JSON`), human-readable text elsewhere; level from `RUST_LOG`.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once; later calls do nothing.
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
