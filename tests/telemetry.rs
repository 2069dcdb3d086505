//! Traces and metrics as an operator sees them: spans exported over real OTLP/gRPC to an
//! in-process receiver, and the Prometheus text at `GET /metrics`.
//!
//! Each test installs its own subscriber for its thread; `#[tokio::test]` runs the gateway,
//! the emulator, the receiver and the exporter's channel on that one thread. Metrics are
//! process-wide, so each test names its routes apart.

use std::time::{Duration, Instant};

use aigw_emulator::{Fault, ModelKnobs};
use aigw_server::RouteLimits;
use aigw_telemetry::{LogStyle, SdkTracerProvider};
use aigw_tests::otlp::{Receiver, attribute, float_attribute, int_attribute, str_attribute};
use aigw_tests::{Stack, config_from, grpc_client, grpc_hi_with_metadata, seed_yaml};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::Value as Json;

const NOVA: &str = "us.amazon.nova-micro-v1:0";
const LLAMA: &str = "us.meta.llama3-3-70b-instruct-v1:0";
const PROMPT: &str = "Who is considered the greatest Polish writer?";

/// Exports this thread's spans to an OTLP endpoint while alive.
struct Tracing {
    provider: SdkTracerProvider,
    _guard: tracing::dispatcher::DefaultGuard,
}

impl Tracing {
    fn to(endpoint: &str) -> Tracing {
        let provider = aigw_telemetry::tracer_provider(endpoint).expect("exporter builds");
        let dispatch = aigw_telemetry::dispatch("warn", LogStyle::Text, Some(&provider));
        Tracing {
            _guard: tracing::dispatcher::set_default(&dispatch),
            provider,
        }
    }

    /// Exports what is queued, then waits until `receiver` holds `servers` server spans and
    /// `attempts` attempt spans; what it holds then.
    async fn flush_until(&self, receiver: &Receiver, servers: usize, attempts: usize) -> Vec<Span> {
        self.flush().await.expect("the receiver takes the spans");
        receiver
            .wait_for(|s| server_spans(s).len() == servers && attempt_spans(s).len() == attempts)
            .await
    }

    /// Exports what is queued; on a blocking thread, so this runtime drives the channel.
    async fn flush(&self) -> Result<(), String> {
        let provider = self.provider.clone();
        tokio::task::spawn_blocking(move || provider.force_flush().map_err(|e| e.to_string()))
            .await
            .expect("flush task")
    }
}

/// The seed file with `extra` balancer settings and the route renamed to `route`.
fn seed_with(route: &str, balancer: &str) -> aigw_config::GatewayConfig {
    config_from(&seed_text_with(route, balancer))
}

/// [`seed_with`]'s decK text.
fn seed_text_with(route: &str, balancer: &str) -> String {
    seed_yaml()
        .replace("- name: route1", &format!("- name: {route}"))
        .replace(
            "algorithm: round-robin",
            &format!("algorithm: round-robin\n{balancer}"),
        )
}

/// Fails over on an upstream 500: Kong needs both http_500 and non_idempotent for a POST.
const FAIL_OVER_ON_500: &str =
    "          failover_criteria: [error, timeout, http_500, non_idempotent]";

async fn post(url: &str, body: &Json, traceparent: Option<&str>) -> (u16, Json) {
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(value) = traceparent {
        request = request.header("traceparent", value);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn question() -> Json {
    serde_json::json!({
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 64,
        "temperature": 0.5,
    })
}

fn kind(span: &Span) -> SpanKind {
    SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified)
}

fn status_code(span: &Span) -> StatusCode {
    span.status
        .as_ref()
        .and_then(|s| StatusCode::try_from(s.code).ok())
        .unwrap_or(StatusCode::Unset)
}

fn server_spans(spans: &[Span]) -> Vec<&Span> {
    spans
        .iter()
        .filter(|s| kind(s) == SpanKind::Server)
        .collect()
}

fn attempt_spans(spans: &[Span]) -> Vec<&Span> {
    let mut attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| str_attribute(s, "gen_ai.operation.name") == Some("chat"))
        .collect();
    attempts.sort_by_key(|s| int_attribute(s, "aigw.attempt"));
    attempts
}

