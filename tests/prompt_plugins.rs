//! Kong's ai-prompt-guard and ai-prompt-decorator from the decK file unchanged, over HTTP
//! and gRPC alike: a denied prompt is 400 in Kong's words and counted, the decorator's
//! messages reach the model, and a route's own plugin wins over its service's and the
//! global one.

use aigw_tests::{Stack, config_from, counter_value, grpc_client, grpc_question};
use serde_json::{Value, json};

const NOVA: &str = "us.amazon.nova-micro-v1:0";

/// Three routes: `/global` has only the global guard (denies "password"), `/history`
/// the service's guard with allow_all_conversation_history (only the last user message
/// is checked), `/decorated` its own guard (allows only questions about Rust) and the
/// decorator. Route names end in `-{tag}`: metrics are the process's, and tests run at
/// once.
fn deck(tag: &str) -> aigw_config::GatewayConfig {
    config_from(&format!(
        r#"
_format_version: "3.0"
services:
- name: svc
  plugins:
  - name: ai-prompt-guard
    config:
      deny_patterns: [password]
      allow_all_conversation_history: true
  routes:
  - name: history-{tag}
    paths: [/history]
  - name: decorated-{tag}
    paths: [/decorated]
    plugins:
    - name: ai-prompt-guard
      config:
        allow_patterns: ["(?i)rust"]
    - name: ai-prompt-decorator
      config:
        prompts:
          prepend:
          - role: system
            content: You are terse.
          append:
          - role: user
            content: Answer in Polish.
routes:
- name: global-{tag}
  paths: [/global]
plugins:
- name: ai-prompt-guard
  config:
    deny_patterns: [password]
- name: ai-proxy-advanced
  config:
    targets:
    - model: {{provider: bedrock, name: "{NOVA}", options: {{bedrock: {{aws_region: us-west-2}}}}}}
      route_type: llm/v1/chat
"#
    ))
}

fn talk(turns: &[(&str, &str)]) -> Value {
    json!({
        "messages": turns.iter().map(|(role, content)| json!({"role": role, "content": content})).collect::<Vec<_>>()
    })
}

async fn post(stack: &Stack, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(stack.url(path))
        .json(body)
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn denials(stack: &Stack, route: &str) -> u64 {
    counter_value(
        stack,
        &format!("aigw_prompt_guard_denials_total{{route=\"{route}\"}}"),
    )
    .await
}

#[tokio::test]
async fn deny_and_allow_with_history_on_and_off() {
    let stack = Stack::start(&deck("http")).await;
    let old_secret = talk(&[
        ("user", "my password is hunter2"),
        ("assistant", "noted"),
        ("user", "what is the weather?"),
    ]);

    // The whole history is checked: the old user message is denied.
    let (status, body) = post(&stack, "/global", &old_secret).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"], "bad request",
        "Kong's words: {body}"
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(denials(&stack, "global-http").await, 1);
    // allow_all_conversation_history (the service's guard): only the last one counts.
    let (status, body) = post(&stack, "/history", &old_secret).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(&stack, "/history", &talk(&[("user", "reset my password")])).await;
    assert_eq!(status, 400);
    assert_eq!(denials(&stack, "history-http").await, 1);
    // The assistant's words are not checked.
    let (status, _) = post(
        &stack,
        "/global",
        &talk(&[("user", "hi"), ("assistant", "password?"), ("user", "no")]),
    )
    .await;
    assert_eq!(status, 200);

    // The route's own guard replaces the global one: an allow list, no deny list.
    let (status, _) = post(
        &stack,
        "/decorated",
        &talk(&[("user", "Is Rust fast? password")]),
    )
    .await;
    assert_eq!(status, 200, "the global deny does not apply here");
    let (status, body) = post(&stack, "/decorated", &talk(&[("user", "Is Go fast?")])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(denials(&stack, "decorated-http").await, 1);

    // Refused prompts never reach the model: only the three 200s did.
    assert_eq!(stack.emulator.requests().len(), 3);
}

#[tokio::test]
async fn grpc_gets_the_same_guard() {
    let stack = Stack::start(&deck("grpc")).await;
    let mut client = grpc_client(&stack.gateway).await;
    let status = client
        .chat(grpc_question("global-grpc", "what is my password?"))
        .await
        .expect_err("denied");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "bad request");
    assert_eq!(denials(&stack, "global-grpc").await, 1);
    client
        .chat(grpc_question("global-grpc", "what is the weather?"))
        .await
        .expect("allowed");
}

#[tokio::test]
async fn the_decorators_messages_reach_the_model() {
    let stack = Stack::start(&deck("decorator")).await;
    let (status, body) = post(&stack, "/decorated", &talk(&[("user", "Why Rust?")])).await;
    assert_eq!(status, 200, "{body}");
    let seen = stack.emulator.requests();
    let sent = &seen.last().expect("the model was called").body;
    assert_eq!(sent["system"][0]["text"], "You are terse.", "{sent}");
    let turns = sent["messages"].to_string();
    let asked = turns.find("Why Rust?").expect("the question");
    let appended = turns
        .find("Answer in Polish.")
        .expect("the appended prompt");
    assert!(asked < appended, "appended after the conversation: {turns}");
}

#[test]
fn a_pattern_that_does_not_compile_is_refused_with_its_line() {
    let yaml = "_format_version: \"3.0\"\nroutes:\n- name: r\n  paths: [/r]\n  plugins:\n  - name: ai-prompt-guard\n    config:\n      deny_patterns:\n      - ok\n      - \"(unclosed\"\n";
    let err = aigw_config::parse_deck("g.yaml", yaml)
        .expect_err("refused")
        .to_string();
    assert!(
        err.starts_with(
            "g.yaml:10:9: routes[0].plugins[0].config.deny_patterns[1]: pattern does not compile"
        ),
        "{err}"
    );
}
