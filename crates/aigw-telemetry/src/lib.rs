//! Logging and tracing set-up for aigw: one `tracing` subscriber for the process, text or
//! JSON, filtered by `RUST_LOG` when set and by the configured level otherwise.
#![forbid(unsafe_code)]

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogStyle {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Installs the process-wide subscriber. `RUST_LOG` wins over `level` so an operator can
/// turn up one module without touching the config. Calling it twice keeps the first.
pub fn init(level: &str, style: LogStyle) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // An error means a subscriber is already set (tests, embedding); keeping it is right.
    let _ = match style {
        LogStyle::Text => builder.try_init(),
        LogStyle::Json => builder.json().try_init(),
    };
}
