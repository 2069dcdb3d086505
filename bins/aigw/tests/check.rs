//! `aigw check` on the mixed-providers decK file: its `${{ env "DECK_…" }}` reference
//! must be set, and the resolved key never reaches the terminal.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mixed-providers.yaml")
}

fn check(key: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aigw"));
    command
        .arg("check")
        .arg("--config")
        .arg(fixture())
        .env_remove("AIGW_CONFIG")
        .env_remove("DECK_OPENAI_API_KEY");
    if let Some(key) = key {
        command.env("DECK_OPENAI_API_KEY", key);
    }
    command.output().expect("aigw runs")
}

#[test]
fn a_missing_deck_variable_fails_naming_it_and_where() {
    let output = check(None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mixed-providers.yaml:25:")
            && stderr.contains("config.targets[1].auth.header_value")
            && stderr.contains("environment variable DECK_OPENAI_API_KEY is not set"),
        "{stderr}"
    );
}

#[test]
fn a_set_deck_variable_is_used_but_never_printed() {
    let output = check(Some("sk-very-secret-0123"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("target 1: openai/gpt-4o-mini"), "{stdout}");
    assert!(
        stdout.contains("auth header Authorization: <redacted>"),
        "{stdout}"
    );
    assert!(!stdout.contains("sk-very-secret"), "{stdout}");
    assert!(!stderr.contains("sk-very-secret"), "{stderr}");
}

/// `aigw check` says which enforced plugins guard each route and how, never with what.
#[test]
fn the_routes_plugins_are_listed_without_their_secrets() {
    let deck = std::env::temp_dir().join(format!("aigw-check-plugins-{}.yaml", std::process::id()));
    std::fs::write(
        &deck,
        r#"_format_version: "3.0"
consumers:
- username: alice
  basicauth_credentials:
  - {username: alice, password: hunter2-very-secret}
  acls:
  - group: staff
services:
- name: svc
  routes:
  - name: guarded
    paths: [/guarded]
    plugins:
    - name: basic-auth
    - name: ip-restriction
      config: {allow: [10.0.0.0/8, 192.168.1.1]}
    - name: request-size-limiting
      config: {allowed_payload_size: 2, require_content_length: true}
    - name: acl
      config: {allow: [staff, admins]}
  - name: closed
    paths: [/closed]
    plugins:
    - name: request-termination
      config: {status_code: 503, message: maintenance}
plugins:
- {name: ai-proxy-advanced, config: {targets: [{route_type: llm/v1/chat, model: {provider: bedrock, name: "us.amazon.nova-micro-v1:0", options: {bedrock: {aws_region: us-west-2}}}}]}}
"#,
    )
    .expect("writes the deck");
    let output = Command::new(env!("CARGO_BIN_EXE_aigw"))
        .arg("check")
        .arg("--config")
        .arg(&deck)
        .env_remove("AIGW_CONFIG")
        .output()
        .expect("aigw runs");
    let _ = std::fs::remove_file(&deck);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "basic-auth: 1 consumer credential(s)",
        "ip-restriction: 2 allowed, 0 denied address range(s); refused with 403",
        "request-size-limiting: bodies up to 2097152 bytes, Content-Length required",
        "request-termination: every request answered 503 without reaching a target",
        "acl: allows consumers in group(s) staff, admins; others refused with 403",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    assert!(!stdout.contains("hunter2"), "{stdout}");
}
