//! Anthropic's Messages API (`llm_format: anthropic`) through aigw over Bedrock (the
//! emulator), seen by the official Anthropic Python SDK: text, streams, a tool loop,
//! typed errors, key-auth by `x-api-key` and by bearer token, round-robin and failover.

use aigw_emulator::{Fault, ModelKnobs};
use aigw_tests::{
    Stack, config_from, grpc_client, grpc_question, key_consumer_deck_head, mixed_providers_yaml,
    run_sdk_script,
};

const KEY: &str = "claude-code-key-51c2";
/// Two Claude model ids, so the balancer has two targets to choose from.
const FIRST: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";
const SECOND: &str = "us.anthropic.claude-3-7-sonnet-20250219-v1:0";

/// A route as Kong's Claude Code example has it: key-auth with its default key_names,
/// ai-proxy-advanced with `llm_format: anthropic` over two Bedrock targets, failing over
/// on a 500 (Kong fails a POST over only with `non_idempotent`).
fn deck() -> String {
    let target = |model: &str| {
        format!(
            "        - model:\n            provider: bedrock\n            name: \"{model}\"\n            \
             options:\n              bedrock:\n                aws_region: us-west-2\n          \
             route_type: llm/v1/chat\n"
        )
    };
    format!(
        "{head}  - name: claude\n    paths:\n    - /anthropic\n    plugins:\n    \
         - name: key-auth\n    - name: ai-proxy-advanced\n      config:\n        \
         llm_format: anthropic\n        balancer:\n          algorithm: round-robin\n          \
         failover_criteria: [error, timeout, http_500, non_idempotent]\n        targets:\n{first}{second}",
        head = key_consumer_deck_head(KEY),
        first = target(FIRST),
        second = target(SECOND),
    )
}

async fn stack() -> Stack {
    Stack::start(&config_from(&deck())).await
}

