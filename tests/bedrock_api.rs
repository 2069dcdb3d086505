//! Bedrock Runtime's native API (`llm_format: bedrock`) through aigw over Bedrock (the
//! emulator), seen by boto3's `bedrock-runtime` client with only `endpoint_url` changed:
//! Converse with text and a tool round trip, typed exceptions (`ThrottlingException`,
//! `ValidationException`, a wrong key), round-robin across two targets, a consumer's AWS
//! key pair verified from boto3's own SigV4 signature; and by the AWS SDK for Rust:
//! converse and converse_stream, with a key header or signed with a consumer's pair.

use aigw_emulator::{Fault, ModelKnobs};
use aigw_tests::{Stack, config_from, run_sdk_script};
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{
    ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_bedrockruntime::error::BoxError;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseStreamOutput, Message, StopReason,
};

const KEY: &str = "boto3-key-7e1d";
/// Alice's AWS key pair (`aigw_aws_credentials`), besides her key.
const ALICE: (&str, &str) = ("AKIDALICEAIGW", "alice-aws-secret-0b5c");
/// Mallory's pair: she is in the group the route's acl denies.
const MALLORY: (&str, &str) = ("AKIDMALLORYAIGW", "mallory-aws-secret-77d0");
/// Two Claude model ids, so the balancer has two targets to choose from.
const FIRST: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";
const SECOND: &str = "us.anthropic.claude-3-7-sonnet-20250219-v1:0";

/// Alice with a key and an AWS key pair, and Mallory with a pair and the `blocked` group.
fn consumers() -> String {
    format!(
        "\n_format_version: \"3.0\"\nconsumers:\n\
         - username: alice\n  keyauth_credentials:\n  - key: {KEY}\n  aigw_aws_credentials:\n  \
         - access_key_id: {}\n    secret_access_key: {}\n\
         - username: mallory\n  acls:\n  - group: blocked\n  aigw_aws_credentials:\n  \
         - {{access_key_id: {}, secret_access_key: {}}}\n\
         services:\n- name: svc\n  routes:\n",
        ALICE.0, ALICE.1, MALLORY.0, MALLORY.1
    )
}

