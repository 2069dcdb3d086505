//! The process's Prometheus metrics, encoded in the OpenMetrics text format for `GET /metrics`.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Labels of `aigw_requested_models_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RequestedModelLabels {
    pub(crate) route: Arc<str>,
    pub(crate) requested_model: Arc<str>,
}

/// How many distinct requested model names get a series of their own; clients choose the
/// names, so past this many the rest share [`OTHER_MODELS`].
const REQUESTED_MODEL_SERIES: usize = 64;

/// The `requested_model` label of names past [`REQUESTED_MODEL_SERIES`].
const OTHER_MODELS: &str = "(other)";

/// Labels of `aigw_failovers_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub(crate) route: Arc<str>,
}

/// Every metric aigw exports. One per process (see [`metrics`]): a scrape endpoint shows
/// the whole process. Routes register their counters as they are built; the gauges of
/// their targets' live state are read at scrape time from what [`PublishedRoutes`] holds.
pub struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    requested_models: Family<RequestedModelLabels, Counter>,
    /// The names with a series of their own; read on every request, written only when a
    /// name is new.
    requested_model_names: std::sync::RwLock<std::collections::HashSet<Arc<str>>>,
    pub(crate) request_duration: Histograms<ProtocolRouteLabels>,
    pub(crate) in_flight: Family<ProtocolLabels, Gauge>,
    pub(crate) attempt_duration: Histograms<AttemptLabels>,
    pub(crate) time_to_first_token: Histograms<TargetLabels>,
    pub(crate) tokens: Family<TokenLabels, Counter>,
    pub(crate) failovers: Family<RouteLabels, Counter>,
    prompt_guard_denials: Family<RouteLabels, Counter>,
    semantic_embedding_failures: Family<RouteLabels, Counter>,
    accept_errors: Counter,
    ratelimit_redis_errors: Counter,
    live: Arc<LiveGauges>,
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
        let requested_models = Family::default();
        registry.register(
            "requested_models",
            "Requests by route and the model the client asked for (the serving target's is in \
             aigw_requests_total); names past the first 64 are counted as (other)",
            requested_models.clone(),
        );
        let prompt_guard_denials = Family::default();
        registry.register(
            "prompt_guard_denials",
            "Requests Kong's ai-prompt-guard refused (400), by route",
            prompt_guard_denials.clone(),
        );
        let semantic_embedding_failures = Family::default();
        registry.register(
            "semantic_embedding_failures",
            "Prompts the semantic algorithm could not embed (error or timeout), which fell back, by route",
            semantic_embedding_failures.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Connections the listener failed to accept (out of file descriptors, aborted)",
            accept_errors.clone(),
        );
        let ratelimit_redis_errors = Counter::default();
        registry.register(
            "ratelimit_redis_errors",
            "Redis calls of ai-rate-limiting-advanced that failed; the limit then counts locally",
            ratelimit_redis_errors.clone(),
        );
        let live = Arc::new(LiveGauges::default());
        registry.register_collector(Box::new(live.clone()));
        Metrics {
            live,
            accept_errors,
            ratelimit_redis_errors,
            registry,
            requests,
            request_duration,
            in_flight,
            attempt_duration,
            time_to_first_token,
            tokens,
            failovers,
            prompt_guard_denials,
            semantic_embedding_failures,
            requested_models,
            requested_model_names: Default::default(),
        }
    }

    /// Counts one request to `route` that asked for `model`.
    pub(crate) fn count_requested_model(&self, route: &Arc<str>, model: &Arc<str>) {
        self.requested_models
            .get_or_create(&RequestedModelLabels {
                route: route.clone(),
                requested_model: self.requested_model_label(model),
            })
            .inc();
    }

    /// `model` itself while fewer than [`REQUESTED_MODEL_SERIES`] names have a series,
    /// else [`OTHER_MODELS`].
    fn requested_model_label(&self, model: &Arc<str>) -> Arc<str> {
        let known = self
            .requested_model_names
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(model);
        if known {
            model.clone()
        } else {
            let mut names = self
                .requested_model_names
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if names.contains(model) || names.len() < REQUESTED_MODEL_SERIES {
                names.insert(model.clone());
                model.clone()
            } else {
                Arc::from(OTHER_MODELS)
            }
        }
    }

    /// `route`'s count of prompts the semantic algorithm could not embed, as
    /// `aigw_semantic_embedding_failures_total`; asking for it makes the series (at 0).
    pub fn semantic_embedding_failures(&self, route: &str) -> EventCounter {
        EventCounter(
            self.semantic_embedding_failures
                .get_or_create(&RouteLabels {
                    route: Arc::from(route),
                })
                .clone(),
        )
    }

    /// `route`'s count of requests ai-prompt-guard refused, as
    /// `aigw_prompt_guard_denials_total`; asking for it makes the series (at 0).
    pub fn prompt_guard_denials(&self, route: &str) -> EventCounter {
        EventCounter(
            self.prompt_guard_denials
                .get_or_create(&RouteLabels {
                    route: Arc::from(route),
                })
                .clone(),
        )
    }

    /// A new, empty set of published routes, for one route table: what it
    /// [publishes](PublishedRoutes::publish) shows at `/metrics` until it publishes again
    /// or is dropped.
    pub fn published_routes(&self) -> PublishedRoutes {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        PublishedRoutes {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            gauges: self.live.clone(),
        }
    }

    /// Counts one failed `accept` on the listener, as `aigw_accept_errors_total`.
    pub fn count_accept_error(&self) {
        self.accept_errors.inc();
    }

    /// Counts one failed Redis call of a rate limit, as
    /// `aigw_ratelimit_redis_errors_total`.
    pub fn count_ratelimit_redis_error(&self) {
        self.ratelimit_redis_errors.inc();
    }

    /// The OpenMetrics text exposition of every series, as [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One series of a counter of events, shared with the registry: counting it shows at
