//! `aigw check` on the mixed-providers decK file: its `${{ env "DECK_…" }}` reference
//! must be set, and the resolved key never reaches the terminal.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mixed-providers.yaml")
}

/// `aigw check` on `yaml`, written to a temp file named after `name`.
fn check_deck(name: &str, yaml: &str) -> Output {
    let deck = std::env::temp_dir().join(format!("aigw-check-{name}-{}.yaml", std::process::id()));
    std::fs::write(&deck, yaml).expect("writes the deck");
    let output = Command::new(env!("CARGO_BIN_EXE_aigw"))
        .arg("check")
        .arg("--config")
        .arg(&deck)
        .env_remove("AIGW_CONFIG")
        .output()
        .expect("aigw runs");
    let _ = std::fs::remove_file(&deck);
    output
}

/// The stdout of a check that passed; fails the test, showing both streams, otherwise.
fn passes(output: &Output) -> std::borrow::Cow<'_, str> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
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
    let output = check_deck(
        "plugins",
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
    );
    let stdout = passes(&output);
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

/// `aigw check` says what a semantic route uses (in-memory search, not the named vector
/// store), what the prompt plugins check, and a route's router attributes.
#[test]
fn semantic_prompt_plugins_and_router_attributes_are_described() {
    let output = check_deck(
        "semantic",
        r#"_format_version: "3.0"
services:
- name: svc
  routes:
  - name: sem
    paths: ["~/v1/(chat|sem)$"]
    hosts: ["*.example.com"]
    methods: [POST]
    plugins:
    - name: ai-prompt-guard
      config: {deny_patterns: [password], allow_all_conversation_history: true}
    - name: ai-prompt-decorator
      config: {prompts: {prepend: [{content: Be terse.}], append: [{role: user, content: In Polish.}]}}
plugins:
- name: ai-proxy-advanced
  config:
    balancer: {algorithm: semantic}
    embeddings: {model: {provider: bedrock, name: "amazon.titan-embed-text-v2:0", options: {bedrock: {aws_region: us-west-2}}}}
    vectordb: {strategy: redis, dimensions: 1024, distance_metric: cosine, threshold: 0.3, redis: {host: redis.internal, port: 6379}}
    targets:
    - {route_type: llm/v1/chat, description: rust code, model: {provider: bedrock, name: "us.amazon.nova-micro-v1:0", options: {bedrock: {aws_region: us-west-2}}}}
    - {route_type: llm/v1/chat, description: CATCHALL, model: {provider: bedrock, name: "us.amazon.nova-lite-v1:0", options: {bedrock: {aws_region: us-west-2}}}}
"#,
    );
    let stdout = passes(&output);
    for line in [
        "matches only: methods POST; hosts *.example.com",
        "semantic: prompts embedded by bedrock/amazon.titan-embed-text-v2:0 (1024 dimensions), nearest description by cosine distance within 0.3; catch-all target bedrock/us.amazon.nova-lite-v1:0",
        "vectordb.strategy redis accepted, but the description vectors are kept in memory and searched exactly (no redis connection is made)",
        "ai-prompt-decorator: 1 message(s) prepended, 1 appended",
        "ai-prompt-guard: 1 deny and 0 allow pattern(s) over the last user message; refused with 400",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
}

/// A route in Bedrock's native format takes Bedrock targets only, as in Kong: `aigw check`
/// refuses another provider's with the file, line and field.
#[test]
fn a_bedrock_format_route_with_an_openai_target_is_refused_with_its_line() {
    let output = check_deck(
        "bedrock",
        r#"_format_version: "3.0"
services:
- name: svc
  routes:
  - name: native
    paths: [/bedrock]
    plugins:
    - name: ai-proxy-advanced
      config:
        llm_format: bedrock
        targets:
        - route_type: llm/v1/chat
          model:
            provider: openai
            name: gpt-4o-mini
            options: {upstream_url: "http://127.0.0.1:9/v1/chat/completions"}
"#,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(".yaml:14:23:")
            && stderr.contains("config.targets[0].model.provider")
            && stderr.contains("llm_format bedrock takes bedrock targets only, not \"openai\""),
        "{stderr}"
    );
}
