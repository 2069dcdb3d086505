//! The balancer algorithms black-box: real gateway, real emulator with latency knobs, real
//! sockets; which target served each request is read from `x-aigw-llm-model`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aigw_emulator::ModelKnobs;
use aigw_tests::{
    Stack, balanced_deck, balanced_deck_yaml, chat, grpc_client, grpc_hi_with_metadata,
    targets_status,
};
use serde_json::Value;

const FAST: &str = "fast-model";
const SLOW: &str = "slow-model";

fn latency(ms: u64) -> ModelKnobs {
    ModelKnobs {
        latency: Duration::from_millis(ms),
        ..ModelKnobs::default()
    }
}

#[tokio::test]
async fn lowest_latency_moves_traffic_to_the_faster_target() {
    for strategy in ["tpot", "e2e"] {
        let deck = balanced_deck(
            &[
                "algorithm: lowest-latency",
                &format!("latency_strategy: {strategy}"),
            ],
            // The slow target first: it takes the first probe, which also pays for the
            // gateway's first connection, so the fast one is measured warm.
            &[(SLOW, 100), (FAST, 100)],
        );
        let stack = Stack::start(&deck).await;
        stack.emulator.knobs().set_model(SLOW, latency(300));
        let client = reqwest::Client::new();
        let mut served = Vec::new();
        for _ in 0..20 {
            let (status, model, _) = chat(&client, &stack.url("/lb"), &[]).await;
            assert_eq!(status, 200);
            served.push(model.expect("model header"));
        }
        let slow = served.iter().filter(|m| *m == SLOW).count();
        assert!(
            slow <= 2,
            "{strategy}: the slow target is only probed: {served:?}"
        );
        assert!(
            served[served.len() - 10..].iter().all(|m| m == FAST),
            "{strategy}: settled on the fast target: {served:?}"
        );
    }
}

#[tokio::test]
async fn lowest_usage_sends_more_traffic_to_the_target_with_shorter_answers() {
    let deck = balanced_deck(
        &[
            "algorithm: lowest-usage",
            "tokens_count_strategy: completion-tokens",
        ],
        &[("terse-model", 100), ("verbose-model", 100)],
    );
    let stack = Stack::start(&deck).await;
    let words = |answer_words| ModelKnobs {
        answer_words,
        ..ModelKnobs::default()
    };
    stack.emulator.knobs().set_model("terse-model", words(10));
    stack.emulator.knobs().set_model("verbose-model", words(40));
    let client = reqwest::Client::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..50 {
        let (status, model, _) = chat(&client, &stack.url("/lb"), &[]).await;
        assert_eq!(status, 200);
        *counts.entry(model.expect("model header")).or_default() += 1;
    }
    // Equal tokens means four terse answers per verbose one: 40 and 10 of 50.
    let terse = counts.get("terse-model").copied().unwrap_or(0);
    assert!((38..=42).contains(&terse), "{counts:?}");
}

#[tokio::test]
async fn consistent_hashing_keeps_a_key_on_one_target_over_http_and_grpc() {
    let deck = balanced_deck(
        &["algorithm: consistent-hashing", "hash_on_header: X-Session"],
        &[("model-a", 100), ("model-b", 100), ("model-c", 100)],
    );
    let stack = Stack::start(&deck).await;
    let client = reqwest::Client::new();
    let mut homes = HashMap::new();
    for key in 0..30 {
        let key = format!("session-{key}");
        let mut models = Vec::new();
        for _ in 0..3 {
            let (status, model, _) = chat(&client, &stack.url("/lb"), &[("x-session", &key)]).await;
            assert_eq!(status, 200);
            models.push(model.expect("model header"));
        }
        assert!(models.iter().all(|m| *m == models[0]), "{key}: {models:?}");
        homes.insert(key, models[0].clone());
    }
    let distinct: std::collections::HashSet<_> = homes.values().collect();
    assert_eq!(
        distinct.len(),
        3,
        "30 keys spread over all targets: {homes:?}"
    );

    // gRPC metadata keys the same ring.
    let mut grpc = grpc_client(&stack.gateway).await;
    for key in ["session-1", "session-2", "session-3"] {
        let request = grpc_hi_with_metadata("x-session", key);
        let answer = grpc.chat(request).await.expect("chat answers").into_inner();
        assert_eq!(answer.model, homes[key], "{key}");
    }
}