/// `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct EventCounter(Counter);

impl EventCounter {
    /// Counts one event.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// Reads a route's live target state at scrape time: whether each target takes traffic and
/// how many attempts run on it. The balancer keeps that state; the server adapts it, so
/// neither depends on the other.
pub trait LiveTargets: Send + Sync {
    /// Whether target `index` may get traffic now (not taken out by the health check).
    fn healthy(&self, index: usize) -> bool;
    /// Attempts running on target `index` now, streams until their end.
    fn in_flight(&self, index: usize) -> u64;
}

/// One route's live gauges: `aigw_target_healthy` and `aigw_attempts_in_flight` for each of
/// its targets, read from `live` at each scrape.
pub struct RouteGauges {
    route: String,
    /// Each distinct target label and the indexes that carry it: targets sharing a label
    /// are one series.
    series: Vec<(String, Vec<usize>)>,
    live: Arc<dyn LiveTargets>,
}

impl RouteGauges {
    /// The gauges of the route named `route`, whose targets carry `labels` in index order.
    pub fn new(
        route: &str,
        labels: impl IntoIterator<Item = String>,
        live: Arc<dyn LiveTargets>,
    ) -> Self {
        let mut series: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, label) in labels.into_iter().enumerate() {
            match series.iter_mut().find(|(l, _)| *l == label) {
                Some((_, indexes)) => indexes.push(index),
                None => series.push((label, vec![index])),
            }
        }
        RouteGauges {
            route: route.to_owned(),
            series,
            live,
        }
    }

    /// 1 while any target with the label takes traffic.
    fn healthy(&self, indexes: &[usize]) -> i64 {
        i64::from(indexes.iter().any(|&i| self.live.healthy(i)))
    }

    fn in_flight(&self, indexes: &[usize]) -> i64 {
        let sum: u64 = indexes.iter().map(|&i| self.live.in_flight(i)).sum();
        i64::try_from(sum).unwrap_or(i64::MAX)
    }
}

/// The routes of one route table as `/metrics` shows their live gauges.
///
/// [`publish`](Self::publish) replaces the whole set, so a table put in force after a
/// reload takes the place of the old one and routes it dropped disappear; a table that
/// never came into force (a reload that failed) publishes nothing, leaving the old
/// routes watching the old, live state. Dropping it removes its routes. One per route
/// table rather than one per process, so that several gateways in one process (tests,
/// benchmarks) each keep their own.
pub struct PublishedRoutes {
    id: u64,
    gauges: Arc<LiveGauges>,
}

impl PublishedRoutes {
    /// Shows `routes`, and only them, for this table from the next scrape on.
    pub fn publish(&self, routes: Vec<RouteGauges>) {
        let mut sets = self.gauges.write();
        sets.retain(|(id, _)| *id != self.id);
        // Newest first: if two tables in one process name the same route, the newer wins.
        sets.insert(0, (self.id, routes));
    }
}

impl Drop for PublishedRoutes {
    fn drop(&mut self) {
        self.gauges.write().retain(|(id, _)| *id != self.id);
    }
}

impl fmt::Debug for PublishedRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishedRoutes")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// `aigw_target_healthy` and `aigw_attempts_in_flight`, computed at scrape time from the
/// published routes, newest set first.
#[derive(Default)]
struct LiveGauges {
    sets: RwLock<Vec<(u64, Vec<RouteGauges>)>>,
}

impl LiveGauges {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<(u64, Vec<RouteGauges>)>> {
        self.sets.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every published route once, by name, the newest set's winning.
    fn routes(sets: &[(u64, Vec<RouteGauges>)]) -> Vec<&RouteGauges> {
        let mut seen = HashSet::new();
        sets.iter()
            .flat_map(|(_, routes)| routes)
            .filter(|route| seen.insert(route.route.as_str()))
            .collect()
    }
}

impl fmt::Debug for LiveGauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LiveGauges")
    }
}