fn has_any_value(span: &Span, needle: &str) -> bool {
    span.attributes.iter().any(|kv| {
        matches!(
            kv.value.as_ref().and_then(|v| v.value.as_ref()),
            Some(Value::StringValue(s)) if s.contains(needle)
        )
    })
}

#[tokio::test]
async fn a_failover_is_one_server_span_over_two_attempt_spans() {
    let receiver = Receiver::start().await;
    let tracing = Tracing::to(&receiver.endpoint());
    let stack = Stack::start(&seed_with("traced", FAIL_OVER_ON_500)).await;
    // Round-robin sends the first request to nova, which fails with a 500.
    stack
        .emulator
        .knobs()
        .set_model(NOVA, ModelKnobs::with_fault(Fault::internal_error(), None));

    let (status, body) = post(&stack.url("/bedrock-route"), &question(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], LLAMA);
    let spans = tracing.flush_until(&receiver, 1, 2).await;

    let servers = server_spans(&spans);
    assert_eq!(servers.len(), 1, "one server span: {spans:#?}");
    let server = servers[0];
    assert_eq!(server.name, "POST /bedrock-route");
    assert!(server.parent_span_id.is_empty(), "a new trace starts here");
    assert_eq!(
        int_attribute(server, "http.response.status_code"),
        Some(200)
    );
    assert_eq!(str_attribute(server, "http.route"), Some("/bedrock-route"));
    assert_eq!(str_attribute(server, "aigw.route"), Some("traced"));
    assert_eq!(int_attribute(server, "aigw.attempts"), Some(2));

    let attempts = attempt_spans(&spans);
    assert_eq!(attempts.len(), 2, "one span per attempt: {spans:#?}");
    let (failed, served) = (attempts[0], attempts[1]);
    for (attempt, (number, index, model)) in attempts.iter().zip([(1, 0, NOVA), (2, 1, LLAMA)]) {
        assert_eq!(kind(attempt), SpanKind::Client);
        assert_eq!(attempt.name, format!("chat {model}"));
        assert_eq!(attempt.trace_id, server.trace_id, "same trace");
        assert_eq!(
            attempt.parent_span_id, server.span_id,
            "child of the server span"
        );
        assert_eq!(int_attribute(attempt, "aigw.attempt"), Some(number));
        assert_eq!(int_attribute(attempt, "aigw.target.index"), Some(index));
        assert_eq!(str_attribute(attempt, "gen_ai.request.model"), Some(model));
        assert_eq!(str_attribute(attempt, "gen_ai.system"), Some("aws.bedrock"));
        assert_eq!(
            str_attribute(attempt, "gen_ai.provider.name"),
            Some("aws.bedrock")
        );
        assert_eq!(str_attribute(attempt, "aigw.route"), Some("traced"));
        assert_eq!(
            str_attribute(attempt, "aigw.balancer.algorithm"),
            Some("round-robin")
        );
        assert_eq!(
            int_attribute(attempt, "gen_ai.request.max_tokens"),
            Some(64)
        );
        assert_eq!(
            float_attribute(attempt, "gen_ai.request.temperature"),
            Some(0.5)
        );
        // No target here sets logging.log_payloads: the prompt stays out of traces.
        assert!(!has_any_value(attempt, PROMPT), "{attempt:#?}");
    }

    assert_eq!(status_code(failed), StatusCode::Error);
    assert_eq!(str_attribute(failed, "error.type"), Some("upstream_error"));
    let message = failed
        .status
        .as_ref()
        .map(|s| s.message.as_str())
        .unwrap_or_default();
    assert!(message.contains("InternalServerException"), "{message}");
    assert_eq!(int_attribute(failed, "gen_ai.usage.input_tokens"), None);

    assert_ne!(status_code(served), StatusCode::Error);
    assert_eq!(str_attribute(served, "gen_ai.response.model"), Some(LLAMA));
    assert_eq!(
        int_attribute(served, "gen_ai.usage.input_tokens"),
        body["usage"]["prompt_tokens"].as_i64()
    );
    assert_eq!(
        int_attribute(served, "gen_ai.usage.output_tokens"),
        body["usage"]["completion_tokens"].as_i64()
    );
    assert!(int_attribute(served, "gen_ai.usage.output_tokens").is_some_and(|n| n > 0));
    assert_eq!(
        str_attribute(served, "gen_ai.response.id"),
        body["id"].as_str()
    );
    match attribute(served, "gen_ai.response.finish_reasons") {
        Some(Value::ArrayValue(array)) => {
            let reasons: Vec<_> = array
                .values
                .iter()
                .filter_map(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(reasons, ["stop"]);
        }
        other => panic!("finish_reasons is a string array, got {other:?}"),
    }

    // The AWS SDK's own operation span sits under each attempt.
    for attempt in [failed, served] {
        assert!(
            spans.iter().any(
                |s| s.parent_span_id == attempt.span_id && s.name == "Bedrock Runtime.Converse"
            ),
            "no SDK span under {}: {spans:#?}",
            attempt.name
        );
    }
    assert!(receiver.service_names().iter().all(|n| n == "aigw"));
}

/// `00-{trace id}-{parent span id}-01`, as a caller's tracer sends it.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_incoming_traceparent_is_continued_over_http_and_grpc() {
    let receiver = Receiver::start().await;
    let tracing = Tracing::to(&receiver.endpoint());
    let stack = Stack::start(&seed_with("continued", "")).await;
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");

    let (status, _) = post(
        &stack.url("/bedrock-route"),
        &question(),
        Some(&traceparent),
    )
    .await;
    assert_eq!(status, 200);

    let mut client = grpc_client(&stack.gateway).await;
    let request = grpc_hi_with_metadata("traceparent", &traceparent);
    client.chat(request).await.expect("gRPC answers");

    let spans = tracing.flush_until(&receiver, 2, 2).await;
    let servers = server_spans(&spans);
    assert_eq!(servers.len(), 2, "{spans:#?}");
    for server in &servers {
        assert_eq!(hex(&server.trace_id), CALLER_TRACE, "{}", server.name);
        assert_eq!(hex(&server.parent_span_id), CALLER_SPAN, "{}", server.name);
    }
    let grpc = servers
        .iter()
        .find(|s| s.name == "aigw.v1.ChatService/Chat")
        .expect("a gRPC server span");
    assert_eq!(str_attribute(grpc, "rpc.system"), Some("grpc"));
    assert_eq!(int_attribute(grpc, "rpc.grpc.status_code"), Some(0));
    assert_eq!(str_attribute(grpc, "aigw.route"), Some("continued"));
    for attempt in attempt_spans(&spans) {
        assert_eq!(hex(&attempt.trace_id), CALLER_TRACE);
        assert!(
            servers.iter().any(|s| s.span_id == attempt.parent_span_id),
            "each attempt hangs off its request's server span"
        );
    }
}

