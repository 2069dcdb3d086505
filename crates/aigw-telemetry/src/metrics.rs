//! The process's Prometheus metrics, encoded in the OpenMetrics text format for `GET /metrics`.

use std::fmt;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bucket bounds in seconds: model calls take from tens of milliseconds (a cached or tiny
/// answer) to a minute (Kong's default read_timeout), so the buckets span both.
const LATENCY_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Which front end a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/JSON.
    Http,
    /// gRPC.
    Grpc,
}

impl EncodeLabelValue for Protocol {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

impl Protocol {
    /// `http` or `grpc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

/// A request's final status as the client saw it: an HTTP status or a gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// An HTTP status code.
    Http(u16),
    /// A gRPC status code (0 is OK).
    Grpc(u8),
    /// The client went away before the answer was ready (nginx's 499).
    Cancelled,
}

impl Status {
    /// Whether the gateway, not the client, failed: what makes a server span an error.
    pub fn is_server_error(self) -> bool {
        match self {
            Status::Http(code) => code >= 500,
            // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
            // are the server's fault per the OpenTelemetry RPC conventions.
            Status::Grpc(code) => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
            Status::Cancelled => false,
        }
    }
}

const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Http(code) => write!(f, "{code}"),
            Status::Grpc(code) => match GRPC_CODES.get(usize::from(*code)) {
                Some(name) => f.write_str(name),
                None => write!(f, "{code}"),
            },
            Status::Cancelled => f.write_str("499"),
        }
    }
}

impl EncodeLabelValue for Status {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_fmt(encoder, format_args!("{self}"))
    }
}

/// Labels of `aigw_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) protocol: Protocol,
    pub(crate) route: Arc<str>,
    pub(crate) target: Arc<str>,
    pub(crate) status: Status,
}

/// Labels of `aigw_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ProtocolRouteLabels {
    pub(crate) protocol: Protocol,
    pub(crate) route: Arc<str>,
}

/// Labels of `aigw_requests_in_flight`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ProtocolLabels {
    pub(crate) protocol: Protocol,
}

/// Labels of per-target series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct TargetLabels {
    pub(crate) route: Arc<str>,
    pub(crate) target: Arc<str>,
}

/// Labels of `aigw_attempt_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct AttemptLabels {
    pub(crate) route: Arc<str>,
    pub(crate) target: Arc<str>,
    /// `ok` or the error kind's code (`rate_limited`, `upstream_error`, …).
    pub(crate) outcome: &'static str,
}

/// Labels of `aigw_tokens_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct TokenLabels {
    pub(crate) route: Arc<str>,
    pub(crate) target: Arc<str>,
    /// `input` or `output`, as the GenAI conventions' `gen_ai.token.type`.
    pub(crate) r#type: &'static str,
}

/// Labels of `aigw_failovers_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub(crate) route: Arc<str>,
}

/// Every metric aigw exports. One per process (see [`metrics`]): a scrape endpoint shows
/// the whole process, and routes register their series as they are built.
pub struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) request_duration: Histograms<ProtocolRouteLabels>,
    pub(crate) in_flight: Family<ProtocolLabels, Gauge>,
    pub(crate) attempt_duration: Histograms<AttemptLabels>,
    pub(crate) attempts_in_flight: Family<TargetLabels, Gauge>,
    pub(crate) time_to_first_token: Histograms<TargetLabels>,
    pub(crate) tokens: Family<TokenLabels, Counter>,
    pub(crate) failovers: Family<RouteLabels, Counter>,
    health: Arc<TargetHealth>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("aigw");
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests answered, by front end, route, serving target and status",
            requests.clone(),
        );
        let request_duration: Histograms<ProtocolRouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "request_duration",
            "Client-visible time to the answer (a stream's head), by front end and route",
            Unit::Seconds,
            request_duration.clone(),
        );
        let in_flight = Family::default();
        registry.register(
            "requests_in_flight",
            "Requests being served now",
            in_flight.clone(),
        );
        let attempt_duration: Histograms<AttemptLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "attempt_duration",
            "Time one target took for one attempt (a stream's whole body), by outcome",
            Unit::Seconds,
            attempt_duration.clone(),
        );
        let attempts_in_flight = Family::default();
        registry.register(
            "attempts_in_flight",
            "Attempts on each target now, streams until their end",
            attempts_in_flight.clone(),
        );
        let time_to_first_token: Histograms<TargetLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "time_to_first_token",
            "Streams: time from sending the attempt to the first generated text",
            Unit::Seconds,
            time_to_first_token.clone(),
        );
        let tokens = Family::default();
        registry.register(
            "tokens",
            "Tokens as the target reported them, by type (input, output)",
            tokens.clone(),
        );
        let failovers = Family::default();
        registry.register(
            "failovers",
            "Attempts that followed a failed attempt of the same request",
            failovers.clone(),
        );
        let health = Arc::new(TargetHealth::default());
        registry.register_collector(Box::new(health.clone()));
        Metrics {
            health,
            registry,
            requests,
            request_duration,
            in_flight,
            attempt_duration,
            attempts_in_flight,
            time_to_first_token,
            tokens,
            failovers,
        }
    }

    /// Reports `aigw_target_healthy{route, target}` at each scrape as `healthy(index)` says
    /// (1 or 0), for the targets of `route` in config order. Read at scrape time because
    /// health changes without a request (a tripped target recovers when its fail_timeout
    /// ends). Watching a route name again replaces the earlier watch.
    pub fn watch_target_health(
        &self,
        route: &str,
        targets: impl IntoIterator<Item = String>,
        healthy: impl Fn(usize) -> bool + Send + Sync + 'static,
    ) {
        let source = HealthSource {
            route: route.to_owned(),
            targets: targets.into_iter().collect(),
            healthy: Box::new(healthy),
        };
        let mut sources = self
            .health
            .sources
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        sources.retain(|s| s.route != route);
        sources.push(source);
    }

    /// The OpenMetrics text exposition of every series, as [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Where one route's target health is read from.
