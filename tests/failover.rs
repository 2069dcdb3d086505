//! Failover and passive health black-box: one emulated target misbehaves (500, 429, a
//! hang, a refused connection) and the client sees what `failover_criteria`, `retries`,
//! `max_fails` and `fail_timeout` promise.

use std::time::Duration;

use aigw_emulator::{EmulatorHandle, Fault, ModelKnobs};
use aigw_tests::{Stack, balanced_deck, chat};
use serde_json::Value;

const BAD: &str = "bad-model";
const GOOD: &str = "good-model";

fn seen(emulator: &EmulatorHandle, model: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.model_id == model)
        .count()
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

struct Case {
    name: &'static str,
    fault: Fault,
    criterion: &'static str,
    /// What the client sees when the criterion is not configured.
    status: u16,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "500",
            fault: Fault::internal_error(),
            criterion: "http_500",
            status: 502,
        },
        Case {
            name: "429",
            fault: Fault::throttling(),
            criterion: "http_429",
            status: 429,
        },
        Case {
            name: "hang",
            fault: Fault::Hang,
            criterion: "timeout",
            status: 504,
        },
    ]
}

async fn bad_and_good(criteria: &str) -> Stack {
    let deck = balanced_deck(
        &[
            "algorithm: round-robin",
            // Long enough that a healthy answer on a busy CI machine never times out.
            "read_timeout: 1000",
            &format!("failover_criteria: [{criteria}]"),
        ],
        &[(BAD, 100), (GOOD, 100)],
    );
    let stack = Stack::start(&deck).await;
    stack.emulator.knobs().set_model(BAD, ModelKnobs::default());
    stack
}

#[tokio::test]
async fn each_configured_criterion_fails_over_to_the_healthy_target() {
    // The cases run side by side: the hang case waits out read_timeout on every request.
    let mut running = tokio::task::JoinSet::new();
    for case in cases() {
        running.spawn(async move {
            let client = reqwest::Client::new();
            let stack = bad_and_good(&format!("error, {}, non_idempotent", case.criterion)).await;
            stack
                .emulator
                .knobs()
                .set_model(BAD, ModelKnobs::with_fault(case.fault.clone(), None));
            for _ in 0..3 {
                let (status, model, body) = chat(&client, &stack.url("/lb"), &[]).await;
                assert_eq!(status, 200, "{}: {body}", case.name);
                assert_eq!(model.as_deref(), Some(GOOD), "{}", case.name);
            }
            let tried = seen(&stack.emulator, BAD);
            assert!(
                (2..=3).contains(&tried),
                "{}: round-robin tried it {tried} times",
                case.name
            );
        });
    }
    while let Some(case) = running.join_next().await {
        case.expect("case passes");
    }
}

#[tokio::test]
async fn an_unconfigured_criterion_reaches_the_client() {
    let client = reqwest::Client::new();
    for case in cases() {
        // Every criterion but this one, so only the missing criterion stops failover.
        let others = ["timeout", "http_429", "http_500"]
            .into_iter()
            .filter(|c| *c != case.criterion)
            .collect::<Vec<_>>()
            .join(", ");
        let stack = bad_and_good(&format!("error, {others}, non_idempotent")).await;
        stack
            .emulator
            .knobs()
            .set_model(BAD, ModelKnobs::with_fault(case.fault.clone(), None));
        let (status, _, body) = chat(&client, &stack.url("/lb"), &[]).await;
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert!(
            message(&body).starts_with(&format!("target 0 (bedrock/{BAD})")),
            "{}: {body}",
            case.name
        );
        assert_eq!(seen(&stack.emulator, GOOD), 0, "{}: no failover", case.name);
    }
}

#[tokio::test]
async fn a_sent_request_fails_over_only_with_non_idempotent() {
    let client = reqwest::Client::new();
    let stack = bad_and_good("error, http_500").await;
    stack
        .emulator
        .knobs()
        .set_model(BAD, ModelKnobs::with_fault(Fault::internal_error(), None));
    let (status, _, body) = chat(&client, &stack.url("/lb"), &[]).await;
    assert_eq!(status, 502, "a chat POST is not idempotent: {body}");
    assert_eq!(seen(&stack.emulator, GOOD), 0);
}

