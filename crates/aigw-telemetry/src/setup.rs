//! The process's `tracing` subscriber: log lines (text or JSON) and, when an OTLP endpoint
//! is configured, an OpenTelemetry layer exporting spans over OTLP/gRPC in batches.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Dispatch;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::SPAN_TARGET;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogStyle {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (a malformed endpoint, usually).
    #[error("OTLP exporter for {endpoint}: {source}")]
    Exporter {
        /// The endpoint it was built for.
        endpoint: String,
        /// What the exporter said.
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The OTLP endpoint to export to: aigw's own setting (`AIGW_OTLP_ENDPOINT`) first, then
/// the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and `OTEL_EXPORTER_OTLP_ENDPOINT`.
/// `None` (and no exporter) when none is set or `OTEL_SDK_DISABLED=true`.
pub fn otlp_endpoint(configured: Option<&str>) -> Option<String> {
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    configured
        .map(str::to_owned)
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").ok())
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|e| !e.trim().is_empty())
}

/// A tracer provider exporting over OTLP/gRPC to `endpoint` from a background thread, in
/// batches: ending a span only queues it (dropped when the queue is full), so a slow or
/// absent collector never holds up a request. Call inside a Tokio runtime that outlives
/// it: the gRPC channel's tasks run there. `OTEL_SERVICE_NAME` (default `aigw`),
/// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]` and `OTEL_BSP_*` apply.
pub fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("aigw");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The subscriber aigw runs with: log lines filtered by `RUST_LOG` (else `level`), with
/// the AWS SDK's crates held at info whatever either asks for (see [`secret_cap`]), and
/// spans sent to `tracer` when given. Installed by [`Telemetry::init`]; tests install it
/// per thread with `tracing::dispatcher::set_default`.
pub fn dispatch(level: &str, style: LogStyle, tracer: Option<&SdkTracerProvider>) -> Dispatch {
    // Colour codes only help a person at a terminal; in a log file they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    build(env_filter(level), style, tracer, std::io::stderr, ansi)
}

/// [`dispatch`] with log lines written to `writer` instead of stderr.
pub fn dispatch_to<W>(
    level: &str,
    style: LogStyle,
    tracer: Option<&SdkTracerProvider>,
    writer: W,
) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build(env_filter(level), style, tracer, writer, false)
}

/// `RUST_LOG` when set and valid, else `level`, else info.
fn env_filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

fn build<W>(
    filter: EnvFilter,
    style: LogStyle,
    tracer: Option<&SdkTracerProvider>,
    writer: W,
    ansi: bool,
) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Span fields are for traces; the access log line carries the same facts, so log
    // lines neither pay for formatting spans nor repeat them.
    let filter = match format!("{SPAN_TARGET}=off").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let filter = filter.and(secret_cap());
    let log: Box<dyn Layer<Registry> + Send + Sync> = match style {
        LogStyle::Text => fmt.with_filter(filter).boxed(),
        LogStyle::Json => fmt.json().with_filter(filter).boxed(),
    };
    let otel = tracer.map(|provider| {
        // Source locations, threads, busy/idle times and the tracing target would add
        // attributes (and clock reads on every poll) that say nothing about a request; no
        // OpenTelemetry-native library here reads the active context, so entering a span
        // need not activate one.
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("aigw"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_context_activation(false)
            .with_filter(trace_filter())
    });
    Dispatch::new(Registry::default().with(log).with(otel))
}

/// The most the AWS SDK's crates (every target starting `aws_`) may log: info. At debug
/// `aws_smithy_runtime` prints the resolved identity with its access key id, and at
/// trace the signed request and the model's prompts and answers; a log file is no place
/// for either, so no `RUST_LOG` can turn them on.
fn secret_cap() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("aws_", LevelFilter::INFO)
}

/// What becomes an OpenTelemetry span: aigw's request and attempt spans, the AWS SDK's
/// operation span, and warnings; not the transport crates' inner workings, and never the
/// exporter's own activity, which would feed itself.
fn trace_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target(SPAN_TARGET, LevelFilter::INFO)
        .with_target("aigw_balancer", LevelFilter::DEBUG)
        .with_target("aws_sdk_bedrockruntime", LevelFilter::DEBUG)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF)
        .with_target("tonic", LevelFilter::OFF)
        .with_target("h2", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
}

/// The running telemetry; [`Telemetry::shutdown`] flushes spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the process-wide subscriber, exporting to `otlp_endpoint` when given (see
    /// [`otlp_endpoint`] for the usual way to pick it). With no endpoint nothing exports and
    /// no background thread runs. `RUST_LOG` wins over `level`. If a subscriber is already
    /// installed (tests, embedding) it is kept.
    pub fn init(
        level: &str,
        style: LogStyle,
        otlp_endpoint: Option<&str>,
    ) -> Result<Telemetry, TelemetryError> {
        let provider = otlp_endpoint.map(tracer_provider).transpose()?;
        let dispatch = dispatch(level, style, provider.as_ref());
        // An error means a subscriber is already set; keeping it is right.
        let _ = tracing::dispatcher::set_global_default(dispatch);
        Ok(Telemetry { provider })
    }

    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still queued and stops the exporter. Blocks for at most the
    /// exporter's timeout, on a blocking thread so the runtime keeps driving the export.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(error) = provider.shutdown() {
                    tracing::warn!(%error, "flushing traces at shutdown failed");
                }
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::PoisonError;

    use super::*;
    use crate::test_log::Captured;

    #[test]
    fn the_aws_sdk_logs_at_most_info_even_at_trace() {
        let captured = Captured::default();
        // As RUST_LOG=trace would ask.
        let dispatch = build(
            EnvFilter::new("trace"),
            LogStyle::Text,
            None,
            captured.clone(),
            false,
        );
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator::endpoints", "identity AKIDDEBUG");
            tracing::trace!(target: "aws_sigv4::http_request::sign", "signing AKIDTRACE");
            tracing::info!(target: "aws_config::meta::credentials::chain", "loaded credentials");
            tracing::trace!(target: "aigw_server::admission", "our own trace");
        });
        let logged =
            String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(PoisonError::into_inner))
                .into_owned();
        assert!(!logged.contains("AKIDDEBUG"), "{logged}");
        assert!(!logged.contains("AKIDTRACE"), "{logged}");
        assert!(logged.contains("loaded credentials"), "{logged}");
        assert!(logged.contains("our own trace"), "{logged}");
    }
}
