//! The server span, access-log line and request metrics of every chat request, as a tower
//! layer over the whole HTTP + gRPC router.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use prometheus_client::metrics::gauge::Gauge;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::SPAN_TARGET;
use crate::metrics::{ProtocolLabels, ProtocolRouteLabels, RequestLabels, metrics};
use crate::record::{self, RequestRecord};
use crate::{Protocol, Status};

/// The gRPC service whose calls are chat requests; health checks and reflection are not
/// traced or logged, as they would drown the requests that matter.
const CHAT_SERVICE: &str = "aigw.v1.ChatService";

/// Wraps each chat request (HTTP or gRPC) in a server span that continues an incoming W3C
/// `traceparent`, counts it, and writes one access-log line when its answer (or a stream's
/// head) is ready. `GET /health`, `GET /metrics` and gRPC health and reflection pass through
/// untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerSpanLayer;

impl<S> Layer<S> for ServerSpanLayer {
    type Service = ServerSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerSpan { inner }
    }
}

/// See [`ServerSpanLayer`].
#[derive(Debug, Clone)]
pub struct ServerSpan<S> {
    inner: S,
}

/// The future of a [`ServerSpan`] call.
pub type ServerFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, RB> Service<http::Request<B>> for ServerSpan<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = ServerFuture<http::Response<RB>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(protocol) = chat_protocol(&request) else {
            return Box::pin(self.inner.call(request));
        };
        let finish = Finish::start(protocol, &request);
        let record = finish.record.clone();
        let span = finish.span.clone();
        let answer = span.in_scope(|| self.inner.call(request));
        let answer = record::scope(record, answer).instrument(span);
        Box::pin(async move {
            let result = answer.await;
            finish.finish(match &result {
                Ok(response) => status_of(protocol, response),
                Err(_) => Status::Http(500),
            });
            result
        })
    }
}

/// `Some` for the requests worth a span: chat calls, not probes or reflection.
fn chat_protocol<B>(request: &http::Request<B>) -> Option<Protocol> {
    let path = request.uri().path();
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        let service = path.trim_start_matches('/').split('/').next()?;
        return (service == CHAT_SERVICE).then_some(Protocol::Grpc);
    }
    let probe = request.method() == http::Method::GET && (path == "/health" || path == "/metrics");
    (!probe).then_some(Protocol::Http)
}

/// Marks an answer written for a client that had already gone away (it broke off its
/// request body): the request is logged and counted as nginx's 499, not as the status the
/// answer carries.
#[derive(Debug, Clone, Copy)]
pub struct ClientLeft;

fn status_of<B>(protocol: Protocol, response: &http::Response<B>) -> Status {
    if response.extensions().get::<ClientLeft>().is_some() {
        return Status::Cancelled;
    }
    match protocol {
        Protocol::Http => Status::Http(response.status().as_u16()),
        // A failed unary call is "trailers-only": its grpc-status is in the headers. Without
        // one the call succeeded so far; a stream that fails later says so in its trailers,
        // after this span ended.
        Protocol::Grpc => Status::Grpc(
            response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        ),
    }
}

/// Reads W3C trace context from request headers.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// One request's telemetry from start to end; ends as cancelled when dropped unfinished
/// (the client went away).
struct Finish {
    protocol: Protocol,
    span: tracing::Span,
    record: Arc<RequestRecord>,
    started: Instant,
    method: http::Method,
    path: String,
    in_flight: Gauge,
    done: bool,
}

impl Finish {
    fn start<B>(protocol: Protocol, request: &http::Request<B>) -> Finish {
        let path = request.uri().path();
        let span = match protocol {
            Protocol::Http => tracing::info_span!(
                target: SPAN_TARGET,
                "request",
                otel.name = request.method().as_str(),
                otel.kind = "server",
                otel.status_code = Empty,
                otel.status_description = Empty,
                http.request.method = request.method().as_str(),
                url.path = path,
                http.route = Empty,
                http.response.status_code = Empty,
                aigw.route = Empty,
                aigw.target = Empty,
                aigw.attempts = Empty,
                gen_ai.request.model = Empty,
                gen_ai.response.model = Empty,
            ),
            Protocol::Grpc => tracing::info_span!(
                target: SPAN_TARGET,
                "request",
                otel.name = path.trim_start_matches('/'),
                otel.kind = "server",
                otel.status_code = Empty,
                otel.status_description = Empty,
                rpc.system = "grpc",
                rpc.service = CHAT_SERVICE,
                rpc.method = path.rsplit('/').next().unwrap_or_default(),
                rpc.grpc.status_code = Empty,
                aigw.route = Empty,
                aigw.target = Empty,
                aigw.attempts = Empty,
                gen_ai.request.model = Empty,
                gen_ai.response.model = Empty,
            ),
        };
        // Only worth the header scan when a tracer is listening.
        if !span.is_disabled() && request.headers().contains_key("traceparent") {
            let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
            // An error means no OpenTelemetry layer; the span then stays local.
            let _ = span.set_parent(parent);
        }
        let in_flight = metrics()
            .in_flight
            .get_or_create(&ProtocolLabels { protocol })
            .clone();
        in_flight.inc();
        Finish {
            protocol,
            span,
            record: Arc::default(),
            started: Instant::now(),
            method: request.method().clone(),
            path: path.to_owned(),
            in_flight,
            done: false,
        }
    }

    fn finish(mut self, status: Status) {
        self.done = true;
        self.report(status);
    }

