//! The operator's endpoints are on their own listener (Kong's status API convention): the
//! data port, which anyone reaches, answers `/health` for load balancers and nothing that
//! names routes, models or token counts to a caller when routes take keys.

use aigw_tests::{Stack, config_from, seed_config};
use serde_json::Value;

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn metrics_and_targets_are_on_the_status_listener_only() {
    let stack = Stack::start(&seed_config()).await;
    assert_ne!(stack.gateway.addr(), stack.gateway.status_addr());
    for path in ["/metrics", "/status/targets", "/status/overview"] {
        let (status, body) = get(&stack.url(path)).await;
        assert_eq!(status, 404, "{path} on the data port: {body}");
        assert!(!body.contains("route1"), "{path}: {body}");
        let (status, body) = get(&stack.status_url(path)).await;
        assert_eq!(status, 200, "{path} on the status port: {body}");
    }
    let (status, body) = get(&stack.status_url("/status/targets")).await;
    assert_eq!(status, 200);
    let targets: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(targets["routes"][0]["name"], "route1");

    // Health on both; chat only on the data port.
    for url in [stack.url("/health"), stack.status_url("/health")] {
        let (status, body) = get(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
    }
    let response = reqwest::Client::new()
        .post(stack.status_url("/bedrock-route"))
        .json(&aigw_tests::polish_writer_question())
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 404);
    assert_eq!(stack.emulator.emulator().request_count(), 0);
}

#[tokio::test]
async fn health_on_the_data_port_names_no_routes_when_routes_take_keys() {
    let stack = Stack::start(&config_from(
        r#"
_format_version: "3.0"
consumers:
- username: alice
  keyauth_credentials:
  - key: status-key-0b2e
services:
- name: svc
  routes:
  - name: secret-route
    paths: [/secret]
    plugins:
    - name: key-auth
    - name: ai-proxy-advanced
      config:
        targets:
        - model: {provider: bedrock, name: "us.amazon.nova-micro-v1:0", options: {bedrock: {aws_region: us-west-2}}}
          route_type: llm/v1/chat
"#,
    ))
    .await;
    let (status, body) = get(&stack.url("/health")).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("secret"), "{body}");
    let (status, body) = get(&stack.status_url("/health")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("secret-route"),
        "the operator sees them: {body}"
    );
}

/// A throttled target, failed over from: its failures by kind, the route's failovers and
/// algorithm, and the time to first token of the target that answered, whole or streamed.
#[tokio::test]
async fn targets_show_failures_by_kind_failovers_and_time_to_first_token() {
    let stack = Stack::start(&aigw_tests::balanced_deck(
        &[
            "algorithm: round-robin",
            "failover_criteria: [error, timeout, http_429, non_idempotent]",
        ],
        &[("throttled-model", 100), ("good-model", 100)],
    ))
    .await;
    stack.emulator.knobs().set_model(
        "throttled-model",
        aigw_emulator::ModelKnobs::with_fault(aigw_emulator::Fault::throttling(), None),
    );
    let client = reqwest::Client::new();
    let before = aigw_tests::targets_status(&client, &stack).await;
    let route = &before["routes"][0];
    assert_eq!(route["algorithm"], "round-robin");
    assert_eq!(route["failovers"], 0);
    assert_eq!(route["targets"][1]["ttft_ms"], Value::Null, "{route}");
    assert_eq!(
        route["targets"][0]["failures_by_kind"],
        serde_json::json!({})
    );

    for _ in 0..4 {
        let (status, _, body) = aigw_tests::chat(&client, &stack.url("/lb"), &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    let streamed = client
        .post(stack.url("/lb"))
        .json(&serde_json::json!({
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
        }))
        .send()
        .await
        .expect("answers");
    assert_eq!(streamed.status(), 200);
    streamed.text().await.expect("the stream ends");

    let after = aigw_tests::targets_status(&client, &stack).await;
    let route = &after["routes"][0];
    let throttled = &route["targets"][0];
    let good = &route["targets"][1];
    let refusals = throttled["failures"].as_u64().expect("failures");
    assert!(refusals >= 2, "round robin sent some to it: {route}");
    assert_eq!(
        throttled["failures_by_kind"],
        serde_json::json!({ "rate_limited": refusals }),
        "only kinds that occurred: {route}"
    );
    assert_eq!(
        route["failovers"], refusals,
        "each refusal failed over: {route}"
    );
    assert_eq!(good["failures_by_kind"], serde_json::json!({}));
    let ttft = good["ttft_ms"].as_f64().expect("measured");
    assert!(ttft > 0.0, "{good}");
    assert_eq!(throttled["ttft_ms"], Value::Null, "it never answered");
}
