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
    for path in ["/metrics", "/status/targets"] {
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
