//! Kong's `acl` over key-auth's consumers, over HTTP and gRPC alike: a valid key of a
//! consumer whose groups the route does not allow gets 403 (gRPC `PERMISSION_DENIED`),
//! with the most specific acl (route, then service, then global) deciding.

use aigw_tests::post_question_with_header as post;
use aigw_tests::{Stack, config_from, grpc_client, grpc_question};
use serde_json::Value;

/// alice is in ACL group `gold`; bob in consumer group `silver` only; carol in no group.
/// Service `svc` allows gold (so `/gold` follows it), `/silver` allows silver (consumer
/// groups count there), `/open-to-all-but-gold` denies gold, `/global` has no acl of its
/// own and takes the global one, which allows `everyone`.
const DECK: &str = r#"
_format_version: "3.0"
consumer_groups:
- name: silver
  consumers:
  - username: bob
consumers:
- username: alice
  keyauth_credentials:
  - key: key-alice
  acls:
  - group: gold
  - group: everyone
- username: bob
  keyauth_credentials:
  - key: key-bob
  acls:
  - group: everyone
- username: carol
  keyauth_credentials:
  - key: key-carol
services:
- name: svc
  plugins:
  - name: acl
    config: {allow: [gold]}
  routes:
  - name: gold
    paths: [/gold]
  - name: silver
    paths: [/silver]
    plugins:
    - name: acl
      config: {allow: [silver], include_consumer_groups: true}
  - name: not-gold
    paths: [/not-gold]
    plugins:
    - name: acl
      config: {deny: [gold]}
- name: other
  routes:
  - name: global
    paths: [/global]
plugins:
- name: key-auth
- name: acl
  config: {allow: [everyone]}
- name: ai-proxy-advanced
  config:
    targets:
    - model: {provider: bedrock, name: m, options: {bedrock: {aws_region: us-west-2}}}
      route_type: llm/v1/chat
"#;

/// Who gets in where: (path, key, status).
const EXPECTED: &[(&str, &str, u16)] = &[
    ("gold", "key-alice", 200),
    ("gold", "key-bob", 403),
    ("gold", "key-carol", 403),
    ("silver", "key-alice", 403),
    ("silver", "key-bob", 200),
    ("not-gold", "key-alice", 403),
    ("not-gold", "key-bob", 200),
    ("not-gold", "key-carol", 200),
    ("global", "key-alice", 200),
    ("global", "key-bob", 200),
    ("global", "key-carol", 403),
];

#[tokio::test]
async fn acl_allows_and_denies_by_group_over_http() {
    let stack = Stack::start(&config_from(DECK)).await;
    for (route, key, expected) in EXPECTED {
        let (status, _, body) = post(&stack.url(&format!("/{route}")), Some(("apikey", key))).await;
        assert_eq!(status, *expected, "{key} on /{route}: {body}");
        if *expected == 403 {
            let body: Value = serde_json::from_str(&body).expect("an OpenAI-style error body");
            assert_eq!(body["error"]["type"], "permission_error", "{body}");
            assert_eq!(
                body["error"]["message"], "You cannot consume this service",
                "{body}"
            );
        }
    }
    // The key still comes first: a wrong one is 401, not 403.
    let (status, _, _) = post(&stack.url("/gold"), Some(("apikey", "nobody"))).await;
    assert_eq!(status, 401);
    let allowed = EXPECTED.iter().filter(|(_, _, s)| *s == 200).count();
    assert_eq!(
        stack.emulator.requests().len(),
        allowed,
        "refusals never reach a target"
    );
}

#[tokio::test]
async fn acl_allows_and_denies_by_group_over_grpc() {
    let stack = Stack::start(&config_from(DECK)).await;
    let mut client = grpc_client(&stack.gateway).await;
    for (route, key, expected) in EXPECTED {
        let mut request = tonic::Request::new(grpc_question(route, "hi"));
        request
            .metadata_mut()
            .insert("apikey", key.parse().expect("ASCII key"));
        let outcome = client.chat(request).await;
        match expected {
            200 => {
                outcome.unwrap_or_else(|s| panic!("{key} on {route}: {s:?}"));
            }
            _ => {
                let status = outcome.expect_err("refused");
                assert_eq!(
                    status.code(),
                    tonic::Code::PermissionDenied,
                    "{key} on {route}: {status:?}"
                );
                assert_eq!(status.message(), "You cannot consume this service");
            }
        }
    }
}

#[tokio::test]
async fn acl_without_an_authenticated_consumer_is_unauthorized() {
    let deck = DECK.replace("- name: key-auth\n", "");
    let config = config_from(&deck);
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("every request to it gets 401")),
        "{:?}",
        config.warnings
    );
    let stack = Stack::start(&config).await;
    let (status, _, body) = post(&stack.url("/global"), Some(("apikey", "key-alice"))).await;
    assert_eq!(status, 401, "{body}");
    assert!(stack.emulator.requests().is_empty());
}
