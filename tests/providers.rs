//! Two providers behind one route: a Bedrock model and an OpenAI-compatible one, balanced
//! and failed over across, with one OpenAI answer shape whichever served.

use aigw_emulator::{Fault, ModelKnobs, Operation};
use aigw_tests::{
    Stack, assert_usage_adds_up, header_text, mixed_providers_yaml, polish_writer_question,
};
use serde_json::{Value, json};

const NOVA: &str = "us.amazon.nova-micro-v1:0";
const GPT: &str = "gpt-4o-mini";
const KEY: &str = "sk-test-inline";

/// A [`mixed`] stack whose `model` answers every request with a throttling error.
async fn mixed_with_throttled(model: &str) -> Stack {
    let stack = mixed().await;
    stack
        .emulator
        .knobs()
        .set_model(model, ModelKnobs::with_fault(Fault::throttling(), None));
    stack
}

async fn mixed() -> Stack {
    Stack::start_with(|url| mixed_providers_yaml(url, Some(KEY))).await
}

/// POSTs `body` and returns the status, the serving-model header and the JSON body.
async fn post(stack: &Stack, body: &Value) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(stack.url("/mixed-route"))
        .json(body)
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    let served = header_text(response.headers(), "x-aigw-llm-model");
    (status, served, response.json().await.expect("JSON body"))
}

fn assert_openai_shape(body: &Value, model: &str) {
    assert_eq!(body["object"], "chat.completion", "{body}");
    assert_eq!(body["model"], model, "{body}");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(
        content.starts_with(&format!("[{model}] You asked:")),
        "{content}"
    );
    assert_usage_adds_up(body);
}

#[tokio::test]
async fn round_robin_alternates_between_bedrock_and_openai() {
    let stack = mixed().await;
    let mut served = Vec::new();
    for _ in 0..4 {
        let (status, header, body) = post(&stack, &polish_writer_question()).await;
        assert_eq!(status, 200, "{body}");
        let model = body["model"].as_str().expect("model").to_owned();
        assert_openai_shape(&body, &model);
        served.push(header.expect("the serving model is named"));
    }
    let bedrock = format!("bedrock/{NOVA}");
    let openai = format!("openai/{GPT}");
    assert_eq!(served, [bedrock.clone(), openai.clone(), bedrock, openai]);

    let seen = stack.emulator.requests();
    let operations: Vec<Operation> = seen.iter().map(|r| r.operation).collect();
    assert_eq!(
        operations,
        [
            Operation::Converse,
            Operation::ChatCompletions,
            Operation::Converse,
            Operation::ChatCompletions
        ]
    );
    let openai_call = &seen[1];
    assert_eq!(openai_call.model_id, GPT);
    assert_eq!(
        openai_call.headers.get("authorization").map(String::as_str),
        Some("Bearer sk-test-inline")
    );
    assert_eq!(
        openai_call.body["messages"][0]["content"],
        "Who is considered the greatest Polish writer?"
    );
    // The Bedrock call is still signed for its region: one config, two wire protocols.
    assert_eq!(seen[0].region.as_deref(), Some("us-west-2"));
}

#[tokio::test]
async fn throttled_bedrock_fails_over_to_openai_within_the_request() {
    let stack = mixed_with_throttled(NOVA).await;
    for _ in 0..3 {
        let (status, header, body) = post(&stack, &polish_writer_question()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(header.as_deref(), Some("openai/gpt-4o-mini"));
        assert_openai_shape(&body, GPT);
    }
    // Each request that picked Bedrock first reached it, was throttled, and moved on.
    let seen = stack.emulator.requests();
    let throttled = seen.iter().filter(|r| r.model_id == NOVA).count();
    let answered = seen.iter().filter(|r| r.model_id == GPT).count();
    assert_eq!(answered, 3);
    assert!(throttled >= 1, "bedrock was never tried: {seen:?}");
    assert_eq!(seen[0].model_id, NOVA);
    assert_eq!(seen[1].model_id, GPT);
}

#[tokio::test]
async fn throttled_openai_fails_over_to_bedrock_within_the_request() {
    let stack = mixed_with_throttled(GPT).await;
    // Round-robin sends the second request to OpenAI first.
    let (status, header, _) = post(&stack, &polish_writer_question()).await;
    assert_eq!(
        (status, header.as_deref()),
        (200, Some("bedrock/us.amazon.nova-micro-v1:0"))
    );
    let (status, header, body) = post(&stack, &polish_writer_question()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header.as_deref(), Some("bedrock/us.amazon.nova-micro-v1:0"));
    assert_openai_shape(&body, NOVA);

    let seen = stack.emulator.requests();
    let models: Vec<&str> = seen.iter().map(|r| r.model_id.as_str()).collect();
    assert_eq!(models, [NOVA, GPT, NOVA]);
}

#[tokio::test]
async fn throttling_without_http_429_in_the_criteria_reaches_the_client() {
    let stack = Stack::start_with(|url| {
        mixed_providers_yaml(url, Some(KEY)).replace(
            "failover_criteria: [error, timeout, http_429, non_idempotent]",
            "failover_criteria: [error, timeout]",
        )
    })
    .await;
    stack
        .emulator
        .knobs()
        .set_model(NOVA, ModelKnobs::with_fault(Fault::throttling(), None));
    let (status, _, body) = post(&stack, &polish_writer_question()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(stack.emulator.requests().len(), 1);
}

#[tokio::test]
async fn openai_target_streams_openai_sse_through_the_gateway() {
    let stack = mixed().await;
    stack.emulator.knobs().set_default(ModelKnobs {
        answer_words: 5,
        ..ModelKnobs::default()
    });
    // Skip the Bedrock turn of the round-robin.
    let (status, _, _) = post(&stack, &polish_writer_question()).await;
    assert_eq!(status, 200);

    let response = reqwest::Client::new()
        .post(stack.url("/mixed-route"))
        .json(&json!({
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("x-aigw-llm-model")
            .and_then(|v| v.to_str().ok()),
        Some("openai/gpt-4o-mini")
    );
    let text = response.text().await.expect("SSE body");
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect();
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["role"], "assistant",
        "{text}"
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "[gpt-4o-mini] You asked: hi. This");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "{text}"
    );
    let usage = chunks
        .iter()
        .find_map(|c| c["usage"].as_object())
        .expect("a usage chunk");
    assert_eq!(usage["completion_tokens"], 5);
    assert!(chunks.iter().all(|c| c["model"] == GPT));
}
