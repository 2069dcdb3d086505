//! Kong's `semantic` algorithm over real sockets: the emulator answers Titan embeddings
//! as a hashed bag of words, so a prompt sharing words with a target's description lands
//! on that target; a prompt near no description goes to the `CATCHALL` target; and when
//! the embeddings service goes away, requests still succeed (on the catch-all), and the
//! failures are counted.

use aigw_tests::{Stack, config_from, counter_value, loopback};
use serde_json::json;

const RUST: &str = "us.amazon.nova-micro-v1:0";
const BREAD: &str = "us.amazon.nova-lite-v1:0";
const WEATHER: &str = "us.meta.llama3-3-70b-instruct-v1:0";
const FALLBACK: &str = "us.amazon.nova-pro-v1:0";

/// Titan embeddings from the emulator at `url`.
fn titan(url: &str) -> String {
    format!(
        "    embeddings:\n      model:\n        provider: bedrock\n        name: amazon.titan-embed-text-v2:0\n        options:\n          upstream_url: {url}\n          bedrock: {{aws_region: us-west-2}}\n    vectordb:\n      strategy: redis\n      dimensions: 1024\n"
    )
}

/// OpenAI-compatible embeddings from the emulator at `url`, with a key.
fn openai(url: &str) -> String {
    format!(
        "    embeddings:\n      auth: {{header_name: Authorization, header_value: Bearer sk-test}}\n      model:\n        provider: openai\n        name: text-embedding-3-small\n        options: {{upstream_url: \"{url}/v1/embeddings\"}}\n    vectordb:\n      strategy: pgvector\n      dimensions: 1536\n"
    )
}

fn deck(embeddings: &str) -> aigw_config::GatewayConfig {
    let target = |model: &str, description: &str| {
        format!(
            "    - model: {{provider: bedrock, name: \"{model}\", options: {{bedrock: {{aws_region: us-west-2}}}}}}\n      route_type: llm/v1/chat\n      description: {description}\n"
        )
    };
    config_from(&format!(
        r#"
_format_version: "3.0"
services:
- name: svc
  routes:
  - name: semantic
    paths: [/semantic]
plugins:
- name: ai-proxy-advanced
  config:
    balancer:
      algorithm: semantic
{embeddings}      distance_metric: cosine
      threshold: 0.7
      redis: {{host: redis.invalid, port: 6379}}
    targets:
{}{}{}{}"#,
        target(RUST, "rust programming code compiler"),
        target(BREAD, "bread baking recipes cooking"),
        target(WEATHER, "weather forecast rain temperature"),
        target(FALLBACK, "CATCHALL"),
    ))
}

async fn served_by(stack: &Stack, prompt: &str) -> String {
    let response = reqwest::Client::new()
        .post(stack.url("/semantic"))
        .json(&json!({"messages": [
            {"role": "user", "content": "ignore this older turn about bread"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": prompt},
        ]}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200, "{prompt}");
    let model = response
        .headers()
        .get("x-aigw-llm-model")
        .and_then(|v| v.to_str().ok())
        .expect("the serving model is named")
        .trim_start_matches("bedrock/")
        .to_owned();
    response.text().await.expect("the answer");
    model
}

async fn failures(stack: &Stack) -> u64 {
    counter_value(
        stack,
        "aigw_semantic_embedding_failures_total{route=\"semantic\"}",
    )
    .await
}

#[tokio::test]
async fn prompts_land_on_the_nearest_description_and_the_rest_on_the_catchall() {
    let embeddings = aigw_emulator::start(loopback()).await.expect("emulator");
    let stack = Stack::start(&deck(&titan(&embeddings.endpoint_url()))).await;

    // The last user message decides, as in Kong, not the older turn about bread.
    for (prompt, target) in [
        ("Review my rust code please", RUST),
        ("Any bread recipes for baking?", BREAD),
        ("Will rain change the temperature tomorrow?", WEATHER),
        ("Review my rust code please", RUST),
        // Shares no word with any description: farther than the threshold from all.
        ("Tell me a joke about cats", FALLBACK),
    ] {
        assert_eq!(served_by(&stack, prompt).await, target, "{prompt}");
    }
    assert_eq!(failures(&stack).await, 0);

    // The embeddings service goes away: prompts fall back to the catch-all, counted.
    embeddings.shutdown().await;
    assert_eq!(served_by(&stack, "Compile this rust code").await, FALLBACK);
    assert_eq!(served_by(&stack, "Bake some bread").await, FALLBACK);
    assert_eq!(failures(&stack).await, 2);
}

#[tokio::test]
async fn openai_compatible_embeddings_route_the_same_way() {
    let embeddings = aigw_emulator::start(loopback()).await.expect("emulator");
    let stack = Stack::start(&deck(&openai(&embeddings.endpoint_url()))).await;
    assert_eq!(
        served_by(&stack, "Any bread recipes for baking?").await,
        BREAD
    );
    assert_eq!(
        served_by(&stack, "Tell me a joke about cats").await,
        FALLBACK
    );
}

#[test]
fn check_refuses_a_semantic_plugin_without_vectordb() {
    let yaml = "_format_version: \"3.0\"\nroutes:\n- name: r\n  paths: [/r]\n  plugins:\n  - name: ai-proxy-advanced\n    config:\n      balancer: {algorithm: semantic}\n      embeddings: {model: {provider: bedrock, name: amazon.titan-embed-text-v2:0}}\n      targets:\n      - model: {provider: bedrock, name: m}\n        route_type: llm/v1/chat\n        description: anything\n";
    let err = aigw_config::parse_deck("s.yaml", yaml)
        .expect_err("refused")
        .to_string();
    assert!(
        err.starts_with("s.yaml:8:7: routes[0].plugins[0].config.vectordb: required field missing"),
        "{err}"
    );
}
