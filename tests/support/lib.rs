//! Shared harness for aigw's black-box tests: a real Bedrock emulator and a real gateway,
//! each on its own loopback port, talking over sockets.
#![forbid(unsafe_code)]

pub mod otlp;

use std::net::SocketAddr;
use std::path::PathBuf;

use aigw_config::GatewayConfig;
use aigw_emulator::{EmulatorHandle, Fault, ModelKnobs};
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

/// The Python that has the pinned SDKs of tests/python/requirements.txt (openai,
/// anthropic): `AIGW_TEST_PYTHON`, else the venv `.ci/run` makes at the workspace root.
pub fn sdk_python() -> PathBuf {
    let python = std::env::var_os("AIGW_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_file(".venv-tests/bin/python"));
    assert!(
        python.exists(),
        "no Python with the test SDKs at {}: create it with `python3 -m venv .venv-tests && \
         .venv-tests/bin/pip install -r tests/python/requirements.txt` (.ci/run does this), \
         or point AIGW_TEST_PYTHON at one",
        python.display()
    );
    python
}

/// Runs `script` of tests/python with [`sdk_python`] and `args`; fails with the script's
/// output unless it passed (its assertions are what a user of the SDK would see).
pub async fn run_sdk_script(script: &str, args: &[&str]) {
    let python = sdk_python();
    let name = script.to_owned();
    let script = workspace_file(&format!("tests/python/{script}"));
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .expect("python runs")
    })
    .await
    .expect("the script's thread ends");
    assert!(
        output.status.success(),
        "the SDK script {name} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The seed decK file, loaded as a user would load it.
pub fn seed_config() -> GatewayConfig {
    aigw_config::load_deck(&workspace_file("config/ai-proxy-advanced.yaml"))
        .expect("the seed config loads")
}

/// The seed decK file as text, for tests that edit it before loading.
pub fn seed_yaml() -> String {
    std::fs::read_to_string(workspace_file("config/ai-proxy-advanced.yaml"))
        .expect("the seed config is readable")
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

/// Two routes over one Bedrock model: `/open`, and `/locked` behind key-auth
/// (`key_names: [apikey, x-api-key]`) with one consumer holding `key`.
pub fn open_and_locked_deck(key: &str) -> GatewayConfig {
    config_from(&format!(
        r#"{head}  - name: open
    paths: [/open]
  - name: locked
    paths: [/locked]
    plugins:
    - name: key-auth
      config:
        key_names: [apikey, x-api-key]
plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - model: {{provider: bedrock, name: "us.amazon.nova-micro-v1:0", options: {{bedrock: {{aws_region: us-west-2}}}}}}
      route_type: llm/v1/chat
"#,
        head = key_consumer_deck_head(key)
    ))
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
    /// The models the emulator was asked, in order.
    pub fn models_asked(&self) -> Vec<String> {
        self.emulator
            .requests()
            .into_iter()
            .map(|r| r.model_id)
            .collect()
    }

    /// The `status` of every `toolResult` block Bedrock was sent, in order (`None` where
    /// a result carried none).
    pub fn tool_result_statuses(&self) -> Vec<Option<String>> {
        let mut statuses = Vec::new();
        for request in self.emulator.requests() {
            let turns = request.body["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for block in turns
                .iter()
                .filter_map(|t| t["content"].as_array())
                .flatten()
            {
                if let Some(result) = block.get("toolResult") {
                    statuses.push(result["status"].as_str().map(str::to_owned));
                }
            }
        }
        statuses
    }

    /// The `additionalModelRequestFields` of each request Bedrock was sent, in order
    /// (`null` where a request had none).
    pub fn model_fields_sent(&self) -> Vec<serde_json::Value> {
        self.emulator
            .requests()
            .into_iter()
            .map(|r| r.body["additionalModelRequestFields"].clone())
            .collect()
    }

    /// Checks that the requests so far went once to each of `models` (round-robin), in
    /// any order.
    pub fn assert_each_model_asked_once(&self, models: &[&str]) {
        let mut asked = self.models_asked();
        asked.sort();
        let mut expected: Vec<String> = models.iter().map(|m| (*m).to_owned()).collect();
        expected.sort();
        assert_eq!(asked, expected, "one request to each target");
    }

    /// Checks that `failing` was tried and `healthy` answered all `answers` requests:
    /// a failover the client did not see.
    pub fn assert_failed_over(&self, failing: &str, healthy: &str, answers: usize) {
        let asked = self.models_asked();
        let answered = asked.iter().filter(|m| *m == healthy).count();
        assert_eq!(answered, answers, "the healthy target answered: {asked:?}");
        assert!(
            asked.iter().any(|m| m == failing),
            "the failing target was tried: {asked:?}"
        );
    }

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

    /// Starts both with the seed config, every model of the emulator answering with `fault`:
    /// whichever target is picked, the client sees it.
    pub async fn seed_failing_with(fault: Fault) -> Stack {
        let stack = Stack::start(&seed_config()).await;
        stack
            .emulator
            .knobs()
            .set_default(ModelKnobs::with_fault(fault, None));
        stack
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
            ..aigw_proto::v1::Message::default()
        }],
        ..aigw_proto::v1::ChatRequest::default()
    }
}

/// A [`grpc_question`] of "hi" to the first route, carrying the metadata `name: value`.
pub fn grpc_hi_with_metadata(
    name: &'static str,
    value: &str,
) -> tonic::Request<aigw_proto::v1::ChatRequest> {
    let mut request = tonic::Request::new(grpc_question("", "hi"));
    request
        .metadata_mut()
        .insert(name, value.parse().expect("ASCII metadata"));
    request
}

/// The status a fresh gRPC client gets for "hi" to the first route, which the test
/// expects to fail (`why` says why, for the panic when it does not).
pub async fn grpc_hi_refused(gateway: &GatewayHandle, why: &str) -> tonic::Status {
    grpc_client(gateway)
        .await
        .chat(grpc_question("", "hi"))
        .await
        .expect_err(why)
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

/// POSTs [`polish_writer_question`] as JSON to `url` and expects an answer (any status).
pub async fn post_polish_question(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client
        .post(url)
        .json(&polish_writer_question())
        .send()
        .await
        .expect("the gateway answers")
}

/// The opening of a decK file with one consumer, alice, holding key-auth key `key`, and one
/// service whose routes follow (each `  - name: …` at two spaces).
pub fn key_consumer_deck_head(key: &str) -> String {
    format!(
        "\n_format_version: \"3.0\"\nconsumers:\n- username: alice\n  keyauth_credentials:\n  - key: {key}\nservices:\n- name: svc\n  routes:\n"
    )
}

/// POSTs the Polish-writer question to `url` as JSON, with one more header if given: the
/// status, the headers and the body text, for tests of who is let in.
pub async fn post_question_with_header(
    url: &str,
    header: Option<(&str, &str)>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(polish_writer_question().to_string());
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("a body"))
}

/// The text of header `name`, if it is there and is text.
pub fn header_text(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The text of gRPC metadata `name`, if it is there and is text.
pub fn metadata_text(metadata: &tonic::metadata::MetadataMap, name: &str) -> Option<String> {
    metadata
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The gateway's `GET /status/targets` document.
pub async fn targets_status(client: &reqwest::Client, stack: &Stack) -> serde_json::Value {
    client
        .get(stack.status_url("/status/targets"))
        .send()
        .await
        .expect("status answers")
        .json()
        .await
        .expect("status is JSON")
}

/// Asserts an OpenAI chat body's `usage`: both counts above zero, and the total their sum.
pub fn assert_usage_adds_up(body: &serde_json::Value) {
    let usage = &body["usage"];
    let prompt = usage["prompt_tokens"].as_u64().expect("prompt_tokens");
    let completion = usage["completion_tokens"]
        .as_u64()
        .expect("completion_tokens");
    assert!(prompt > 0 && completion > 0, "{usage}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + completion));
}

/// Asserts an OpenAI-style error body's `error.message` contains `part`.
pub fn assert_error_message_names(body: &serde_json::Value, part: &str) {
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains(part), "{message:?} lacks {part:?}");
}

/// The value of the counter sample `series` (name and labels, as the exposition writes
/// them, e.g. `aigw_x_total{route="r"}`) in a scrape of the status listener's `/metrics`.
pub async fn counter_value(stack: &Stack, series: &str) -> u64 {
    let scrape = reqwest::get(stack.status_url("/metrics"))
        .await
        .expect("the status listener answers")
        .text()
        .await
        .expect("text");
    let prefix = format!("{series} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in {scrape}"))
}
