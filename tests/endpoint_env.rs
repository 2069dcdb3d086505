//! The AWS SDK's own convention: with `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` and keys in the
//! environment, the unchanged seed config sends its Bedrock calls to that endpoint.
//!
//! Its own test binary, because it sets process-wide environment variables.

use aigw_server::BuildOptions;
use aigw_tests::{loopback, post_polish_question, seed_config, start_gateway};

#[test]
fn sdk_endpoint_env_reaches_the_emulator() {
    // The environment is set before any other thread exists; the emulator then takes the
    // port that was free a moment ago.
    let port = std::net::TcpListener::bind(loopback())
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    set_aws_env(&format!("http://127.0.0.1:{port}"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let emulator = runtime
        .block_on(aigw_emulator::start(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            port,
        ))))
        .expect("emulator starts");
    runtime.block_on(async {
        let gateway = start_gateway(&seed_config(), &BuildOptions::default()).await;
        let url = format!("{}/bedrock-route", gateway.url());
        let response = post_polish_question(&reqwest::Client::new(), &url).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["model"], "us.amazon.nova-micro-v1:0");
    });
    let seen = emulator.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].raw_path,
        "/model/us.amazon.nova-micro-v1%3A0/converse"
    );
    assert_eq!(seen[0].region.as_deref(), Some("us-west-2"));
}

#[allow(unsafe_code)]
fn set_aws_env(endpoint: &str) {
    // SAFETY: called before the runtime starts, from the only test of this binary, so no
    // other thread of ours exists to read the environment concurrently.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", endpoint);
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDENVTEST");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "env-test-secret");
        std::env::remove_var("AWS_PROFILE");
    }
}