#[tokio::test]
async fn a_refused_connection_fails_over_on_error_by_default() {
    let mut deck = balanced_deck(&["algorithm: round-robin"], &[(BAD, 100), (GOOD, 100)]);
    // Port 1 on loopback: nothing listens, so the connection is refused before sending.
    deck.routes[0].ai.targets[0].model.options.upstream_url = Some("http://127.0.0.1:1".into());
    let stack = Stack::start(&deck).await;
    let client = reqwest::Client::new();
    for _ in 0..4 {
        let (status, model, body) = chat(&client, &stack.url("/lb"), &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(model.as_deref(), Some(GOOD));
    }
}

#[tokio::test]
async fn exhausted_targets_are_each_tried_once_and_all_named() {
    let deck = balanced_deck(
        &["failover_criteria: [error, http_500, non_idempotent]"],
        &[("m-a", 100), ("m-b", 100), ("m-c", 100)],
    );
    let stack = Stack::start(&deck).await;
    stack
        .emulator
        .knobs()
        .set_default(ModelKnobs::with_fault(Fault::internal_error(), None));
    let (status, _, body) = chat(&reqwest::Client::new(), &stack.url("/lb"), &[]).await;
    assert_eq!(status, 502);
    let message = message(&body);
    assert!(message.starts_with("all 3 attempts failed"), "{message}");
    for model in ["m-a", "m-b", "m-c"] {
        assert!(message.contains(&format!("bedrock/{model}")), "{message}");
        assert_eq!(seen(&stack.emulator, model), 1, "{model} tried once");
    }
}

#[tokio::test]
async fn a_lone_target_is_retried_up_to_retries() {
    let deck = balanced_deck(
        &[
            "retries: 3",
            "failover_criteria: [error, http_500, non_idempotent]",
        ],
        &[(BAD, 100)],
    );
    let stack = Stack::start(&deck).await;
    // Fails twice, then answers.
    stack.emulator.knobs().set_model(
        BAD,
        ModelKnobs::with_fault(Fault::internal_error(), Some(2)),
    );
    let (status, _, body) = chat(&reqwest::Client::new(), &stack.url("/lb"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen(&stack.emulator, BAD), 3);
}

#[tokio::test]
async fn a_tripped_target_takes_no_traffic_until_fail_timeout_passes() {
    let deck = balanced_deck(
        &[
            "max_fails: 2",
            "fail_timeout: 1500",
            "failover_criteria: [error, http_500, non_idempotent]",
        ],
        &[(BAD, 100), (GOOD, 100)],
    );
    let stack = Stack::start(&deck).await;
    stack
        .emulator
        .knobs()
        .set_model(BAD, ModelKnobs::with_fault(Fault::internal_error(), None));
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let (status, model, _) = chat(&client, &stack.url("/lb"), &[]).await;
        assert_eq!((status, model.as_deref()), (200, Some(GOOD)));
    }
    assert_eq!(
        seen(&stack.emulator, BAD),
        2,
        "out after max_fails failures"
    );

    let status: Value = client
        .get(stack.status_url("/status/targets"))
        .send()
        .await
        .expect("status answers")
        .json()
        .await
        .expect("JSON");
    let bad = &status["routes"][0]["targets"][0];
    assert_eq!(bad["health"], "unhealthy", "{status}");
    assert!(bad["back_in_ms"].as_f64() > Some(0.0), "{status}");

    // Repaired, the target is tried again once fail_timeout has passed.
    stack.emulator.knobs().clear_model(BAD);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let mut models = Vec::new();
    for _ in 0..4 {
        let (status, model, _) = chat(&client, &stack.url("/lb"), &[]).await;
        assert_eq!(status, 200);
        models.push(model.expect("model header"));
    }
    assert_eq!(models.iter().filter(|m| *m == BAD).count(), 2, "{models:?}");
}

#[tokio::test]
async fn with_every_target_out_the_client_gets_an_immediate_503_naming_them() {
    let deck = balanced_deck(
        &[
            "max_fails: 1",
            "fail_timeout: 60000",
            "failover_criteria: [error, http_500, non_idempotent]",
        ],
        &[("m-a", 100), ("m-b", 100)],
    );
    let stack = Stack::start(&deck).await;
    stack
        .emulator
        .knobs()
        .set_default(ModelKnobs::with_fault(Fault::internal_error(), None));
    let client = reqwest::Client::new();
    let (status, _, _) = chat(&client, &stack.url("/lb"), &[]).await;
    assert_eq!(status, 502, "the failing attempts themselves");
    let (status, _, body) = chat(&client, &stack.url("/lb"), &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "no_healthy_target");
    let message = message(&body);
    for model in ["m-a", "m-b"] {
        assert!(
            message.contains(&format!("bedrock/{model}) back in")),
            "{message}"
        );
    }
    assert_eq!(
        stack.emulator.requests().len(),
        2,
        "nothing more was sent upstream"
    );
}
