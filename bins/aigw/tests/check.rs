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
