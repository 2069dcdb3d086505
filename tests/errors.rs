//! Bad input, upstream faults and bad config: each gets the right status and a clear
//! OpenAI-style error body (or gRPC code).

use std::time::Duration;

use aigw_emulator::{Fault, ModelKnobs};
use aigw_server::BuildOptions;
use aigw_tests::{
    Stack, assert_error_message_names, config_from, grpc_hi_refused, polish_writer_question,
    seed_config, seed_yaml, start_gateway,
};
use serde_json::Value;

async fn post_raw(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.expect("error bodies are JSON"),
    )
}

fn assert_error(body: &Value, kind: &str, code: &str, message_part: &str) {
    let error = &body["error"];
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert_error_message_names(body, message_part);
}

/// POSTs the walkthrough's question.
async fn post_polish_question(url: &str) -> (u16, Value) {
    post_raw(url, polish_writer_question().to_string()).await
}

#[tokio::test]
async fn bad_http_input_is_a_4xx_with_an_openai_error() {
    let stack = Stack::start(&seed_config()).await;
    let url = stack.url("/bedrock-route");

    let (status, body) = post_raw(&url, "{\"messages\": [").await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        "invalid_request",
        "invalid JSON",
    );

    let (status, body) = post_raw(&url, r#"{"messages": []}"#).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        "invalid_request",
        "messages",
    );

    let (status, body) = post_raw(&url, r#"{"messages": "hi"}"#).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        "invalid_request",
        "messages",
    );

    let (status, body) = post_raw(
        &url,
        r#"{"messages": [{"role": "wizard", "content": "hi"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, "invalid_request_error", "invalid_request", "wizard");

    let (status, body) = post_polish_question(&stack.url("/no-such-route")).await;
    assert_eq!(status, 404);
    // Kong's words, which clients of a Kong gateway may already look for.
    assert_error(
        &body,
        "invalid_request_error",
        "route_not_found",
        "no Route matched with those values",
    );

    // Kong's default max_request_body_size is 8 KiB.
    let huge = serde_json::json!({"messages": [{"role": "user", "content": "x".repeat(20_000)}]});
    let (status, body) = post_raw(&url, huge.to_string()).await;
    assert_eq!(status, 413);
    assert_error(&body, "invalid_request_error", "payload_too_large", "8192");

    let response = reqwest::get(&url).await.expect("answers");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    // None of these reached the upstream.
    assert!(stack.emulator.requests().is_empty());
}

#[tokio::test]
async fn upstream_throttling_is_429_and_resource_exhausted() {
    let stack = Stack::seed_failing_with(Fault::throttling()).await;
    let (status, body) = post_polish_question(&stack.url("/bedrock-route")).await;
    assert_eq!(status, 429);
    assert_error(
        &body,
        "rate_limit_error",
        "rate_limited",
        "ThrottlingException",
    );

    let status = grpc_hi_refused(&stack.gateway, "throttled").await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
}

#[tokio::test]
async fn upstream_5xx_is_502_and_unavailable() {
    let stack = Stack::seed_failing_with(Fault::internal_error()).await;
    let (status, body) = post_polish_question(&stack.url("/bedrock-route")).await;
    assert_eq!(status, 502);
    assert_error(
        &body,
        "api_error",
        "upstream_error",
        "InternalServerException",
    );
    // Chat is not idempotent and the default failover_criteria lack non_idempotent, so the
    // failed request was not sent to the second model.
    assert_eq!(stack.emulator.requests().len(), 1);
}

#[tokio::test]
async fn unreachable_upstream_fails_over_then_is_502() {
    // Nothing listens on the discard port of loopback here; both targets are unreachable.
    let options = BuildOptions {
        bedrock_endpoint: Some("http://127.0.0.1:9".into()),
        bedrock_credentials: Some(("AKIDTEST".into(), "test-secret".into())),
        ..BuildOptions::default()
    };
    let gateway = start_gateway(&seed_config(), &options).await;
    let (status, body) = post_polish_question(&format!("{}/bedrock-route", gateway.url())).await;
    assert_eq!(status, 502);
    // The connection never opened, so `error` failed it over to the other target first.
    assert_error(
        &body,
        "api_error",
        "upstream_unreachable",
        "all 2 attempts failed",
    );
}

#[tokio::test]
async fn upstream_past_read_timeout_is_504_and_deadline_exceeded() {
    let config = config_from(&seed_yaml().replace(
        "algorithm: round-robin",
        "algorithm: round-robin\n          read_timeout: 300",
    ));
    let stack = Stack::start(&config).await;
    stack.emulator.knobs().set_default(ModelKnobs {
        latency: Duration::from_secs(5),
        ..ModelKnobs::default()
    });
    let started = std::time::Instant::now();
    let (status, body) = post_polish_question(&stack.url("/bedrock-route")).await;
    assert_eq!(status, 504);
    assert_error(&body, "timeout_error", "upstream_timeout", "300 ms");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "read_timeout bounds the wait"
    );

    let status = grpc_hi_refused(&stack.gateway, "times out").await;
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
}

#[test]
fn misspelled_algorithm_names_field_line_and_choices() {
    let seed = seed_yaml();
    let line = seed
        .lines()
        .position(|l| l.contains("algorithm: round-robin"))
        .expect("seed has an algorithm")
        + 1;
    let bad = seed.replace("algorithm: round-robin", "algorithm: round-robbin");
    let error = aigw_config::parse_deck("bad.yaml", &bad)
        .expect_err("a misspelled algorithm is refused")
        .to_string();
    assert!(error.contains(&format!("bad.yaml:{line}:")), "{error}");
    assert!(
        error.contains("services[0].routes[0].plugins[0].config.balancer.algorithm"),
        "{error}"
    );
    assert!(
        error.contains("round-robbin") && error.contains("lowest-latency"),
        "{error}"
    );
}

#[test]
fn weight_out_of_range_is_refused_with_its_path() {
    let seed = seed_yaml();
    let bad = seed.replacen(
        "route_type: \"llm/v1/chat\"",
        "route_type: \"llm/v1/chat\"\n          weight: 0",
        1,
    );
    let error = aigw_config::parse_deck("bad.yaml", &bad)
        .expect_err("weight 0 is refused")
        .to_string();
    assert!(
        error.contains("services[0].routes[0].plugins[0].config.targets[0].weight"),
        "{error}"
    );
}