impl Collector for LiveGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let sets = self.sets.read().unwrap_or_else(PoisonError::into_inner);
        let routes = LiveGauges::routes(&sets);
        if routes.is_empty() {
            return Ok(());
        }
        type Read = fn(&RouteGauges, &[usize]) -> i64;
        let gauges: [(&str, &str, Read); 2] = [
            (
                "target_healthy",
                "1 while the balancer may send the target traffic, 0 while health checks keep it out",
                RouteGauges::healthy,
            ),
            (
                "attempts_in_flight",
                // With the period `Registry::register` adds, as when this was registered.
                "Attempts on each target now, streams until their end.",
                RouteGauges::in_flight,
            ),
        ];
        for (name, help, read) in gauges {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for route in &routes {
                for (target, indexes) in &route.series {
                    let labels = [("route", route.route.as_str()), ("target", target.as_str())];
                    ConstGauge::new(read(route, indexes)).encode(metric.encode_family(&labels)?)?;
                }
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
    fn requested_model_names_past_the_cap_share_one_series() {
        let metrics = Metrics::new();
        let name = |i: usize| -> Arc<str> { Arc::from(format!("model-{i}")) };
        for i in 0..REQUESTED_MODEL_SERIES {
            assert_eq!(metrics.requested_model_label(&name(i)), name(i));
        }
        let late = name(REQUESTED_MODEL_SERIES);
        assert_eq!(&*metrics.requested_model_label(&late), OTHER_MODELS);
        // A name that already has a series keeps it.
        assert_eq!(metrics.requested_model_label(&name(3)), name(3));
    }

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
        metrics.count_accept_error();
        let text = metrics.encode();
        assert!(text.contains("aigw_accept_errors_total 1"), "{text}");
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

    /// Two targets whose health and in-flight counts a test sets.
    #[derive(Default)]
    struct Fake {
        tripped: std::sync::atomic::AtomicBool,
        in_flight: AtomicU64,
    }

    impl LiveTargets for Fake {
        fn healthy(&self, index: usize) -> bool {
            index == 0 || !self.tripped.load(Ordering::Relaxed)
        }

        fn in_flight(&self, index: usize) -> u64 {
            if index == 1 {
                self.in_flight.load(Ordering::Relaxed)
            } else {
                0
            }
        }
    }

    fn gauges(route: &str, live: &Arc<Fake>) -> RouteGauges {
        let labels = ["bedrock/a".to_owned(), "bedrock/b".to_owned()];
        RouteGauges::new(route, labels, live.clone())
    }

    #[test]
    fn target_gauges_are_read_at_each_scrape() {
        let metrics = Metrics::new();
        assert!(!metrics.encode().contains("aigw_target_healthy"));
        let live = Arc::new(Fake::default());
        let published = metrics.published_routes();
        published.publish(vec![gauges("r", &live)]);
        let text = metrics.encode();
        assert!(
            text.contains(r#"aigw_target_healthy{route="r",target="bedrock/b"} 1"#),
            "{text}"
        );
        live.tripped.store(true, Ordering::Relaxed);
        live.in_flight.store(3, Ordering::Relaxed);
        let text = metrics.encode();
        assert!(
            text.contains(r#"aigw_target_healthy{route="r",target="bedrock/a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"aigw_target_healthy{route="r",target="bedrock/b"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"aigw_attempts_in_flight{route="r",target="bedrock/b"} 3"#),
            "{text}"
        );
        assert!(
            text.contains("# TYPE aigw_attempts_in_flight gauge"),
            "{text}"
        );
    }

    #[test]
    fn publishing_replaces_the_whole_set_and_dropping_removes_it() {
        let metrics = Metrics::new();
        let live = Arc::new(Fake::default());
        let table = metrics.published_routes();
        table.publish(vec![gauges("kept", &live), gauges("dropped", &live)]);
        let other = metrics.published_routes();
        other.publish(vec![gauges("elsewhere", &live)]);
        assert!(metrics.encode().contains(r#"route="dropped""#));

        table.publish(vec![gauges("kept", &live)]);
        let text = metrics.encode();
        assert!(!text.contains(r#"route="dropped""#), "{text}");
        assert!(
            text.contains(r#"aigw_target_healthy{route="kept""#),
            "{text}"
        );
        assert!(
            text.contains(r#"aigw_attempts_in_flight{route="elsewhere""#),
            "another table's routes stay: {text}"
        );

        drop(table);
        let text = metrics.encode();
        assert!(!text.contains(r#"route="kept""#), "{text}");
        assert!(text.contains(r#"route="elsewhere""#), "{text}");
    }

    #[test]
    fn targets_sharing_a_label_are_one_series() {
        let metrics = Metrics::new();
        let live = Arc::new(Fake::default());
        live.tripped.store(true, Ordering::Relaxed);
        live.in_flight.store(2, Ordering::Relaxed);
        let labels = ["bedrock/a".to_owned(), "bedrock/a".to_owned()];
        let published = metrics.published_routes();
        published.publish(vec![RouteGauges::new("twins", labels, live)]);
        let text = metrics.encode();
        assert_eq!(
            text.matches(r#"aigw_target_healthy{route="twins""#).count(),
            1,
            "{text}"
        );
        assert!(
            text.contains(r#"aigw_target_healthy{route="twins",target="bedrock/a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"aigw_attempts_in_flight{route="twins",target="bedrock/a"} 2"#),
            "{text}"
        );
    }
}
