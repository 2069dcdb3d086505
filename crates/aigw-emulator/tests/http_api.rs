//! The emulator over plain HTTP: authentication, validation, and the `/_emulator` API.

mod common;

use aigw_emulator::{Fault, KnobSet, Operation, SeenRequest};
use common::{NOVA, ask, client, emulator};
use serde_json::{Value, json};

const SIGV4: &str = "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-central-1/bedrock/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date, Signature=0123abcd";

fn body() -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
}

fn error_type(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn unsigned_request_is_forbidden_but_recorded() {
    let emu = emulator().await;
    let response = reqwest::Client::new()
        .post(format!(
            "{}/model/us.amazon.nova-micro-v1%3A0/converse",
            emu.endpoint_url()
        ))
        .json(&body())
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 403);
    assert_eq!(
        error_type(&response),
        Some("MissingAuthenticationTokenException")
    );
    let json: Value = response.json().await.expect("json error body");
    assert!(json["message"].is_string());

    let seen = emu.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].raw_path,
        "/model/us.amazon.nova-micro-v1%3A0/converse"
    );
    assert_eq!(seen[0].model_id, NOVA);
    assert_eq!(seen[0].region, None);
    assert_eq!(seen[0].body, body());
}

#[tokio::test]
async fn signed_for_another_service_is_forbidden() {
    let emu = emulator().await;
    let response = reqwest::Client::new()
        .post(format!("{}/model/m/converse", emu.endpoint_url()))
        .header("authorization", SIGV4.replace("/bedrock/", "/s3/"))
        .json(&body())
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 403);
    assert_eq!(error_type(&response), Some("InvalidSignatureException"));
}

#[tokio::test]
async fn bad_bodies_are_validation_exceptions() {
    let emu = emulator().await;
    let http = reqwest::Client::new();
    let url = format!("{}/model/m/converse", emu.endpoint_url());
    for bad in [
        "not json".to_owned(),
        json!({"messages": []}).to_string(),
        json!({"messages": [{"role": "robot", "content": [{"text": "x"}]}]}).to_string(),
        // A content block is a union of one member.
        json!({"messages": [{"role": "user", "content": [{"text": "x", "cachePoint": {"type": "default"}}]}]}).to_string(),
    ] {
        let response = http
            .post(&url)
            .header("authorization", SIGV4)
            .header("content-type", "application/json")
            .body(bad.clone())
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(error_type(&response), Some("ValidationException"), "{bad}");
    }
    // The unparsable body is recorded as null, the rest as sent; all with the signed region.
    let seen = emu.requests();
    assert_eq!(seen[0].body, Value::Null);
    assert_eq!(seen[1].body, json!({"messages": []}));
    assert!(
        seen.iter()
            .all(|s| s.region.as_deref() == Some("eu-central-1"))
    );
}

#[tokio::test]
async fn arn_model_ids_keep_their_encoding_in_the_raw_path() {
    let emu = emulator().await;
    let arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.amazon.nova-micro-v1:0";
    let out = ask(&client(&emu), arn, "hi")
        .await
        .expect("converse succeeds");
    assert!(common::text_of(&out).starts_with(&format!("[{arn}]")));
    let seen = &emu.requests()[0];
    assert_eq!(seen.model_id, arn);
    assert_eq!(
        seen.raw_path,
        "/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.amazon.nova-micro-v1%3A0/converse"
    );
}

#[tokio::test]
async fn unknown_operation_is_an_aws_style_404() {
    let emu = emulator().await;
    let response = reqwest::Client::new()
        .post(format!(
            "{}/model/m/invoke-with-response-stream",
            emu.endpoint_url()
        ))
        .header("authorization", SIGV4)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 404);
    assert_eq!(error_type(&response), Some("UnknownOperationException"));
}

#[tokio::test]
async fn knob_api_sets_faults_reports_and_resets() {
    let emu = emulator().await;
    let http = reqwest::Client::new();
    let base = format!("{}/_emulator", emu.endpoint_url());

    let health = http
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);

    let put = http
        .put(format!("{base}/knobs"))
        .json(&json!({
            "default": {"answer_words": 7},
            "models": {NOVA: {
                "latency_ms": 1,
                "fault": {"kind": "status", "status": 429, "error_type": "ThrottlingException",
                          "message": "slow down", "retry_after": 2},
                "fault_count": 1
            }}
        }))
        .send()
        .await
        .expect("put knobs");
    assert_eq!(put.status(), 200);

    let sdk = client(&emu);
    let err = ask(&sdk, NOVA, "hi")
        .await
        .expect_err("throttled once")
        .into_service_error();
    assert!(err.is_throttling_exception(), "{err:?}");
    // The model's own knobs replace the default, so its answer has the default length.
    let out = ask(&sdk, NOVA, "hi").await.expect("fault used up");
    assert_eq!(common::text_of(&out).split(' ').count(), 24);
    let other = ask(&sdk, "other", "hi").await.expect("default knobs");
    assert_eq!(common::text_of(&other).split(' ').count(), 7);

    let knobs: KnobSet = http
        .get(format!("{base}/knobs"))
        .send()
        .await
        .expect("get knobs")
        .json()
        .await
        .expect("knob json");
    let nova = &knobs.models[NOVA];
    assert_eq!(nova.fault_count, Some(0), "the countdown is visible");
    assert!(matches!(
        nova.fault,
        Some(Fault::Status { status: 429, .. })
    ));

    let requests: Vec<SeenRequest> = http
        .get(format!("{base}/requests"))
        .send()
        .await
        .expect("get requests")
        .json()
        .await
        .expect("requests json");
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.operation == Operation::Converse));
    assert_eq!(requests[0].service.as_deref(), Some("bedrock"));

    let stats: Value = http
        .get(format!("{base}/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    assert_eq!(stats["requests"], 3);

    let bad = http
        .put(format!("{base}/knobs"))
        .json(&json!({"default": {"latency": 5}}))
        .send()
        .await
        .expect("put bad knobs");
    assert_eq!(
        bad.status(),
        400,
        "unknown fields are rejected, not ignored"
    );

    let reset = http
        .delete(format!("{base}/knobs"))
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status(), 204);
    assert!(emu.knobs().snapshot().models.is_empty());
    let cleared = http
        .delete(format!("{base}/requests"))
        .send()
        .await
        .expect("clear");
    assert_eq!(cleared.status(), 204);
    assert!(emu.requests().is_empty());
}

#[tokio::test]
async fn status_fault_sets_retry_after() {
    let emu = emulator().await;
    emu.knobs()
        .set_default(aigw_emulator::ModelKnobs::with_fault(
            Fault::Status {
                status: 503,
                error_type: "ServiceUnavailableException".into(),
                message: "later".into(),
                retry_after: Some(3),
            },
            None,
        ));
    let response = reqwest::Client::new()
        .post(format!("{}/model/m/converse-stream", emu.endpoint_url()))
        .header("authorization", SIGV4)
        .json(&body())
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 503);
    assert_eq!(error_type(&response), Some("ServiceUnavailableException"));
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("3")
    );
}
