//! What the config allows but aigw cannot serve (`semantic` balancing without its
//! embeddings model, a provider without a driver) is refused by `aigw check` and at start alike, naming the file, line,
//! column and Kong field, with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const AIGW: &str = env!("CARGO_BIN_EXE_aigw");

/// One route over one target, with `algorithm` and `provider` filled in.
fn deck(algorithm: &str, provider: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: svc
  host: localhost
  routes:
  - name: chat
    paths: [/chat]
    plugins:
    - name: ai-proxy-advanced
      config:
        balancer:
          algorithm: {algorithm}
        targets:
        - model:
            provider: {provider}
            name: some-model
          route_type: llm/v1/chat
"#
    )
}

/// `yaml` written to a file of this test's own, removed when dropped.
struct TempDeck(PathBuf);

impl TempDeck {
    fn new(name: &str, yaml: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("aigw-refusals-{}-{name}.yaml", std::process::id()));
        std::fs::write(&path, yaml).expect("the temp file is written");
        TempDeck(path)
    }
}

impl Drop for TempDeck {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `aigw` with `args` and nothing from the caller's environment that would change it.
fn aigw(args: &[&str], config: &Path) -> Command {
    let mut command = Command::new(AIGW);
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("AIGW_CONFIG")
        .env_remove("AIGW_SETTINGS")
        .env("OTEL_SDK_DISABLED", "true");
    command
}

/// The 1-based line and column of the first occurrence of `needle`.
fn position(yaml: &str, needle: &str) -> (usize, usize) {
    yaml.lines()
        .enumerate()
        .find_map(|(i, line)| line.find(needle).map(|col| (i + 1, col + 1)))
        .unwrap_or_else(|| panic!("{needle:?} not in the yaml"))
}

/// Asserts `output` failed with `file:line:col: path: message…` on stderr.
fn assert_refused(output: &Output, deck: &TempDeck, at: (usize, usize), path: &str, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let expected = format!("{}:{}:{}: {path}: {message}", deck.0.display(), at.0, at.1);
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in\n{stderr}"
    );
}

/// Asserts `output` refused the `semantic` algorithm of `yaml` for its missing
/// `embeddings`, at the plugin config's line and the Kong path.
fn assert_semantic_refused(output: &Output, deck: &TempDeck, yaml: &str) {
    assert_refused(
        output,
        deck,
        position(yaml, "balancer:"),
        "services[0].routes[0].plugins[0].config.embeddings",
        "required field missing",
    );
}

/// `aigw check` of `yaml`, written to a temp file named after `name`.
fn check(name: &str, yaml: &str) -> (TempDeck, Output) {
    let file = TempDeck::new(name, yaml);
    let output = aigw(&["check"], &file.0).output().expect("aigw runs");
    (file, output)
}

#[test]
fn check_refuses_semantic_at_its_line_and_path() {
    let yaml = deck("semantic", "bedrock");
    let (file, output) = check("semantic", &yaml);
    assert_semantic_refused(&output, &file, &yaml);
    assert!(output.stdout.is_empty(), "nothing is reported as ok");
}

#[test]
fn check_refuses_a_provider_without_a_driver_at_its_line_and_path() {
    let yaml = deck("round-robin", "anthropic");
    let (file, output) = check("anthropic", &yaml);
    assert_refused(
        &output,
        &file,
        position(&yaml, "anthropic"),
        "services[0].routes[0].plugins[0].config.targets[0].model.provider",
        "\"anthropic\" is not supported yet (supported: bedrock, openai)",
    );
}

#[test]
fn start_up_refuses_what_check_refuses_the_same_way() {
    let yaml = deck("semantic", "bedrock");
    let file = TempDeck::new("start", &yaml);
    let mut child = aigw(&["--listen", "127.0.0.1:0"], &file.0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aigw starts");
    // A gateway that wrongly accepted the file would serve forever: give up on it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("waits").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("aigw started serving a semantic config");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("exit collected");
    assert_semantic_refused(&output, &file, &yaml);
}
