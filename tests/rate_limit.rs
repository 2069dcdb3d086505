//! Kong's `ai-rate-limiting-advanced` with `strategy: local`, over HTTP and gRPC: tokens
//! are counted from the provider's usage once an answer ends, a spent window refuses the
//! next request with 429 (gRPC `RESOURCE_EXHAUSTED`, the figures in its trailers), and the
//! `X-AI-RateLimit-*` headers count down.

use aigw_tests::post_question_with_header as post;
use aigw_tests::{Stack, config_from, grpc_client, grpc_question, header_text, metadata_text};
use serde_json::Value;

/// The emulator answers the Polish-writer question with 7 prompt and 24 completion tokens.
const QUESTION_TOKENS: u64 = 31;

/// alice and bob share the route; the limit is per consumer.
fn deck(config: &str) -> String {
    format!(
        r#"
_format_version: "3.0"
consumers:
- username: alice
  keyauth_credentials:
  - key: key-alice
- username: bob
  keyauth_credentials:
  - key: key-bob
services:
- name: svc
  routes:
  - name: chat
    paths: [/chat]
plugins:
- name: key-auth
- name: ai-rate-limiting-advanced
  config:
{config}
- name: ai-proxy-advanced
  config:
    targets:
    - model: {{provider: bedrock, name: m, options: {{bedrock: {{aws_region: us-west-2}}}}}}
      route_type: llm/v1/chat
"#
    )
}

const HOURLY_100: &str = "    window_type: fixed\n    llm_providers:\n    - {name: bedrock, limit: [100], window_size: [3600]}\n";

