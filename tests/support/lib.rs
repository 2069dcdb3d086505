//! Shared harness for aigw's black-box tests: a real Bedrock emulator and a real gateway,
//! each on its own loopback port, talking over sockets.
#![forbid(unsafe_code)]

pub mod otlp;

use std::net::SocketAddr;
use std::path::PathBuf;

use aigw_config::GatewayConfig;
use aigw_emulator::EmulatorHandle;
use aigw_server::{BuildOptions, Gateway, GatewayHandle, build_routes};

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
        let emulator = aigw_emulator::start(loopback())
            .await
            .expect("emulator starts");
        let options = BuildOptions {
            bedrock_endpoint: Some(emulator.endpoint_url()),
            bedrock_credentials: Some(("AKIDTEST".into(), "test-secret".into())),
        };
        let gateway = start_gateway(config, &options).await;
        Stack { emulator, gateway }
    }

    /// `http://gateway/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.url())
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