/// A route as Kong's bedrock-native example has it, with key-auth (and an acl denying the
/// `blocked` group): ai-proxy-advanced with `llm_format: bedrock` over two Bedrock targets,
/// round-robin, failing over on a 500 (Kong fails a POST over only with `non_idempotent`);
/// and an OpenAI-format route at `/chat` with key-auth, where no signature is a key.
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
         - name: key-auth\n    - name: acl\n      config: {{deny: [blocked]}}\n    \
         - name: ai-proxy-advanced\n      config:\n        \
         llm_format: bedrock\n        balancer:\n          algorithm: round-robin\n          \
         failover_criteria: [error, timeout, http_500, non_idempotent]\n        \
         targets:\n{first}{second}  - name: openai\n    paths:\n    - /chat\n    plugins:\n    \
         - name: key-auth\n    - name: ai-proxy-advanced\n      config:\n        \
         targets:\n{first}",
        head = consumers(),
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
    run_sdk_script("bedrock_api.py", &[&stack.url("/bedrock"), KEY, scenario]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_converses_and_its_signature_and_key_stay_at_the_gateway() {
    let stack = stack().await;
    boto3(&stack, "text").await;
    let seen = stack.emulator.requests();
    assert_eq!(seen.len(), 1);
    let headers = &seen[0].headers;
    let authorization = headers.get("authorization").map(String::as_str);
    // Bedrock got the gateway's own signature, not boto3's (signed with AKIDBOTO3CLIENT).
    assert!(
        authorization
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256") && !a.contains("AKIDBOTO3CLIENT")),
        "{authorization:?}"
    );
    assert!(
        !headers.contains_key("apikey"),
        "the consumer key was forwarded"
    );
}

/// Runs a sigv4 scenario of tests/python/bedrock_api.py, boto3 signing with `pair`.
async fn boto3_signing(stack: &Stack, scenario: &str, pair: (&str, &str)) {
    let endpoint = stack.url("/bedrock");
    run_sdk_script(
        "bedrock_api.py",
        &[&endpoint, KEY, scenario, pair.0, pair.1],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_invokes_claude_with_its_own_body_whole_and_streamed() {
    let stack = stack().await;
    boto3(&stack, "invoke").await;
    // Both calls reached Bedrock as Converse calls translated from Claude's body; the
    // refused body reached nothing.
    let seen = stack.emulator.requests();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(
            |r| r.body["messages"][0]["content"][0]["text"] == "What is the weather in Krakow?"
        ),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_counts_tokens_of_a_converse_input_and_of_claudes_body() {
    let stack = stack().await;
    boto3(&stack, "count_tokens").await;
    assert_eq!(stack.models_asked().len(), 1, "counting answered nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_anthropic_sdks_bedrock_client_signs_with_a_consumers_pair() {
    let stack = stack().await;
    boto3_signing(&stack, "anthropic_bedrock", ALICE).await;
    assert_eq!(
        stack.tool_result_statuses(),
        [None],
        "the tool's result reached Bedrock in the streamed second turn"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_signing_with_a_consumers_key_pair_needs_no_key() {
    let stack = stack().await;
    boto3_signing(&stack, "sigv4", ALICE).await;
    let seen = stack.emulator.requests();
    assert_eq!(
        seen.len(),
        2,
        "converse and converse_stream reached Bedrock"
    );
    for request in &seen {
        let authorization = request.headers.get("authorization").map(String::as_str);
        // Bedrock got the gateway's own signature, never the client's.
        assert!(
            authorization
                .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256") && !a.contains(ALICE.0)),
            "{authorization:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_is_an_invalid_signature_boto3_raises() {
    let stack = stack().await;
    boto3_signing(&stack, "sigv4_wrong_secret", ALICE).await;
    assert!(stack.models_asked().is_empty(), "refused before Bedrock");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_whose_pair_signed_is_the_one_acl_refuses() {
    let stack = stack().await;
    boto3_signing(&stack, "sigv4_denied", MALLORY).await;
    assert!(stack.models_asked().is_empty(), "refused before Bedrock");
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_runs_a_tool_round_trip() {
    let stack = stack().await;
    boto3(&stack, "tool_loop").await;
    // The toolResult reached Bedrock in the second turn.
    assert_eq!(
        stack.tool_result_statuses().len(),
        1,
        "the second turn carried the tool's result"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_sees_stop_sequences_and_sends_failed_tool_results() {
    let stack = stack().await;
    boto3(&stack, "stops_and_tool_errors").await;
    assert_eq!(
        stack.tool_result_statuses(),
        [Some("error".to_owned())],
        "the toolResult's status reached Bedrock"
    );
    // top_k went to Bedrock among the additional model fields.
    assert_eq!(stack.model_fields_sent()[0]["top_k"], serde_json::json!(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_sees_a_guardrail_intervene_as_bedrock_says_it() {
    let stack = stack().await;
    stack
        .emulator
        .knobs()
        .set_default(ModelKnobs::with_guardrail_intervening());
    boto3(&stack, "guardrail").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_sees_cache_writes_then_cache_reads_counted_apart() {
    boto3(&stack().await, "cache").await;
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
        stack.models_asked().is_empty(),
        "refused requests never reach Bedrock"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_an_unrecognized_client() {
    let stack = stack().await;
    boto3(&stack, "wrong_key").await;
    assert!(stack.models_asked().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_takes_turns_across_the_targets() {
    let stack = stack().await;
    boto3(&stack, "twice").await;
    stack.assert_each_model_asked_once(&[FIRST, SECOND]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_target_fails_over_unseen_by_boto3() {
    let stack = stack().await;
    stack
        .emulator
        .knobs()
        .set_model(FIRST, ModelKnobs::with_fault(Fault::internal_error(), None));
    boto3(&stack, "twice").await;
    stack.assert_failed_over(FIRST, SECOND, 2);
}

/// The AWS SDK for Rust with only its endpoint at the route's path, dummy credentials and
/// no retries (a retry would hide what the gateway answered), sending the consumer's key
/// on every call: key-auth as on any route, since an unknown pair's signature is no key.
fn rust_client(stack: &Stack) -> Client {
    let config = signing_config(stack, ("AKID", "SECRET"))
        .interceptor(ApiKeyHeader)
        .build();
    Client::from_conf(config)
}

/// Adds the consumer's key header to each request the SDK sends.
#[derive(Debug)]
struct ApiKeyHeader;

impl Intercept for ApiKeyHeader {
    fn name(&self) -> &'static str {
        "ApiKeyHeader"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context.request_mut().headers_mut().insert("apikey", KEY);
        Ok(())
    }
}

/// The AWS SDK for Rust signing with `pair`, held by a static credentials provider.
fn signing_client(stack: &Stack, pair: (&str, &str)) -> Client {
    Client::from_conf(signing_config(stack, pair).build())
}

fn signing_config(stack: &Stack, pair: (&str, &str)) -> aws_sdk_bedrockruntime::config::Builder {
    aws_sdk_bedrockruntime::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-west-2"))
        .endpoint_url(stack.url("/bedrock"))
        .credentials_provider(Credentials::new(pair.0, pair.1, None, None, "test"))
        .retry_config(RetryConfig::disabled())
}

fn question() -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text("What is the weather in Krakow?".into()))
        .build()
        .expect("a valid message")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_sdk_for_rust_converses_and_streams() {
    let stack = stack().await;
    let client = rust_client(&stack);
    let answer = client
        .converse()
        .model_id(FIRST)
        .messages(question())
        .send()
        .await
        .expect("converse through aigw");
    assert_eq!(answer.stop_reason(), &StopReason::EndTurn);
    let whole = answer
        .output()
        .and_then(|o| o.as_message().ok())
        .and_then(|m| m.content().first())
        .and_then(|b| b.as_text().ok())
        .cloned()
        .expect("a text answer");
    assert!(answer.usage().is_some_and(|u| u.output_tokens() > 0));

    let mut stream = client
        .converse_stream()
        .model_id(FIRST)
        .messages(question())
        .send()
        .await
        .expect("converse_stream through aigw")
        .stream;
    let (mut text, mut stop, mut usage) = (String::new(), None, None);
    while let Some(event) = stream.recv().await.expect("frames the SDK accepts") {
        match event {
            ConverseStreamOutput::ContentBlockDelta(e) => {
                if let Some(Ok(piece)) = e.delta().map(|d| d.as_text()) {
                    text.push_str(piece);
                }
            }
            ConverseStreamOutput::MessageStop(e) => stop = Some(e.stop_reason().clone()),
            ConverseStreamOutput::Metadata(e) => usage = e.usage().map(|u| u.output_tokens()),
            _ => {}
        }
    }
    assert_eq!(stop, Some(StopReason::EndTurn));
    assert!(usage.is_some_and(|n| n > 0), "{usage:?}");
    // The emulator's answer opens with the model that gave it, which round-robin changes.
    let tail = |s: &str| s.split_once("] ").map(|(_, t)| t.to_owned());
    assert_eq!(
        tail(&text),
        tail(&whole),
        "the stream says what converse said"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_sdk_for_rust_sees_a_throttling_exception() {
    let stack = stack().await;
    stack
        .emulator
        .knobs()
        .set_default(ModelKnobs::with_fault(Fault::throttling(), None));
    let error = rust_client(&stack)
        .converse()
        .model_id(FIRST)
        .messages(question())
        .send()
        .await
        .expect_err("throttled");
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_throttling_exception()),
        "{error:?}"
    );
}

/// The deck with the route at `/`, where SDKs post to the bare `/model/{modelId}/…`.
fn root_deck() -> String {
    deck().replace("    - /bedrock\n", "    - /\n")
}

#[tokio::test]
async fn at_the_root_path_the_bare_model_paths_answer_in_bedrocks_shape() {
    let stack = Stack::start(&config_from(&root_deck())).await;
    let hi = serde_json::json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let post = |path: &str, key: Option<&str>| {
        let mut request = reqwest::Client::new().post(stack.url(path)).json(&hi);
        if let Some(key) = key {
            request = request.header("apikey", key);
        }
        async move {
            let response = request.send().await.expect("the gateway answers");
            let status = response.status().as_u16();
            let error_type = response
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, error_type, body)
        }
    };
    let (status, error_type, body) =
        post("/model/us.anthropic.claude%3A0/converse", Some(KEY)).await;
    assert_eq!((status, error_type), (200, None), "{body}");
    assert_eq!(body["stopReason"], "end_turn", "{body}");

    let (status, error_type, body) = post("/model/m/converse", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_type.as_deref(), Some("UnrecognizedClientException"));
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    let (status, error_type, body) = post("/model/m/invoke-later", Some(KEY)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_type.as_deref(), Some("ResourceNotFoundException"));
    assert_eq!(
        stack.models_asked().len(),
        1,
        "only the converse reached Bedrock"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_sdk_for_rust_signing_with_a_consumers_pair_is_let_in_without_a_key() {
    let stack = stack().await;
    let client = signing_client(&stack, ALICE);
    let answer = client
        .converse()
        .model_id(FIRST)
        .messages(question())
        .send()
        .await
        .expect("converse signed with alice's pair");
    assert_eq!(answer.stop_reason(), &StopReason::EndTurn);
    let mut stream = client
        .converse_stream()
        .model_id(FIRST)
        .messages(question())
        .send()
        .await
        .expect("converse_stream signed with alice's pair")
        .stream;
    let mut stop = None;
    while let Some(event) = stream.recv().await.expect("frames the SDK accepts") {
        if let ConverseStreamOutput::MessageStop(e) = event {
            stop = Some(e.stop_reason().clone());
        }
    }
    assert_eq!(stop, Some(StopReason::EndTurn));

    let error = signing_client(&stack, (ALICE.0, "not-alices-secret"))
        .converse()
        .model_id(FIRST)
        .messages(question())
        .send()
        .await
        .expect_err("a wrong secret");
    let raw = error.raw_response().map(|r| r.status().as_u16());
    let code = error.as_service_error().and_then(|e| {
        aws_sdk_bedrockruntime::error::ProvideErrorMetadata::code(e).map(str::to_owned)
    });
    assert_eq!(
        (raw, code.as_deref()),
        (Some(403), Some("InvalidSignatureException")),
        "{error:?}"
    );
    assert_eq!(
        stack.models_asked().len(),
        2,
        "the refusal never reached Bedrock"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumers_signature_opens_only_bedrock_routes() {
    let stack = stack().await;
    let mut client = signing_client(&stack, ALICE).config().to_builder();
    client.set_endpoint_url(Some(stack.url("/chat")));
    let error = Client::from_conf(client.build())
        .converse()
        .model_id(FIRST)
        .messages(question())
        .send()
        .await
        .expect_err("an OpenAI-format route takes keys only");
    let status = error.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(401), "{error:?}");
    assert!(stack.models_asked().is_empty());
}

/// POSTs a Converse body to the route with `authorization`, and an `apikey` if given:
/// the status, `x-amzn-errortype` and message.
async fn post_signed(
    stack: &Stack,
    authorization: &str,
    key: Option<&str>,
) -> (u16, Option<String>, String) {
    let hi = serde_json::json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let mut request = reqwest::Client::new()
        .post(stack.url("/bedrock/model/m/converse"))
        .header("authorization", authorization)
        .json(&hi);
    if let Some(key) = key {
        request = request.header("apikey", key);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    (status, error_type, message)
}

#[tokio::test]
async fn a_malformed_or_stale_signature_is_refused_and_an_unknown_key_id_falls_to_key_auth() {
    let stack = stack().await;
    let malformed = format!("AWS4-HMAC-SHA256 Credential={}/20261203", ALICE.0);
    let (status, error_type, message) = post_signed(&stack, &malformed, None).await;
    assert_eq!(
        (status, error_type.as_deref()),
        (403, Some("InvalidSignatureException")),
        "{message}"
    );
    assert!(
        message.starts_with("Authorization header requires 'Credential', 'SignedHeaders'"),
        "{message}"
    );

    // Signed in 2020 (the date is checked before the signature, which is not computed).
    let stale = format!(
        "AWS4-HMAC-SHA256 Credential={}/20200101/us-east-1/bedrock/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=00",
        ALICE.0
    );
    let response = reqwest::Client::new()
        .post(stack.url("/bedrock/model/m/converse"))
        .header("authorization", &stale)
        .header("x-amz-date", "20200101T000000Z")
        .json(&serde_json::json!({"messages": []}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status().as_u16(), 403);
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Signature expired: 20200101T000000Z is now earlier than"),
        "{body}"
    );

    // A key id no consumer holds: key-auth decides, as for any client with its own AWS
    // credentials.
    let foreign = "AWS4-HMAC-SHA256 Credential=AKIDSOMEONEELSE/20261203/us-east-1/bedrock/\
                   aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
    let (status, error_type, _) = post_signed(&stack, foreign, None).await;
    assert_eq!(
        (status, error_type.as_deref()),
        (401, Some("UnrecognizedClientException"))
    );
    let (status, _, message) = post_signed(&stack, foreign, Some(KEY)).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(
        stack.models_asked().len(),
        1,
        "only the keyed request reached Bedrock"
    );
}