#[tokio::test]
async fn status_endpoint_shows_each_targets_traffic_latency_and_tokens() {
    let deck = balanced_deck(&["algorithm: round-robin"], &[(FAST, 100), (SLOW, 300)]);
    let stack = Stack::start(&deck).await;
    stack.emulator.knobs().set_model(SLOW, latency(40));
    let client = reqwest::Client::new();
    for _ in 0..8 {
        assert_eq!(chat(&client, &stack.url("/lb"), &[]).await.0, 200);
    }
    let status = targets_status(&client, &stack).await;
    let route = &status["routes"][0];
    assert_eq!(route["name"], "lb");
    let targets = route["targets"].as_array().expect("targets");
    let fast = &targets[0];
    let slow = &targets[1];
    assert_eq!(fast["target"], format!("bedrock/{FAST}"));
    assert_eq!(
        (fast["requests"].as_u64(), slow["requests"].as_u64()),
        (Some(2), Some(6))
    );
    for t in targets {
        assert_eq!(t["health"], "healthy", "{t}");
        assert_eq!(t["in_flight"], 0, "{t}");
        assert!(t["tokens"]["total"].as_u64() > Some(0), "{t}");
    }
    // The fast target's first answer also paid for the gateway's first connection, which
    // a peak-EWMA keeps for a while, so only the slow one's floor is certain.
    let e2e = |t: &Value| t["latency_ms"]["e2e"].as_f64().expect("measured");
    assert!(e2e(slow) >= 40.0, "{status}");
    assert!(e2e(fast) > 0.0, "{status}");
}

#[test]
fn semantic_without_embeddings_is_refused_at_start_with_a_clear_reason() {
    let yaml = balanced_deck_yaml(&["algorithm: semantic"], &[(FAST, 100)]);
    let file = std::env::temp_dir().join(format!(
        "aigw-balancer-{}-semantic.yaml",
        std::process::id()
    ));
    std::fs::write(&file, &yaml).expect("the temp file is written");
    // What start-up and a reload read the file with: no silent fallback, nothing to build.
    let loaded = aigw_config::load_deck(&file);
    let _ = std::fs::remove_file(&file);
    let error = loaded.expect_err("semantic is refused").to_string();
    assert!(
        error.starts_with(&format!("{}:", file.display()))
            && error.contains(
                "services[0].routes[0].plugins[0].config.embeddings: required field missing"
            ),
        "{error}"
    );
}

/// 64 clients for 5 s through round-robin 100/300: every request is answered, by the
/// targets in the configured ratio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_for_five_seconds_keep_the_ratio_and_lose_nothing() {
    let deck = balanced_deck(
        &["algorithm: round-robin"],
        &[("light", 100), ("heavy", 300)],
    );
    let stack = Stack::start(&deck).await;
    stack.emulator.emulator().set_recording(false);
    let client = reqwest::Client::new();
    let url = stack.url("/lb");
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let (client, url, sent) = (client.clone(), url.clone(), sent.clone());
            tokio::spawn(async move {
                let mut served: HashMap<String, u64> = HashMap::new();
                while Instant::now() < deadline {
                    sent.fetch_add(1, Ordering::Relaxed);
                    let (status, model, body) = chat(&client, &url, &[]).await;
                    assert_eq!(status, 200, "{body}");
                    *served.entry(model.expect("model header")).or_default() += 1;
                }
                served
            })
        })
        .collect();
    let mut served: HashMap<String, u64> = HashMap::new();
    for client in clients {
        for (model, count) in client.await.expect("client task") {
            *served.entry(model).or_default() += count;
        }
    }
    let light = served.get("light").copied().unwrap_or(0);
    let heavy = served.get("heavy").copied().unwrap_or(0);
    let total = light + heavy;
    assert_eq!(
        total,
        sent.load(Ordering::Relaxed),
        "every request was answered"
    );
    assert_eq!(
        total,
        stack.emulator.emulator().request_count(),
        "one upstream call each"
    );
    // Smooth weighted round-robin is exact per cycle of 4, so a few hundred requests
    // already judge the ratio to well within 1 %, even on a slow, busy CI machine.
    assert!(total >= 400, "enough traffic to judge a ratio: {total}");
    let share = light as f64 / total as f64;
    eprintln!("64 clients, 5 s: {total} requests, light share {share:.4}");
    assert!(
        (0.24..=0.26).contains(&share),
        "light share {share:.4} of {total}"
    );
}