struct HealthSource {
    route: String,
    targets: Vec<String>,
    healthy: Box<dyn Fn(usize) -> bool + Send + Sync>,
}

/// `aigw_target_healthy`, computed at scrape time from the watched routes.
#[derive(Default)]
struct TargetHealth {
    sources: RwLock<Vec<HealthSource>>,
}

impl fmt::Debug for TargetHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TargetHealth")
    }
}

impl Collector for TargetHealth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let sources = self.sources.read().unwrap_or_else(PoisonError::into_inner);
        if sources.is_empty() {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(
            "target_healthy",
            "1 while the balancer may send the target traffic, 0 while health checks keep it out",
            None,
            MetricType::Gauge,
        )?;
        for source in sources.iter() {
            for (index, target) in source.targets.iter().enumerate() {
                let labels = [
                    ("route", source.route.as_str()),
                    ("target", target.as_str()),
                ];
                let value = i64::from((source.healthy)(index));
                ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics. Global on purpose: one process has one scrape endpoint, and a
/// global keeps the route and server constructors unchanged.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let metrics = Metrics::new();
        let labels = TargetLabels {
            route: Arc::from("r"),
            target: Arc::from("bedrock/m"),
        };
        metrics
            .time_to_first_token
            .get_or_create(&labels)
            .observe(0.2);
        metrics
            .requests
            .get_or_create(&RequestLabels {
                protocol: Protocol::Grpc,
                route: Arc::from("r"),
                target: Arc::from("bedrock/m"),
                status: Status::Grpc(14),
            })
            .inc();
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"aigw_requests_total{protocol="grpc",route="r",target="bedrock/m",status="UNAVAILABLE"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"aigw_time_to_first_token_seconds_bucket{le="0.25",route="r",target="bedrock/m"} 1"#)
                || text.contains(r#"aigw_time_to_first_token_seconds_bucket{route="r",target="bedrock/m",le="0.25"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn target_health_is_read_at_each_scrape() {
        use std::sync::atomic::{AtomicBool, Ordering};

        let metrics = Metrics::new();
        assert!(!metrics.encode().contains("aigw_target_healthy"));
        let tripped = Arc::new(AtomicBool::new(false));
        let reading = tripped.clone();
        metrics.watch_target_health("r", ["bedrock/a".into(), "bedrock/b".into()], move |i| {
            i == 0 || !reading.load(Ordering::Relaxed)
        });
        let text = metrics.encode();
        assert!(
            text.contains(r#"aigw_target_healthy{route="r",target="bedrock/b"} 1"#),
            "{text}"
        );
        tripped.store(true, Ordering::Relaxed);
        let text = metrics.encode();
        assert!(
            text.contains(r#"aigw_target_healthy{route="r",target="bedrock/a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"aigw_target_healthy{route="r",target="bedrock/b"} 0"#),
            "{text}"
        );
    }
}
