//! The OpenAI-compatible endpoint over plain HTTP: OpenAI's answer, chunk and error shapes.

mod common;

use std::time::Duration;

use aigw_emulator::{Fault, ModelKnobs, Operation};
use common::emulator;
use serde_json::{Value, json};

async fn post(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth("sk-anything")
        .json(body)
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn unary_answer_is_a_chat_completion_naming_the_model() {
    let emu = emulator().await;
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}],
        "max_tokens": 5
    });
    let response = post(&emu.endpoint_url(), &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "gpt-4o-mini");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "[gpt-4o-mini] You asked: hi there."
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["prompt_tokens"], 4);
    assert_eq!(answer["usage"]["completion_tokens"], 5);
    assert_eq!(answer["usage"]["total_tokens"], 9);

    let seen = &emu.requests()[0];
    assert_eq!(seen.operation, Operation::ChatCompletions);
    assert_eq!(seen.model_id, "gpt-4o-mini");
    assert_eq!(
        seen.headers.get("authorization").map(String::as_str),
        Some("Bearer sk-anything")
    );
}

fn events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn stream_is_sse_chunks_then_done_with_usage_only_when_asked() {
    let emu = emulator().await;
    emu.knobs().set_default(ModelKnobs {
        answer_words: 4,
        ..ModelKnobs::default()
    });
    for include_usage in [false, true] {
        let body = json!({
            "model": "m", "stream": true,
            "stream_options": {"include_usage": include_usage},
            "messages": [{"role": "user", "content": "hi"}]
        });
        let response = post(&emu.endpoint_url(), &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().ok(),
            Some("text/event-stream")
        );
        let events = events(&response.text().await.expect("body"));
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).expect("chunk json"))
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "[m] You asked: hi.");
        let finish = chunks
            .iter()
            .position(|c| c["choices"][0]["finish_reason"] == "stop");
        assert!(finish.is_some());
        let usage = chunks.iter().position(|c| c["usage"].is_object());
        if include_usage {
            assert_eq!(usage, Some(chunks.len() - 1));
            assert_eq!(chunks[chunks.len() - 1]["usage"]["completion_tokens"], 4);
        } else {
            assert_eq!(usage, None);
        }
    }
}

#[tokio::test]
async fn faults_and_bad_requests_answer_in_openais_error_shape() {
    let emu = emulator().await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    emu.knobs().set_model(
        "gpt-4o-mini",
        ModelKnobs {
            latency: Duration::from_millis(150),
            ..ModelKnobs::with_fault(
                Fault::Status {
                    status: 429,
                    error_type: "requests".into(),
                    message: "Rate limit reached".into(),
                    retry_after: Some(2),
                },
                Some(1),
            )
        },
    );
    let started = std::time::Instant::now();
    let response = post(&emu.endpoint_url(), &body).await;
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "latency knob applies"
    );
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"].to_str().ok(), Some("2"));
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["type"], "requests");
    assert_eq!(error["error"]["message"], "Rate limit reached");
    // The fault count ran out: the next request is answered.
    assert_eq!(post(&emu.endpoint_url(), &body).await.status(), 200);

    let response = post(&emu.endpoint_url(), &json!({"model": "gpt-4o-mini"})).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("messages")),
        "{error}"
    );
    let response = post(
        &emu.endpoint_url(),
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 400);
}