/// Runs `scenario` of tests/python/anthropic_api.py with the SDK's base URL at the
/// route's path.
async fn sdk(stack: &Stack, scenario: &str) {
    run_sdk_script(
        "anthropic_api.py",
        &[&stack.url("/anthropic"), KEY, scenario],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_creates_a_message() {
    sdk(&stack().await, "text").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_streams_a_message() {
    sdk(&stack().await, "stream").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_runs_a_tool_loop_unary_and_streaming() {
    let stack = stack().await;
    sdk(&stack, "tool_loop").await;
    // The tool_result reached Bedrock as a toolResult block of a user turn.
    assert_eq!(
        stack.tool_result_statuses().len(),
        2,
        "both second turns carried the tool's result"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_sees_stop_sequences_and_sends_failed_tool_results() {
    let stack = stack().await;
    sdk(&stack, "stops_and_tool_errors").await;
    assert_eq!(
        stack.tool_result_statuses(),
        [Some("error".to_owned())],
        "is_error reached Bedrock as the toolResult's status"
    );
    // top_k went to Bedrock among the additional model fields.
    assert_eq!(stack.model_fields_sent()[0]["top_k"], serde_json::json!(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_counts_tokens_as_bedrock_counts_them() {
    let stack = stack().await;
    sdk(&stack, "count_tokens").await;
    // Counting answered nothing: the one Converse call is the message the SDK created.
    assert_eq!(stack.models_asked().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_count_tokens_counts_what_http_counts() {
    let stack = stack().await;
    let text = "How many tokens is this question?";
    let (status, body) = post(
        &stack,
        "/anthropic/v1/messages/count_tokens",
        &serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut request = tonic::Request::new(grpc_question("claude", text));
    request
        .metadata_mut()
        .insert("x-api-key", KEY.parse().expect("ASCII"));
    let counted = grpc_client(&stack.gateway)
        .await
        .count_tokens(request)
        .await
        .expect("gRPC counts")
        .into_inner();
    assert!(counted.input_tokens > 0);
    assert_eq!(
        serde_json::json!(counted.input_tokens),
        body["input_tokens"]
    );
    // Without the key, as on every route: refused.
    let refused = grpc_client(&stack.gateway)
        .await
        .count_tokens(grpc_question("claude", text))
        .await
        .expect_err("no key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_sees_thinking_and_sends_it_back() {
    let stack = stack().await;
    sdk(&stack, "thinking").await;
    // The thinking block went back to Bedrock as reasoning content with its signature.
    let sent_back = stack.emulator.requests().iter().any(|r| {
        r.body["messages"].as_array().is_some_and(|turns| {
            turns.iter().any(|turn| {
                turn["content"].as_array().is_some_and(|blocks| {
                    blocks.iter().any(|b| {
                        b["reasoningContent"]["reasoningText"]["signature"]
                            .as_str()
                            .is_some_and(|s| !s.is_empty())
                    })
                })
            })
        })
    });
    assert!(sent_back, "no signed reasoning reached Bedrock");
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_sees_cache_writes_then_cache_reads() {
    sdk(&stack().await, "cache").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_raises_its_typed_errors() {
    let stack = stack().await;
    sdk(&stack, "errors").await;
    assert!(
        stack.models_asked().is_empty(),
        "refused requests never reach Bedrock"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_token_is_a_key_too() {
    sdk(&stack().await, "bearer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_takes_turns_across_the_targets() {
    let stack = stack().await;
    sdk(&stack, "twice").await;
    stack.assert_each_model_asked_once(&[FIRST, SECOND]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_target_fails_over_unseen_by_the_sdk() {
    let stack = stack().await;
    stack
        .emulator
        .knobs()
        .set_model(FIRST, ModelKnobs::with_fault(Fault::internal_error(), None));
    sdk(&stack, "twice").await;
    stack.assert_failed_over(FIRST, SECOND, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_broken_upstream_ends_in_an_error_the_sdk_raises() {
    let stack = stack().await;
    stack.emulator.knobs().set_default(ModelKnobs::with_fault(
        Fault::StreamException {
            after_deltas: 3,
            exception_type: "modelStreamErrorException".into(),
        },
        None,
    ));
    sdk(&stack, "cut_stream").await;
}

/// POSTs `body` with the consumer's key to `path` under the gateway.
async fn post(stack: &Stack, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(stack.url(path))
        .header("x-api-key", KEY)
        .json(body)
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_wrong_path_or_block_is_refused_in_anthropics_shape() {
    let stack = stack().await;
    let hi = serde_json::json!({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = post(&stack, "/anthropic/v1/complete", &hi).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");

    let url_image = serde_json::json!({"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "http://example.invalid/a.png"}}
    ]}]});
    let (status, body) = post(&stack, "/anthropic/v1/messages", &url_image).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("messages[0].content[0].source.type:"),
        "{message}"
    );
    assert!(
        stack.emulator.requests().is_empty(),
        "nothing reached Bedrock"
    );
}

/// A request shaped as Claude Code sends it: `?beta=true`, its beta header, a bearer
/// token, cached system and tool blocks, metadata, temperature 1 and a stream.
#[tokio::test]
async fn a_claude_code_shaped_request_streams_to_the_end() {
    let stack = stack().await;
    let body = serde_json::json!({
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 32000,
        "temperature": 1,
        "stream": true,
        "metadata": {"user_id": "user_abc_account__session_1"},
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ],
        "tools": [{
            "name": "Read",
            "description": "Reads a file.",
            "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                "properties": {"file_path": {"type": "string"}}, "required": ["file_path"],
                "additionalProperties": false},
            "cache_control": {"type": "ephemeral"}
        }],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>context</system-reminder>"},
            {"type": "text", "text": "What is in README.md?", "cache_control": {"type": "ephemeral"}}
        ]}]
    });
    let response = reqwest::Client::new()
        .post(stack.url("/anthropic/v1/messages?beta=true"))
        .header("authorization", format!("Bearer {KEY}"))
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14",
        )
        .json(&body)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200);
    let events = response.text().await.expect("the stream");
    let names: Vec<&str> = events
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{events}");
    assert_eq!(names.last(), Some(&"message_stop"), "{events}");
    assert!(names.contains(&"content_block_delta"), "{events}");
    // The cache points reached Bedrock: after the system prompt, the tool, the last text.
    let sent = &stack.emulator.requests()[0].body;
    let text = sent.to_string();
    assert_eq!(text.matches("cachePoint").count(), 3, "{sent}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openai_compatible_target_answers_anthropic_clients_too() {
    // The mixed fixture balances a Bedrock and an OpenAI-compatible target; only its
    // format changes.
    let stack = Stack::start_with(|url| {
        mixed_providers_yaml(url, Some("sk-upstream")).replace(
            "      config:\n        balancer:",
            "      config:\n        llm_format: anthropic\n        balancer:",
        )
    })
    .await;
    run_sdk_script(
        "anthropic_api.py",
        &[&stack.url("/mixed-route"), KEY, "twice"],
    )
    .await;
    let mut called = stack.models_asked();
    called.sort();
    assert_eq!(called, ["gpt-4o-mini", "us.amazon.nova-micro-v1:0"]);

    // Bedrock counts tokens for Claude models only: a Nova target's refusal comes back
    // as Anthropic's invalid_request_error, saying so.
    let hi = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = post(&stack, "/mixed-route/v1/messages/count_tokens", &hi).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("doesn't support counting tokens")
            && message.contains("us.amazon.nova-micro-v1:0"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn count_tokens_on_a_route_without_a_counting_target_says_so() {
    // The mixed fixture without its Bedrock target: only an OpenAI-compatible one is left.
    let stack = Stack::start_with(|url| {
        let yaml = mixed_providers_yaml(url, Some("sk-upstream")).replace(
            "      config:\n        balancer:",
            "      config:\n        llm_format: anthropic\n        balancer:",
        );
        let bedrock = yaml
            .find("        - model: {provider: bedrock")
            .expect("a bedrock target");
        let openai = yaml
            .find("        - model: {provider: openai")
            .expect("an openai target");
        format!("{}{}", &yaml[..bedrock], &yaml[openai..])
    })
    .await;
    let hi = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = post(&stack, "/mixed-route/v1/messages/count_tokens", &hi).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("count_tokens is not supported on route mixed"),
        "{message}"
    );
}
