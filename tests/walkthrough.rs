//! The seed walkthrough end to end: round-robin over two Bedrock models by HTTP, through
//! the real AWS SDK to the emulator.

use aigw_tests::{Stack, assert_usage_adds_up, header_text, post_polish_question, seed_config};

const NOVA: &str = "us.amazon.nova-micro-v1:0";
const LLAMA: &str = "us.meta.llama3-3-70b-instruct-v1:0";

#[tokio::test]
async fn four_posts_alternate_between_the_two_models() {
    let stack = Stack::start(&seed_config()).await;
    let client = reqwest::Client::new();
    let mut models = Vec::new();
    for _ in 0..4 {
        let response = post_polish_question(&client, &stack.url("/bedrock-route")).await;
        assert_eq!(response.status(), 200);
        let header = header_text(response.headers(), "x-aigw-llm-model")
            .expect("the serving model is named in a header");
        let body: serde_json::Value = response.json().await.expect("JSON body");

        // The walkthrough's shape: model, usage, object, choices[0].message/finish_reason.
        let model = body["model"].as_str().expect("model").to_owned();
        assert_eq!(header, format!("bedrock/{model}"));
        assert_eq!(body["object"], "chat.completion");
        assert!(
            body["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("chatcmpl-"))
        );
        let choice = &body["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(choice["message"]["role"], "assistant");
        let content = choice["message"]["content"].as_str().expect("content");
        assert!(
            content.contains(&model),
            "the emulator's answer names its model: {content}"
        );
        assert_usage_adds_up(&body);
        models.push(model);
    }
    assert_eq!(models, [NOVA, LLAMA, NOVA, LLAMA]);

    // What reached "Bedrock": the SDK's real request, signed for the seed's region.
    let seen = stack.emulator.requests();
    assert_eq!(seen.len(), 4);
    let nova = seen
        .iter()
        .find(|r| r.model_id == NOVA)
        .expect("nova was called");
    assert_eq!(nova.method, "POST");
    assert_eq!(nova.raw_path, "/model/us.amazon.nova-micro-v1%3A0/converse");
    assert_eq!(nova.region.as_deref(), Some("us-west-2"));
    assert_eq!(nova.service.as_deref(), Some("bedrock"));
    assert_eq!(
        nova.body["messages"][0]["content"][0]["text"],
        "Who is considered the greatest Polish writer?"
    );
}

#[tokio::test]
async fn health_answers_once_routes_are_loaded() {
    let stack = Stack::start(&seed_config()).await;
    let response = reqwest::get(stack.url("/health")).await.expect("answers");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["routes"][0], "route1");
}
