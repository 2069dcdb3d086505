//! Telemetry for aigw: logs, traces and metrics, kept off the request path's critical work.
//!
//! - [`Telemetry::init`] installs one `tracing` subscriber: log lines as text or JSON
//!   (`RUST_LOG` wins over the configured level) and, when an OTLP endpoint is configured,
//!   an OpenTelemetry layer that exports spans over OTLP/gRPC in batches from a background
//!   thread. With no endpoint, no exporter exists.
//! - [`ServerSpanLayer`] wraps the router: one server span per chat request (continuing an
//!   incoming W3C `traceparent`), the request counters, and one access-log line.
//! - [`AttemptSpanLayer`] sits below the balancer: one GenAI client span per target
//!   attempt, and the per-target metrics.
//! - [`metrics()`] holds the Prometheus series served at `GET /metrics`; the live target
//!   gauges are read at scrape time from the [`RouteGauges`] a route table publishes.
//!
//! A leaf of the crate graph: it takes plain data (route names, target labels, the
//! algorithm's name, a [`LiveTargets`] reader) and knows no config or balancer type.
#![forbid(unsafe_code)]

mod attempt;
mod metrics;
mod record;
mod server;
mod setup;
#[cfg(test)]
mod test_log;

pub use attempt::{AttemptSpan, AttemptSpanLayer, TargetDescriptor};
pub use metrics::{
    CONTENT_TYPE as METRICS_CONTENT_TYPE, EventCounter, LiveTargets, Metrics, Protocol,
    PublishedRoutes, RouteGauges, Status, metrics,
};
pub use opentelemetry_sdk::trace::SdkTracerProvider;
pub use record::{record_http_route, record_requested_model, record_route};
pub use server::{ClientLeft, ServerFuture, ServerSpan, ServerSpanLayer};
pub use setup::{
    LogStyle, Telemetry, TelemetryError, dispatch, dispatch_to, otlp_endpoint, tracer_provider,
};

/// The `tracing` target of aigw's request and attempt spans. Log output leaves it out: the
/// spans exist for traces, and the access log carries the same facts in one line.
pub const SPAN_TARGET: &str = "aigw::span";

/// Installs the process-wide subscriber for log lines only, exporting no traces; a
/// subscriber already installed is kept. [`Telemetry::init`] is the full set-up.
pub fn init(level: &str, style: LogStyle) {
    let _ = Telemetry::init(level, style, None);
}