    fn report(&mut self, status: Status) {
        self.in_flight.dec();
        let latency = self.started.elapsed();
        let seen = self.record.snapshot();
        let span = &self.span;
        match status {
            Status::Http(code) => {
                span.record("http.response.status_code", i64::from(code));
            }
            Status::Grpc(code) => {
                span.record("rpc.grpc.status_code", i64::from(code));
            }
            Status::Cancelled => {
                span.record("otel.status_description", "the client went away");
            }
        }
        if status.is_server_error() {
            span.record("otel.status_code", "error");
        }
        if let Some(route) = &seen.route {
            span.record("aigw.route", &**route);
            if self.protocol == Protocol::Http && !span.is_disabled() {
                let route = seen.http_route.as_deref().unwrap_or(self.path.as_str());
                span.record("http.route", route);
                // The exported span has started, so `otel.name` would no longer rename it.
                span.context()
                    .span()
                    .update_name(format!("{} {route}", self.method));
            }
        }
        if let Some(target) = &seen.target {
            span.record("aigw.target", &**target);
        }
        if let Some(model) = &seen.model {
            span.record("gen_ai.response.model", &**model);
        }
        if let Some(model) = &seen.requested_model {
            span.record("gen_ai.request.model", &**model);
        }
        if seen.attempts > 0 {
            span.record("aigw.attempts", i64::from(seen.attempts));
        }

        let route = seen.route.clone().unwrap_or_else(|| Arc::from(""));
        let target = seen.target.clone().unwrap_or_else(|| Arc::from(""));
        let m = metrics();
        m.requests
            .get_or_create(&RequestLabels {
                protocol: self.protocol,
                route: route.clone(),
                target: target.clone(),
                status,
            })
            .inc();
        m.request_duration
            .get_or_create(&ProtocolRouteLabels {
                protocol: self.protocol,
                route: route.clone(),
            })
            .observe(latency.as_secs_f64());
        if let Some(model) = &seen.requested_model {
            m.count_requested_model(&route, model);
        }

        // Fields that are `None` are left off the line: a stream's tokens (counted at its
        // end, after this line; the attempt span and metrics have them), the error of a
        // request that succeeded, the trace id when nothing is traced.
        let trace_id = trace_id(span);
        tracing::info!(
            target: "aigw::access",
            parent: None,
            protocol = self.protocol.as_str(),
            route = &*route,
            target = &*target,
            model = seen.model.as_deref(),
            requested_model = seen.requested_model.as_deref(),
            status = %status,
            latency_ms = (latency.as_secs_f64() * 10_000.0).round() / 10.0,
            input_tokens = seen.input_tokens,
            output_tokens = seen.output_tokens,
            stream = seen.stream.then_some(true),
            attempts = seen.attempts,
            error = seen.error,
            trace_id = trace_id.as_deref(),
            "request",
        );
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if !self.done {
            self.report(Status::Cancelled);
        }
    }
}

/// The span's OpenTelemetry trace id, if something traces it.
fn trace_id(span: &tracing::Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::PoisonError;

    use tower::ServiceExt;

    use super::*;
    use crate::LogStyle;
    use crate::test_log::Captured;

    impl Captured {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(|l| serde_json::from_str(l).expect("each line is JSON"))
                .collect()
        }
    }

    /// A handler that learned what the stack below would tell it, and answers `status`.
    fn handler(
        status: u16,
    ) -> impl Service<
        http::Request<()>,
        Response = http::Response<()>,
        Error = Infallible,
        Future = impl Send + 'static,
    > + Clone {
        tower::service_fn(move |_: http::Request<()>| async move {
            crate::record_route("chat");
            record::update(|r| {
                r.target = Some(Arc::from("bedrock/m1"));
                r.model = Some(Arc::from("m1"));
                r.input_tokens = Some(7);
                r.output_tokens = Some(24);
                r.attempts = 2;
                r.error = (status >= 400).then_some("rate_limited");
            });
            let mut response = http::Response::new(());
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
            Ok(response)
        })
    }

    #[tokio::test]
    async fn each_chat_request_logs_one_json_line_and_probes_none() {
        let captured = Captured::default();
        let dispatch = crate::dispatch_to("info", LogStyle::Json, None, captured.clone());
        let _guard = tracing::dispatcher::set_default(&dispatch);
        let service = ServerSpanLayer.layer(handler(429));

        let chat = http::Request::post("/chat").body(()).expect("request");
        let response = service.clone().oneshot(chat).await.expect("answers");
        assert_eq!(response.status(), 429);
        let probe = http::Request::get("/health").body(()).expect("request");
        service.oneshot(probe).await.expect("answers");

        let lines = captured.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["target"], "aigw::access");
        assert_eq!(line["level"], "INFO");
        let fields = &line["fields"];
        assert_eq!(fields["protocol"], "http");
        assert_eq!(fields["route"], "chat");
        assert_eq!(fields["target"], "bedrock/m1");
        assert_eq!(fields["model"], "m1");
        assert_eq!(fields["status"], "429");
        assert_eq!(fields["input_tokens"], 7);
        assert_eq!(fields["output_tokens"], 24);
        assert_eq!(fields["attempts"], 2);
        assert_eq!(fields["error"], "rate_limited");
        assert!(fields["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
        // Facts that do not apply are left off, not logged empty.
        assert!(fields.get("trace_id").is_none(), "{fields}");
        assert!(fields.get("stream").is_none(), "{fields}");
    }

    #[tokio::test]
    async fn a_client_that_goes_away_is_logged_as_499() {
        let captured = Captured::default();
        let dispatch = crate::dispatch_to("info", LogStyle::Json, None, captured.clone());
        let _guard = tracing::dispatcher::set_default(&dispatch);
        let never = tower::service_fn(|_: http::Request<()>| async {
            std::future::pending::<Result<http::Response<()>, Infallible>>().await
        });
        let mut service = ServerSpanLayer.layer(never);
        let call = service.call(http::Request::post("/chat").body(()).expect("request"));
        drop(call);
        let lines = captured.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["fields"]["status"], "499");
    }
}