#[tokio::test]
async fn a_consumers_tokens_are_limited_and_the_headers_count_down() {
    let stack = Stack::start(&config_from(&deck(HOURLY_100))).await;
    let url = stack.url("/chat");
    let mut remaining_seen = Vec::new();
    let mut admitted = 0u64;
    let refused = loop {
        let (status, headers, body) = post(&url, Some(("apikey", "key-alice"))).await;
        if status != 200 {
            break (status, headers, body);
        }
        admitted += 1;
        assert_eq!(
            header_text(&headers, "x-ai-ratelimit-limit-3600-bedrock").as_deref(),
            Some("100")
        );
        let remaining: u64 = header_text(&headers, "x-ai-ratelimit-remaining-3600-bedrock")
            .and_then(|v| v.parse().ok())
            .expect("a remaining figure");
        remaining_seen.push(remaining);
        assert!(admitted < 10, "the limit never bit");
    };
    // 100, 69, 38, 7: each answer's tokens are counted before the next request.
    assert_eq!(remaining_seen, [100, 69, 38, 7]);
    assert!(admitted * QUESTION_TOKENS >= 100 && (admitted - 1) * QUESTION_TOKENS < 100);
    let (status, headers, body) = refused;
    assert_eq!(status, 429, "{body}");
    let body: Value = serde_json::from_str(&body).expect("an OpenAI-style error body");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(
        body["error"]["message"],
        "API rate limit exceeded for provider bedrock"
    );
    assert_eq!(
        header_text(&headers, "x-ai-ratelimit-remaining-3600-bedrock").as_deref(),
        Some("0")
    );
    let retry: u64 = header_text(&headers, "x-ai-ratelimit-retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a retry-after figure");
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(
        header_text(&headers, "retry-after"),
        Some(retry.to_string())
    );
    assert!(header_text(&headers, "x-ai-ratelimit-retry-after-3600-bedrock").is_some());
    assert_eq!(
        stack.emulator.requests().len() as u64,
        admitted,
        "a refused request reaches no target"
    );

    // bob has his own counters.
    let (status, headers, _) = post(&url, Some(("apikey", "key-bob"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        header_text(&headers, "x-ai-ratelimit-remaining-3600-bedrock").as_deref(),
        Some("100")
    );
}

#[tokio::test]
async fn grpc_gets_resource_exhausted_with_the_figures_in_trailers() {
    let stack = Stack::start(&config_from(&deck(HOURLY_100))).await;
    let mut client = grpc_client(&stack.gateway).await;
    let ask = || {
        let mut request = tonic::Request::new(grpc_question(
            "chat",
            "Who is considered the greatest Polish writer?",
        ));
        request
            .metadata_mut()
            .insert("apikey", "key-alice".parse().expect("ASCII"));
        request
    };
    let first = client
        .chat(ask())
        .await
        .expect("the first call is admitted");
    assert_eq!(
        metadata_text(first.metadata(), "x-ai-ratelimit-remaining-3600-bedrock").as_deref(),
        Some("100")
    );
    let mut calls = 1;
    let status = loop {
        match client.chat(ask()).await {
            Ok(_) => calls += 1,
            Err(status) => break status,
        }
        assert!(calls < 10, "the limit never bit");
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.message(),
        "API rate limit exceeded for provider bedrock"
    );
    assert_eq!(
        metadata_text(status.metadata(), "x-ai-ratelimit-remaining-3600-bedrock").as_deref(),
        Some("0")
    );
    assert!(metadata_text(status.metadata(), "x-ai-ratelimit-retry-after").is_some());
}

#[tokio::test]
async fn policies_with_a_custom_refusal_and_hidden_headers() {
    let config = "    window_type: fixed\n    hide_client_headers: true\n    error_code: 403\n    error_message: out of tokens\n    tokens_count_strategy: completion_tokens\n    policies:\n    - match:\n      - {type: consumer, values: [alice]}\n      limits:\n      - {limit: 30, window_size: 60}\n";
    let stack = Stack::start(&config_from(&deck(config))).await;
    let url = stack.url("/chat");
    // alice's 24 completion tokens leave 6 of 30, so her second request is still let in.
    for _ in 0..2 {
        let (status, headers, body) = post(&url, Some(("apikey", "key-alice"))).await;
        assert_eq!(status, 200, "{body}");
        assert!(header_text(&headers, "x-ai-ratelimit-remaining-60-policy1").is_none());
    }
    let (status, _, body) = post(&url, Some(("apikey", "key-alice"))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("out of tokens"), "{body}");
    // The policy matches alice only: bob is never limited.
    for _ in 0..3 {
        let (status, _, _) = post(&url, Some(("apikey", "key-bob"))).await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn a_spent_window_opens_again_when_it_resets() {
    let config = "    window_type: fixed\n    llm_providers:\n    - {name: bedrock, limit: [10], window_size: [1]}\n";
    let stack = Stack::start(&config_from(&deck(config))).await;
    let url = stack.url("/chat");
    let mut tries = 0;
    let retry_after = loop {
        let (status, headers, _) = post(&url, Some(("apikey", "key-alice"))).await;
        if status == 429 {
            break header_text(&headers, "x-ai-ratelimit-retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a retry-after figure");
        }
        tries += 1;
        assert!(tries < 10, "the limit never bit");
    };
    assert!(retry_after <= 1, "{retry_after}");
    tokio::time::sleep(std::time::Duration::from_millis(retry_after * 1000 + 50)).await;
    let (status, headers, _) = post(&url, Some(("apikey", "key-alice"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        header_text(&headers, "x-ai-ratelimit-remaining-1-bedrock").as_deref(),
        Some("10")
    );
}

#[tokio::test]
async fn streams_are_charged_when_they_end() {
    let stack = Stack::start(&config_from(&deck(HOURLY_100))).await;
    let client = reqwest::Client::new();
    let mut question = aigw_tests::polish_writer_question();
    question["stream"] = Value::Bool(true);
    question["stream_options"] = serde_json::json!({"include_usage": true});
    let response = client
        .post(stack.url("/chat"))
        .header("apikey", "key-alice")
        .json(&question)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("the whole stream");
    assert!(text.contains("[DONE]"), "{text}");
    let (_, headers, _) = post(&stack.url("/chat"), Some(("apikey", "key-alice"))).await;
    let remaining: u64 = header_text(&headers, "x-ai-ratelimit-remaining-3600-bedrock")
        .and_then(|v| v.parse().ok())
        .expect("a remaining figure");
    assert!(
        remaining < 100,
        "the stream's tokens were counted: {remaining}"
    );
}

#[tokio::test]
async fn cost_counts_each_token_at_the_serving_targets_price() {
    // 1 per prompt token and 2 per completion token (costs are per million tokens):
    // the question costs 7 + 2 × 24 = 55.
    let yaml = deck("    window_type: fixed\n    tokens_count_strategy: cost\n    llm_providers:\n    - {name: bedrock, limit: [100], window_size: [3600]}\n")
        .replace(
            "options: {bedrock: {aws_region: us-west-2}}",
            "options: {input_cost: 1000000, output_cost: 2000000, bedrock: {aws_region: us-west-2}}",
        );
    let stack = Stack::start(&config_from(&yaml)).await;
    let url = stack.url("/chat");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (status, headers, body) = post(&url, Some(("apikey", "key-alice"))).await;
        assert_eq!(status, 200, "{body}");
        seen.push(header_text(
            &headers,
            "x-ai-ratelimit-remaining-3600-bedrock",
        ));
    }
    assert_eq!(seen, [Some("100".to_owned()), Some("45".to_owned())]);
    let (status, _, _) = post(&url, Some(("apikey", "key-alice"))).await;
    assert_eq!(status, 429);
}

/// Embeddings spend tokens too: a route of embeddings targets is limited the same way, by
/// the input tokens the provider counted.
#[tokio::test]
async fn embeddings_are_charged_their_input_tokens() {
    let deck = deck("    window_type: fixed\n    llm_providers:\n    - {name: bedrock, limit: [10], window_size: [3600]}\n")
        .replace("name: m,", "name: \"amazon.titan-embed-text-v2:0\",")
        .replace("route_type: llm/v1/chat", "route_type: llm/v1/embeddings");
    let stack = Stack::start(&config_from(&deck)).await;
    let client = reqwest::Client::new();
    let mut remaining_seen = Vec::new();
    let refused = loop {
        let response = client
            .post(stack.url("/chat"))
            .header("apikey", "key-alice")
            // Five words of three letters or more: five tokens to the emulator's Titan.
            .json(&serde_json::json!({"input": "alpha beta gamma delta epsilon"}))
            .send()
            .await
            .expect("the gateway answers");
        if response.status() != 200 {
            break response;
        }
        let remaining = header_text(response.headers(), "x-ai-ratelimit-remaining-3600-bedrock");
        remaining_seen.push(remaining.and_then(|v| v.parse::<u64>().ok()));
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["usage"]["prompt_tokens"], 5, "{body}");
        assert!(remaining_seen.len() < 5, "the limit never bit");
    };
    assert_eq!(remaining_seen, [Some(10), Some(5)]);
    assert_eq!(refused.status(), 429);
    // Another consumer's window is its own.
    let bob = client
        .post(stack.url("/chat"))
        .header("apikey", "key-bob")
        .json(&serde_json::json!({"input": "alpha"}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(bob.status(), 200);
}