#[tokio::test]
async fn log_payloads_puts_prompt_and_completion_on_the_attempt_span() {
    let receiver = Receiver::start().await;
    let tracing = Tracing::to(&receiver.endpoint());
    let seed = seed_yaml();
    let config = config_from(&seed.replace(
        "route_type: \"llm/v1/chat\"",
        "route_type: \"llm/v1/chat\"\n          logging:\n            log_payloads: true",
    ));
    let stack = Stack::start(&config).await;

    let (status, body) = post(&stack.url("/bedrock-route"), &question(), None).await;
    assert_eq!(status, 200);
    tracing.flush().await.expect("the receiver takes the spans");
    let spans = receiver.wait_for(|s| attempt_spans(s).len() == 1).await;
    let attempts = attempt_spans(&spans);
    let attempt = attempts.first().expect("an attempt span");
    let input = str_attribute(attempt, "gen_ai.input.messages").expect("prompt recorded");
    assert!(input.contains(PROMPT), "{input}");
    let output = str_attribute(attempt, "gen_ai.output.messages").expect("completion recorded");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    let output: Json = serde_json::from_str(output).expect("JSON messages");
    assert_eq!(output[0]["parts"][0]["content"], content);
}

#[tokio::test]
async fn a_dead_collector_fails_no_request() {
    // A port that was free a moment ago: nothing answers there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let tracing = Tracing::to(&endpoint);
    let stack = Stack::start(&seed_with("untraced", "")).await;
    for _ in 0..20 {
        let (status, body) = post(&stack.url("/bedrock-route"), &question(), None).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(
        tracing.flush().await.is_err(),
        "the export failed, not the requests"
    );
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_failovers() {
    let stack = Stack::start(&seed_with("counted", FAIL_OVER_ON_500)).await;
    stack.emulator.knobs().set_model(
        NOVA,
        ModelKnobs::with_fault(Fault::internal_error(), Some(1)),
    );
    let mut output_tokens = 0;
    for _ in 0..3 {
        let (status, body) = post(&stack.url("/bedrock-route"), &question(), None).await;
        assert_eq!(status, 200, "{body}");
        output_tokens += body["usage"]["completion_tokens"].as_u64().expect("usage");
    }
    let response = reqwest::get(stack.status_url("/metrics"))
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("application/openmetrics-text"))
    );
    let text = response.text().await.expect("text");
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    // First request: nova fails once, llama serves; then nova, then llama.
    assert_eq!(value(r#"aigw_failovers_total{route="counted"}"#), 1.0);
    let nova = format!("route=\"counted\",target=\"bedrock/{NOVA}\"");
    let llama = format!("route=\"counted\",target=\"bedrock/{LLAMA}\"");
    assert_eq!(
        value(&format!(
            r#"aigw_requests_total{{protocol="http",{llama},status="200"}}"#
        )),
        2.0
    );
    assert_eq!(
        value(&format!(
            r#"aigw_requests_total{{protocol="http",{nova},status="200"}}"#
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            r#"aigw_attempt_duration_seconds_count{{{nova},outcome="upstream_error"}}"#
        )),
        1.0
    );
    let out = value(&format!(r#"aigw_tokens_total{{{nova},type="output"}}"#))
        + value(&format!(r#"aigw_tokens_total{{{llama},type="output"}}"#));
    assert_eq!(out, output_tokens as f64);
    // Every attempt ended, the failed one included.
    assert_eq!(value(&format!("aigw_attempts_in_flight{{{nova}}}")), 0.0);
    assert_eq!(value(&format!("aigw_attempts_in_flight{{{llama}}}")), 0.0);
}

#[tokio::test]
async fn a_streamed_attempt_records_time_to_first_token_and_usage() {
    let receiver = Receiver::start().await;
    let tracing = Tracing::to(&receiver.endpoint());
    let stack = Stack::start(&seed_with("streamed", "")).await;
    let body = serde_json::json!({
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let response = reqwest::Client::new()
        .post(stack.url("/bedrock-route"))
        .json(&body)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("the whole stream");
    let usage: Json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Json>(d).ok())
        // OpenAI's convention: every chunk says `"usage": null` but the last.
        .find_map(|chunk| chunk.get("usage").filter(|u| !u.is_null()).cloned())
        .expect("a usage chunk");

    tracing.flush().await.expect("the receiver takes the spans");
    let spans = receiver
        .wait_for(|s| {
            attempt_spans(s)
                .iter()
                .any(|a| int_attribute(a, "gen_ai.usage.output_tokens").is_some())
        })
        .await;
    let attempts = attempt_spans(&spans);
    let attempt = attempts.first().expect("an attempt span");
    let ttft = float_attribute(attempt, "aigw.time_to_first_token").expect("time to first token");
    let duration = (attempt.end_time_unix_nano - attempt.start_time_unix_nano) as f64 / 1e9;
    assert!(ttft > 0.0 && ttft <= duration, "{ttft} within {duration}");
    assert_eq!(
        int_attribute(attempt, "gen_ai.usage.output_tokens"),
        usage["completion_tokens"].as_i64()
    );
}

/// The seed file's route, renamed `route`, served at `path`, with `balancer` settings
/// added; `unbuildable` gives its first target an endpoint URL the config accepts but no
/// client can be built for, which only building the route finds.
fn route_yaml(route: &str, path: &str, balancer: &str, unbuildable: bool) -> String {
    let seed = seed_yaml();
    let (_, block) = seed.split_once("  routes:\n").expect("the seed has routes");
    let block = block
        .replace("- name: route1", &format!("- name: {route}"))
        .replace("- /bedrock-route", &format!("- {path}"))
        .replace(
            "instance_name: ai-proxy-advanced-bedrock",
            &format!("instance_name: {route}"),
        )
        .replace(
            "algorithm: round-robin",
            &format!("algorithm: round-robin\n{balancer}"),
        );
    if unbuildable {
        block.replacen(
            "              bedrock:\n",
            "              upstream_url: \"http://\"\n              bedrock:\n",
            1,
        )
    } else {
        block
    }
}

/// A decK file serving `routes` (from [`route_yaml`]) in this order.
fn deck(routes: &[&str]) -> String {
    let seed = seed_yaml();
    let (head, _) = seed.split_once("  routes:\n").expect("the seed has routes");
    format!("{head}  routes:\n{}", routes.concat())
}

/// Reloads the gateway's routes from `yaml`, written to a temp file named after `name`:
/// how many routes it serves then, or why the reload was refused.
async fn reload(stack: &Stack, name: &str, yaml: &str) -> Result<usize, String> {
    let file = std::env::temp_dir().join(format!("aigw-{}-{name}.yaml", std::process::id()));
    std::fs::write(&file, yaml).expect("writes the temp config");
    let options = Stack::options_for(&stack.emulator, RouteLimits::default());
    let reloaded = stack.gateway.routes().reload_from(&file, &options).await;
    let _ = std::fs::remove_file(&file);
    reloaded.map_err(|e| e.to_string())
}

async fn scrape(stack: &Stack) -> String {
    reqwest::get(stack.status_url("/metrics"))
        .await
        .expect("answers")
        .text()
        .await
        .expect("text")
}

/// The value of the series named exactly `series` (name and labels), if shown.
fn gauge(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Whether any target gauge series names `route`.
fn gauges_name(text: &str, route: &str) -> bool {
    let label = format!("route=\"{route}\"");
    text.lines().any(|l| {
        (l.starts_with("aigw_target_healthy{") || l.starts_with("aigw_attempts_in_flight{"))
            && l.contains(&label)
    })
}

#[tokio::test]
async fn a_reload_that_fails_part_way_leaves_the_gauges_on_the_live_state() {
    let trips_at_once =
        format!("          max_fails: 1\n          fail_timeout: 60000\n{FAIL_OVER_ON_500}");
    let live = route_yaml("gauged-live", "/live", &trips_at_once, false);
    let stack = Stack::start(&config_from(&deck(&[&live]))).await;
    // Round-robin tries nova first: its 500 takes it out, and llama answers.
    stack.emulator.knobs().set_model(
        NOVA,
        ModelKnobs::with_fault(Fault::internal_error(), Some(1)),
    );
    let (status, body) = post(&stack.url("/live"), &question(), None).await;
    assert_eq!(status, 200, "{body}");
    let healthy = |model: &str| {
        format!("aigw_target_healthy{{route=\"gauged-live\",target=\"bedrock/{model}\"}}")
    };
    let in_flight = |model: &str| {
        format!("aigw_attempts_in_flight{{route=\"gauged-live\",target=\"bedrock/{model}\"}}")
    };
    let text = scrape(&stack).await;
    assert_eq!(gauge(&text, &healthy(NOVA)), Some(0.0), "{text}");
    assert_eq!(gauge(&text, &healthy(LLAMA)), Some(1.0), "{text}");

    // The same route builds again; the next one cannot be built, so the reload fails.
    let broken = route_yaml("gauged-unbuilt", "/unbuilt", "", true);
    let error = reload(&stack, "part-way", &deck(&[&live, &broken]))
        .await
        .expect_err("the second route cannot be built");
    assert!(error.contains(r#""http://""#), "{error}");

    let text = scrape(&stack).await;
    assert_eq!(
        gauge(&text, &healthy(NOVA)),
        Some(0.0),
        "the route in force is still tripped, not the rebuilt copy's fresh state: {text}"
    );
    assert!(!gauges_name(&text, "gauged-unbuilt"), "{text}");

    // Still the live state: an attempt under way shows, and its end too.
    stack.emulator.knobs().set_default(ModelKnobs {
        latency: Duration::from_millis(500),
        ..ModelKnobs::default()
    });
    let url = stack.url("/live");
    let slow = tokio::spawn(async move { post(&url, &question(), None).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(&stack).await;
        if gauge(&text, &in_flight(LLAMA)) == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the attempt never showed: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = slow.await.expect("joins");
    assert_eq!(status, 200, "{body}");
    let text = scrape(&stack).await;
    assert_eq!(gauge(&text, &in_flight(LLAMA)), Some(0.0), "{text}");
    assert_eq!(gauge(&text, &healthy(NOVA)), Some(0.0), "{text}");
}

#[tokio::test]
async fn a_reload_that_drops_a_route_removes_its_gauges() {
    let kept = route_yaml("gauged-kept", "/kept", "", false);
    let dropped = route_yaml("gauged-dropped", "/dropped", "", false);
    let stack = Stack::start(&config_from(&deck(&[&kept, &dropped]))).await;
    let text = scrape(&stack).await;
    for route in ["gauged-kept", "gauged-dropped"] {
        let target = format!("route=\"{route}\",target=\"bedrock/{NOVA}\"");
        assert_eq!(
            gauge(&text, &format!("aigw_target_healthy{{{target}}}")),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            gauge(&text, &format!("aigw_attempts_in_flight{{{target}}}")),
            Some(0.0),
            "{text}"
        );
    }

    let count = reload(&stack, "dropped", &deck(&[&kept]))
        .await
        .expect("a valid config reloads");
    assert_eq!(count, 1);

    let text = scrape(&stack).await;
    assert!(!gauges_name(&text, "gauged-dropped"), "{text}");
    let kept = format!("route=\"gauged-kept\",target=\"bedrock/{LLAMA}\"");
    assert_eq!(
        gauge(&text, &format!("aigw_target_healthy{{{kept}}}")),
        Some(1.0),
        "{text}"
    );
}

/// The semantic algorithm's prompt embedding is a client span of its own, in the request's
/// trace, before the attempt; a cached prompt makes no second one. Server spans carry the
/// matched route path, whatever path the request used.
#[tokio::test]
async fn the_prompt_embedding_is_a_span_of_its_own() {
    let receiver = Receiver::start().await;
    let tracing = Tracing::to(&receiver.endpoint());
    let embeddings = aigw_emulator::start(aigw_tests::loopback())
        .await
        .expect("emulator");
    let yaml = seed_yaml()
        .replace("- name: route1", "- name: semantic-traced")
        .replace(
            "algorithm: round-robin",
            &format!(
                "algorithm: semantic\n        embeddings:\n          model:\n            provider: bedrock\n            name: amazon.titan-embed-text-v2:0\n            options:\n              upstream_url: {}\n              bedrock: {{aws_region: us-west-2}}\n        vectordb: {{strategy: redis, dimensions: 1024, distance_metric: cosine, threshold: 0.9}}",
                embeddings.endpoint_url()
            ),
        )
        .replace(
            "route_type: \"llm/v1/chat\"",
            "route_type: \"llm/v1/chat\"\n          description: polish writers literature",
        );
    let stack = Stack::start(&config_from(&yaml)).await;
    // The second by a longer path, which the route's prefix takes too.
    for path in ["/bedrock-route", "/bedrock-route/v1/chat/123"] {
        let (status, body) = post(&stack.url(path), &question(), None).await;
        assert_eq!(status, 200, "{body}");
    }
    let spans = tracing.flush_until(&receiver, 2, 2).await;
    let embedded: Vec<&Span> = spans
        .iter()
        .filter(|s| str_attribute(s, "gen_ai.operation.name") == Some("embeddings"))
        .collect();
    assert_eq!(
        embedded.len(),
        1,
        "the second, identical prompt is cached: {spans:#?}"
    );
    let span = embedded[0];
    assert_eq!(span.name, "embeddings amazon.titan-embed-text-v2:0");
    assert_eq!(kind(span), SpanKind::Client);
    let server = server_spans(&spans)
        .into_iter()
        .find(|s| s.trace_id == span.trace_id)
        .expect("in a request's trace");
    assert_eq!(
        span.parent_span_id, server.span_id,
        "child of the server span"
    );
    // Server spans are named by the route path the config wrote, not the request's path.
    for server in server_spans(&spans) {
        assert_eq!(server.name, "POST /bedrock-route");
        assert_eq!(str_attribute(server, "http.route"), Some("/bedrock-route"));
    }
}

#[tokio::test]
async fn an_embeddings_failover_is_two_embeddings_attempt_spans() {
    let receiver = Receiver::start().await;
    let tracing = Tracing::to(&receiver.endpoint());
    let target = |model: &str, extra: &str| {
        format!(
            "        - model:\n            provider: bedrock\n            name: \"{model}\"\n            options:\n              bedrock: {{aws_region: us-west-2}}\n{extra}          route_type: llm/v1/embeddings\n"
        )
    };
    // Port 1 on loopback: nothing listens, so Titan's connection is refused.
    let yaml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: svc\n  host: localhost\n  routes:\n  - name: embed-traced\n    paths: [/embed-traced]\n    plugins:\n    - name: ai-proxy-advanced\n      config:\n        balancer: {{algorithm: priority}}\n        targets:\n{}{}",
        target(
            "amazon.titan-embed-text-v2:0",
            "              upstream_url: http://127.0.0.1:1\n          weight: 200\n"
        ),
        target("cohere.embed-english-v3", ""),
    );
    let stack = Stack::start(&config_from(&yaml)).await;
    // Titan has the higher priority, so the request tries it first, then Cohere.
    let (status, body) = post(
        &stack.url("/v1/embeddings"),
        &serde_json::json!({"model": "embed-traced", "input": "hi"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "cohere.embed-english-v3");
    tracing.flush().await.expect("the receiver takes the spans");
    let embeddings = |spans: &[Span]| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| str_attribute(s, "gen_ai.operation.name") == Some("embeddings"))
            .cloned()
            .collect()
    };
    let spans = embeddings(&receiver.wait_for(|s| embeddings(s).len() == 2).await);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let failed: Vec<&Span> = spans
        .iter()
        .filter(|s| status_code(s) == StatusCode::Error)
        .collect();
    assert_eq!(failed.len(), 1, "{spans:#?}");
    assert_eq!(failed[0].name, "embeddings amazon.titan-embed-text-v2:0");
    assert_eq!(
        str_attribute(failed[0], "error.type"),
        Some("upstream_unreachable")
    );
    let retried = spans
        .iter()
        .find(|s| int_attribute(s, "aigw.attempt") == Some(2))
        .expect("a second attempt");
    assert_eq!(retried.name, "embeddings cohere.embed-english-v3");
    assert_eq!(retried.trace_id, failed[0].trace_id, "one request's trace");
    assert!(spans.iter().all(|s| kind(s) == SpanKind::Client));
}

/// What a client asks for and what serves it are two facts: a Bedrock-format client names
/// a model id in the path, the balancer serves it with a target's model, and the server
/// span, the access log and `aigw_requested_models_total` keep the asked one.
#[tokio::test]
async fn the_model_a_client_asked_is_recorded_apart_from_the_serving_one() {
    const ASKED: &str = "us.anthropic.claude-asked-by-the-client-v1:0";
    let receiver = Receiver::start().await;
    let tracing = Tracing::to(&receiver.endpoint());
    let seed = seed_text_with("asked", "");
    let stack = Stack::start(&config_from(&seed.replace(
        "      config:\n        balancer:",
        "      config:\n        llm_format: bedrock\n        balancer:",
    )))
    .await;
    let converse =
        serde_json::json!({"messages": [{"role": "user", "content": [{"text": PROMPT}]}]});
    let path = format!(
        "/bedrock-route/model/{}/converse",
        ASKED.replace(':', "%3A")
    );
    let (status, body) = post(&stack.url(&path), &converse, None).await;
    assert_eq!(status, 200, "{body}");

    let spans = tracing.flush_until(&receiver, 1, 1).await;
    let server = server_spans(&spans)[0];
    assert_eq!(str_attribute(server, "gen_ai.request.model"), Some(ASKED));
    assert_eq!(str_attribute(server, "gen_ai.response.model"), Some(NOVA));
    let attempt = attempt_spans(&spans)[0];
    assert_eq!(str_attribute(attempt, "gen_ai.request.model"), Some(NOVA));

    let series =
        format!(r#"aigw_requested_models_total{{route="asked",requested_model="{ASKED}"}}"#);
    assert_eq!(aigw_tests::counter_value(&stack, &series).await, 1);
}
