//! Bedrock Runtime's native API (`llm_format: bedrock`) through aigw over Bedrock (the
//! emulator), seen by boto3's `bedrock-runtime` client with only `endpoint_url` changed:
//! Converse with text and a tool round trip, typed exceptions (`ThrottlingException`,
//! `ValidationException`, a wrong key), round-robin across two targets.

use aigw_emulator::{Fault, ModelKnobs};
use aigw_tests::{Stack, config_from, key_consumer_deck_head, run_sdk_script};

const KEY: &str = "boto3-key-7e1d";
/// Two Claude model ids, so the balancer has two targets to choose from.
const FIRST: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";
const SECOND: &str = "us.anthropic.claude-3-7-sonnet-20250219-v1:0";

/// A route as Kong's bedrock-native example has it, with key-auth: ai-proxy-advanced with
/// `llm_format: bedrock` over two Bedrock targets, round-robin.
fn deck() -> String {
    let target = |model: &str| {
        format!(
            "        - model:\n            provider: bedrock\n            name: \"{model}\"\n            \
             options:\n              bedrock:\n                aws_region: us-west-2\n          \
             route_type: llm/v1/chat\n"
        )
    };
    format!(
        "{head}  - name: bedrock\n    paths:\n    - /bedrock\n    plugins:\n    \
         - name: key-auth\n    - name: ai-proxy-advanced\n      config:\n        \
         llm_format: bedrock\n        balancer:\n          algorithm: round-robin\n        \
         targets:\n{first}{second}",
        head = key_consumer_deck_head(KEY),
        first = target(FIRST),
        second = target(SECOND),
    )
}

async fn stack() -> Stack {
    Stack::start(&config_from(&deck())).await
}

/// Runs `scenario` of tests/python/bedrock_api.py with boto3's `endpoint_url` at the
/// route's path.
async fn boto3(stack: &Stack, scenario: &str) {
    run_sdk_script(
        "bedrock_api.py",
        [stack.url("/bedrock"), KEY.to_owned(), scenario.to_owned()],
    )
    .await;
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
async fn boto3_converses() {
    boto3(&stack().await, "text").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_runs_a_tool_round_trip() {
    let stack = stack().await;
    boto3(&stack, "tool_loop").await;
    // The toolResult reached Bedrock in the second turn.
    let results = stack
        .emulator
        .requests()
        .iter()
        .filter(|r| r.body.to_string().contains("toolResult"))
        .count();
    assert_eq!(results, 1, "the second turn carried the tool's result");
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_reads_a_converse_stream() {
    boto3(&stack().await, "stream").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_reads_a_tool_call_from_a_converse_stream() {
    boto3(&stack().await, "stream_tool").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_broken_upstream_ends_in_an_exception_boto3_raises() {
    let stack = stack().await;
    stack.emulator.knobs().set_default(ModelKnobs::with_fault(
        Fault::StreamException {
            after_deltas: 3,
            exception_type: "modelStreamErrorException".into(),
        },
        None,
    ));
    boto3(&stack, "broken_stream").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_catches_a_throttling_exception() {
    let stack = stack().await;
    stack
        .emulator
        .knobs()
        .set_default(ModelKnobs::with_fault(Fault::throttling(), None));
    boto3(&stack, "throttled").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_catches_a_validation_exception_before_bedrock_is_called() {
    let stack = stack().await;
    boto3(&stack, "invalid").await;
    assert!(
        models_called(&stack).is_empty(),
        "refused requests never reach Bedrock"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_an_unrecognized_client() {
    let stack = stack().await;
    boto3(&stack, "wrong_key").await;
    assert!(models_called(&stack).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_takes_turns_across_the_targets() {
    let stack = stack().await;
    boto3(&stack, "twice").await;
    let mut called = models_called(&stack);
    called.sort();
    let mut both = vec![SECOND.to_owned(), FIRST.to_owned()];
    both.sort();
    assert_eq!(called, both, "one request to each target");
}
