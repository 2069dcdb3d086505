//! Failing closed: a Kong plugin aigw does not enforce, on a route it would serve, makes
//! `aigw check` exit non-zero naming the file, line, column and the plugin, so a gateway
//! never serves a route open that Kong would have protected.

use std::process::Command;

const AIGW: &str = env!("CARGO_BIN_EXE_aigw");

fn deck(plugin: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: svc
  host: localhost
  plugins:
  - name: {plugin}
  routes:
  - name: chat
    paths: [/chat]
    plugins:
    - name: ai-proxy-advanced
      config:
        targets:
        - model:
            provider: bedrock
            name: some-model
          route_type: llm/v1/chat
"#
    )
}

#[test]
fn check_refuses_an_unenforced_plugin_with_its_line_and_name() {
    for plugin in [
        "rate-limiting",
        "request-transformer",
        "ai-semantic-prompt-guard",
    ] {
        let yaml = deck(plugin);
        let path = std::env::temp_dir().join(format!(
            "aigw-fail-closed-{}-{plugin}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, &yaml).expect("the temp file is written");
        let output = Command::new(AIGW)
            .args(["check", "--config"])
            .arg(&path)
            .env_remove("AIGW_CONFIG")
            .env_remove("AIGW_SETTINGS")
            .env("OTEL_SDK_DISABLED", "true")
            .output()
            .expect("aigw runs");
        let _ = std::fs::remove_file(&path);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{plugin}: {stderr}");
        let expected = format!(
            "{}:6:11: services[0].plugins[0].name: plugin \"{plugin}\" applies to route chat, but aigw does not enforce it",
            path.display()
        );
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in\n{stderr}"
        );
    }
}
