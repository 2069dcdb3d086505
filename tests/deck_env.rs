//! decK's `${{ env "DECK_…" }}` references: the mixed-providers file, unchanged but for
//! its upstream address, takes the OpenAI key from the environment, and the gateway
//! sends it.
//!
//! Its own test binary, because it sets a process-wide environment variable.

use aigw_server::BuildOptions;
use aigw_tests::{loopback, mixed_providers_yaml, post_polish_question, start_gateway};

#[test]
fn the_key_comes_from_the_environment_and_reaches_the_upstream() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Nothing else runs yet; the config is read only after the variable is set.
    set_key("sk-from-deck-env");
    runtime.block_on(async {
        let emulator = aigw_emulator::start(loopback()).await.expect("emulator");
        let yaml = mixed_providers_yaml(&emulator.endpoint_url(), None);
        let config = aigw_config::parse_deck("mixed-providers.yaml", &yaml).expect("loads");
        let options = BuildOptions {
            bedrock_endpoint: Some(emulator.endpoint_url()),
            bedrock_credentials: Some(("AKIDTEST".into(), "test-secret".into())),
            ..BuildOptions::default()
        };
        let gateway = start_gateway(&config, &options).await;
        let client = reqwest::Client::new();
        for _ in 0..2 {
            let url = format!("{}/mixed-route", gateway.url());
            let response = post_polish_question(&client, &url).await;
            assert_eq!(response.status(), 200);
        }
        let openai = emulator
            .requests()
            .into_iter()
            .find(|r| r.model_id == "gpt-4o-mini")
            .expect("the openai target was called");
        assert_eq!(
            openai.headers.get("authorization").map(String::as_str),
            Some("Bearer sk-from-deck-env")
        );
    });
}

#[allow(unsafe_code)]
fn set_key(value: &str) {
    // SAFETY: the only test of this binary, called before the runtime spawns anything, so
    // no other thread of ours reads the environment concurrently.
    unsafe { std::env::set_var("DECK_OPENAI_API_KEY", value) };
}
