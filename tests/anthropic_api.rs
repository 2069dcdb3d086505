//! Anthropic's Messages API (`llm_format: anthropic`) through aigw over Bedrock (the
//! emulator), seen by the official Anthropic Python SDK: text, streams, a tool loop,
//! typed errors, key-auth by `x-api-key` and by bearer token, round-robin and failover.

use std::process::Command;

use aigw_emulator::{Fault, ModelKnobs};
use aigw_tests::{Stack, config_from, key_consumer_deck_head, test_python, workspace_file};

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
/// route's path; fails with the script's output unless it passed.
async fn sdk(stack: &Stack, scenario: &str) {
    let python = test_python();
    let script = workspace_file("tests/python/anthropic_api.py");
    let base_url = stack.url("/anthropic");
    let scenario = scenario.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(base_url)
            .arg(KEY)
            .arg(&scenario)
            .output()
            .expect("python runs")
    })
    .await
    .expect("the script's thread ends");
    assert!(
        output.status.success(),
        "the Anthropic SDK scenario failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn models_called(stack: &Stack) -> Vec<String> {
    stack
        .emulator
        .requests()
        .into_iter()
        .map(|r| r.model_id)
        .collect()
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
    let results = stack
        .emulator
        .requests()
        .iter()
        .filter(|r| r.body.to_string().contains("toolResult"))
        .count();
    assert_eq!(results, 2, "both second turns carried the tool's result");
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_raises_its_typed_errors() {
    let stack = stack().await;
    sdk(&stack, "errors").await;
    assert!(
        models_called(&stack).is_empty(),
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
    let mut called = models_called(&stack);
    called.sort();
    let mut both = vec![SECOND.to_owned(), FIRST.to_owned()];
    both.sort();
    assert_eq!(called, both, "one request to each target");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_target_fails_over_unseen_by_the_sdk() {
    let stack = stack().await;
    stack
        .emulator
        .knobs()
        .set_model(FIRST, ModelKnobs::with_fault(Fault::internal_error(), None));
    sdk(&stack, "twice").await;
    let called = models_called(&stack);
    let answered = called.iter().filter(|m| *m == SECOND).count();
    assert_eq!(answered, 2, "the healthy target answered both: {called:?}");
    assert!(
        called.iter().any(|m| m == FIRST),
        "the failing target was tried: {called:?}"
    );
}
