//! Shared harness for aigw's black-box tests: a real Bedrock emulator and a real gateway,
//! each on its own loopback port, talking over sockets.
#![forbid(unsafe_code)]

pub mod otlp;

use std::net::SocketAddr;
use std::path::PathBuf;

use aigw_config::GatewayConfig;
use aigw_emulator::EmulatorHandle;
pub use aigw_server::BuildOptions;
use aigw_server::{Gateway, GatewayHandle, RouteLimits, ServeOptions, build_routes};

/// `127.0.0.1:0`: any free loopback port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The path of a file under the workspace root.
pub fn workspace_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The seed decK file, loaded as a user would load it.
pub fn seed_config() -> GatewayConfig {
    aigw_config::load_deck(&workspace_file("config/ai-proxy-advanced.yaml"))
        .expect("the seed config loads")
}

/// The mixed Bedrock + OpenAI decK file, as text, with its OpenAI upstream at
/// `emulator_url`; its `${{ env "DECK_OPENAI_API_KEY" }}` reference is left for the
/// loader unless `api_key` replaces it.
pub fn mixed_providers_yaml(emulator_url: &str, api_key: Option<&str>) -> String {
    let yaml = std::fs::read_to_string(workspace_file("tests/fixtures/mixed-providers.yaml"))
        .expect("the mixed-providers fixture is readable")
        .replace("http://127.0.0.1:9800", emulator_url);
    match api_key {
        Some(key) => yaml.replace(r#"${{ env \"DECK_OPENAI_API_KEY\" }}"#, key),
        None => yaml,
    }
}

/// A decK file given inline.
pub fn config_from(yaml: &str) -> GatewayConfig {
    aigw_config::parse_deck("inline.yaml", yaml).expect("the test config loads")
}

/// A running emulator and a gateway whose Bedrock calls go to it.
pub struct Stack {
    /// The Bedrock emulator.
    pub emulator: EmulatorHandle,
    /// The gateway.
    pub gateway: GatewayHandle,
}

impl Stack {
    /// Starts both with `config`, unchanged but for the endpoint and test credentials.
    pub async fn start(config: &GatewayConfig) -> Stack {
        Stack::start_tuned(config, RouteLimits::default(), ServeOptions::default()).await
    }

    /// Starts both with `config` and these limits and timeouts.
    pub async fn start_tuned(
        config: &GatewayConfig,
        limits: RouteLimits,
        serve: ServeOptions,
    ) -> Stack {
        let emulator = aigw_emulator::start(loopback())
            .await
            .expect("emulator starts");
        let options = Stack::options_for(&emulator, limits);
        let table = build_routes(config, &options).await.expect("routes build");
        let gateway = Gateway::new(table)
            .with_options(serve)
            .spawn(loopback())
            .await
            .expect("gateway starts");
        Stack { emulator, gateway }
    }

    /// Build options that send Bedrock calls to `emulator` with test credentials.
    pub fn options_for(emulator: &EmulatorHandle, limits: RouteLimits) -> BuildOptions {
        BuildOptions {
            bedrock_endpoint: Some(emulator.endpoint_url()),
            bedrock_credentials: Some(("AKIDTEST".into(), "test-secret".into())),
            limits,
        }
    }

    /// Starts an emulator, then a gateway with the config `make_yaml` writes knowing the
    /// emulator's base URL (for targets that name it as their `upstream_url`).
    pub async fn start_with(make_yaml: impl FnOnce(&str) -> String) -> Stack {
        let emulator = aigw_emulator::start(loopback())
            .await
            .expect("emulator starts");
        let config = config_from(&make_yaml(&emulator.endpoint_url()));
        let options = Stack::options_for(&emulator, RouteLimits::default());
        let gateway = start_gateway(&config, &options).await;
        Stack { emulator, gateway }
    }

    /// `http://gateway/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.url())
    }

    /// `http://status-listener/PATH`: the operator's endpoints (`/metrics`,
    /// `/status/targets`, `/health`).
    pub fn status_url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.status_url())
    }
}

/// Starts a gateway with `config` and `options` on a free port.
pub async fn start_gateway(config: &GatewayConfig, options: &BuildOptions) -> GatewayHandle {
    let table = build_routes(config, options).await.expect("routes build");
    Gateway::new(table)
        .spawn(loopback())
        .await
        .expect("gateway starts")
}

/// The walkthrough's request body.
pub fn polish_writer_question() -> serde_json::Value {
    serde_json::json!({
        "messages": [
            {"role": "user", "content": "Who is considered the greatest Polish writer?"}
        ]
    })
}

/// A one-message gRPC chat request to `route` (empty: the first route).
pub fn grpc_question(route: &str, content: &str) -> aigw_proto::v1::ChatRequest {
    aigw_proto::v1::ChatRequest {
        route: route.to_owned(),
        messages: vec![aigw_proto::v1::Message {
            role: "user".into(),
            content: content.into(),
        }],
        ..aigw_proto::v1::ChatRequest::default()
    }
}

/// A generated-stub gRPC client connected to the gateway.
pub async fn grpc_client(
    gateway: &GatewayHandle,
) -> aigw_proto::v1::chat_service_client::ChatServiceClient<tonic::transport::Channel> {
    aigw_proto::v1::chat_service_client::ChatServiceClient::connect(gateway.url())
        .await
        .expect("gRPC connects")
}

/// A decK file with one route, `POST /lb`, over Bedrock models `(name, weight)`, its
/// `config.balancer` given as `field: value` lines.
pub fn balanced_deck(balancer: &[&str], targets: &[(&str, u32)]) -> GatewayConfig {
    config_from(&balanced_deck_yaml(balancer, targets))
}

/// The text of [`balanced_deck`]'s file, for tests of what loading it refuses.
pub fn balanced_deck_yaml(balancer: &[&str], targets: &[(&str, u32)]) -> String {
    let mut yaml = String::from(
        "_format_version: \"3.0\"\nservices:\n- name: svc\n  host: localhost\n  routes:\n  \
         - name: lb\n    paths:\n    - /lb\n    plugins:\n    - name: ai-proxy-advanced\n      \
         config:\n        balancer:\n",
    );
    for line in balancer {
        yaml.push_str(&format!("          {line}\n"));
    }
    yaml.push_str("        targets:\n");
    for (model, weight) in targets {
        yaml.push_str(&format!(
            "        - model:\n            provider: bedrock\n            name: \"{model}\"\n            \
             options:\n              bedrock:\n                aws_region: us-west-2\n          \
             route_type: llm/v1/chat\n          weight: {weight}\n"
        ));
    }
    yaml
}

/// One chat POST to `url` with `headers`: the status, the serving model (from
/// `x-aigw-llm-model`, without the provider) and the JSON body.
pub async fn chat(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, serde_json::Value) {
    let mut request = client.post(url).json(&polish_writer_question());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let model = response
        .headers()
        .get("x-aigw-llm-model")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bedrock/"))
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, model, body)
}
