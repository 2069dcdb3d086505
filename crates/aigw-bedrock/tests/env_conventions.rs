//! The SDK's environment conventions (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_REGION`, the
//! default credential chain) as the driver sees them.
//!
//! The environment is process-global, and edition 2024 makes changing it `unsafe`, which
//! this workspace forbids. So each scenario runs this test binary again as a child process
//! with exactly the environment it needs (every inherited `AWS_*` variable removed, no
//! profile files, no instance metadata), and the parent checks what reached the emulator.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use aigw_bedrock::{BedrockDriver, BedrockProvider, BedrockTargetSpec};
use aigw_core::{ChatRequest, Error, ErrorKind, Message, ReplyBody, Role};
use aigw_emulator::EmulatorHandle;
use tower::ServiceExt;

const MODEL: &str = "us.amazon.nova-micro-v1:0";
/// Set in a child's environment; child scenarios do nothing without it.
const CHILD: &str = "AIGW_BEDROCK_ENV_CHILD";
/// The emulator's URL, for children whose spec names it explicitly.
const EMULATOR_URL: &str = "AIGW_BEDROCK_TEST_EMULATOR_URL";

async fn emulator() -> EmulatorHandle {
    aigw_emulator::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Runs the ignored test `scenario` in a child process with `envs` on top of a clean
/// AWS environment, and fails if it fails.
async fn run_child(scenario: &'static str, envs: Vec<(&'static str, String)>) {
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args([scenario, "--exact", "--ignored", "--nocapture"]);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        command
            .env("AWS_CONFIG_FILE", "/nonexistent/aigw-test/config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aigw-test/credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(CHILD, "1")
            .envs(envs);
        command.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child {scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn hello() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::User, "hello")].into(),
        ..ChatRequest::default()
    }
}

async fn converse(target: BedrockDriver) -> Result<String, Error> {
    match target.oneshot(hello()).await?.body {
        ReplyBody::Complete(response) => Ok(response.content),
        ReplyBody::Stream(_) => panic!("expected a whole answer"),
    }
}

fn static_spec() -> BedrockTargetSpec {
    BedrockTargetSpec {
        region: Some("us-east-1".into()),
        endpoint_url: Some(std::env::var(EMULATOR_URL).unwrap()),
        static_credentials: Some(("AKIDTEST".into(), "test-secret".into())),
        connect_timeout: Duration::from_secs(2),
        ..BedrockTargetSpec::new(MODEL)
    }
}

#[tokio::test]
async fn service_endpoint_env_reaches_the_emulator() {
    let emulator = emulator().await;
    run_child(
        "child_everything_from_env",
        vec![
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator.endpoint_url()),
            ("AWS_REGION", "eu-west-1".into()),
            ("AWS_ACCESS_KEY_ID", "AKIDENV".into()),
            ("AWS_SECRET_ACCESS_KEY", "env-secret".into()),
        ],
    )
    .await;
    let seen = emulator.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].region.as_deref(), Some("eu-west-1"));
    assert_eq!(seen[0].model_id, MODEL);
}

#[tokio::test]
#[ignore = "run by service_endpoint_env_reaches_the_emulator in a child process"]
async fn child_everything_from_env() {
    if !in_child() {
        return;
    }
    let target = BedrockProvider::new()
        .target(BedrockTargetSpec::new(MODEL))
        .await
        .unwrap();
    let content = converse(target).await.unwrap();
    assert!(content.starts_with(&format!("[{MODEL}]")), "{content}");
}

#[tokio::test]
async fn configured_endpoint_wins_over_env() {
    let emulator = emulator().await;
    run_child(
        "child_configured_endpoint",
        vec![
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", closed_port_url()),
            ("AWS_ENDPOINT_URL", closed_port_url()),
            (EMULATOR_URL, emulator.endpoint_url()),
        ],
    )
    .await;
    assert_eq!(emulator.requests().len(), 1);
}

#[tokio::test]
#[ignore = "run by configured_endpoint_wins_over_env in a child process"]
async fn child_configured_endpoint() {
    if !in_child() {
        return;
    }
    let target = BedrockProvider::new().target(static_spec()).await.unwrap();
    converse(target).await.unwrap();
}

#[tokio::test]
async fn configured_keys_sign_even_with_a_bearer_token_in_env() {
    let emulator = emulator().await;
    run_child(
        "child_configured_keys",
        vec![
            ("AWS_BEARER_TOKEN_BEDROCK", "not-for-this-target".into()),
            (EMULATOR_URL, emulator.endpoint_url()),
        ],
    )
    .await;
    let seen = emulator.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].service.as_deref(), Some("bedrock"));
    assert_eq!(seen[0].region.as_deref(), Some("us-east-1"));
}

#[tokio::test]
#[ignore = "run by configured_keys_sign_even_with_a_bearer_token_in_env in a child process"]
async fn child_configured_keys() {
    if !in_child() {
        return;
    }
    let target = BedrockProvider::new().target(static_spec()).await.unwrap();
    converse(target).await.unwrap();
}

#[tokio::test]
async fn no_region_anywhere_fails_at_build() {
    run_child("child_no_region", vec![]).await;
}

#[tokio::test]
#[ignore = "run by no_region_anywhere_fails_at_build in a child process"]
async fn child_no_region() {
    if !in_child() {
        return;
    }
    let err = BedrockProvider::new()
        .target(BedrockTargetSpec::new(MODEL))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.message().contains("no AWS region"), "{err}");
}

#[tokio::test]
async fn no_credentials_anywhere_is_internal() {
    let emulator = emulator().await;
    run_child(
        "child_no_credentials",
        vec![(EMULATOR_URL, emulator.endpoint_url())],
    )
    .await;
    assert!(emulator.requests().is_empty());
}

#[tokio::test]
#[ignore = "run by no_credentials_anywhere_is_internal in a child process"]
async fn child_no_credentials() {
    if !in_child() {
        return;
    }
    let target = BedrockProvider::new()
        .target(BedrockTargetSpec {
            static_credentials: None,
            ..static_spec()
        })
        .await
        .unwrap();
    let err = converse(target).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
    assert!(err.message().contains("credentials"), "{err}");
}
