//! `GET /status/overview` on the status listener: the build version, when the gateway
//! started, the last errors answered to clients (HTTP and gRPC, refusals, upstream
//! failures and broken streams) and the running configuration, redacted: where each
//! target's credentials come from, never their values, nor a key a client presented.

use aigw_emulator::{Fault, ModelKnobs};
use aigw_tests::{Stack, config_from, grpc_client, grpc_question, key_consumer_deck_head};
use serde_json::{Value, json};

const KEY: &str = "overview-consumer-key-5f1c";
const WRONG_KEY: &str = "presented-wrong-key-93ad";
const LITERAL_SECRET: &str = "literal-secret-0c77";

/// Two routes: an open one over a throttled and a good target (the first with a literal
/// key, the second with its secret from a vault reference), and one behind key-auth and ip-restriction.
/// The vault reference names `HOME`, set in every test environment, so no test has to
/// change the process environment.
fn deck() -> String {
    format!(
        r#"{head}  - name: open-route
    paths: [/open]
    plugins:
    - name: ai-proxy-advanced
      config:
        balancer:
          algorithm: least-connections
          failover_criteria: [error, timeout, http_429, non_idempotent]
        targets:
        - model: {{provider: bedrock, name: throttled-model, options: {{bedrock: {{aws_region: us-west-2}}}}}}
          route_type: llm/v1/chat
          weight: 30
          auth:
            aws_access_key_id: AKIDLITERAL0001
            aws_secret_access_key: {LITERAL_SECRET}
        - model: {{provider: bedrock, name: good-model, options: {{bedrock: {{aws_region: us-west-2}}}}}}
          route_type: llm/v1/chat
          weight: 70
          auth:
            aws_access_key_id: AKIDLITERAL0002
            aws_secret_access_key: "{{vault://env/home}}"
  - name: keyed-route
    paths: [/keyed]
    plugins:
    - name: key-auth
    - name: ip-restriction
      config:
        allow: [127.0.0.1]
    - name: ai-proxy-advanced
      config:
        targets:
        - model: {{provider: bedrock, name: good-model, options: {{bedrock: {{aws_region: us-west-2}}}}}}
          route_type: llm/v1/chat
"#,
        head = key_consumer_deck_head(KEY)
    )
}

async fn overview(stack: &Stack) -> Value {
    let response = reqwest::get(stack.status_url("/status/overview"))
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn overview_shows_version_start_and_the_redacted_configuration() {
    let before = now_ms();
    let stack = Stack::start(&config_from(&deck())).await;
    let body = overview(&stack).await;
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let started = body["started_at_ms"].as_u64().expect("started_at_ms");
    assert!(before <= started && started <= now_ms(), "{started}");
    assert_eq!(body["recent_errors"], json!([]));
    let routes = &body["config"]["routes"];
    assert_eq!(
        routes[0],
        json!({
            "name": "open-route",
            "paths": ["/open"],
            "algorithm": "least-connections",
            "plugins": ["ai-proxy-advanced"],
            "targets": [
                {
                    "label": "bedrock/throttled-model",
                    "weight": 30,
                    "credentials": "AWS access key: literal in the decK file",
                },
                {
                    "label": "bedrock/good-model",
                    "weight": 70,
                    "credentials": "AWS access key: literal in the decK file; secret: env HOME (vault reference)",
                },
            ],
        })
    );
    assert_eq!(routes[1]["name"], "keyed-route");
    assert_eq!(routes[1]["algorithm"], "round-robin");
    assert_eq!(
        routes[1]["plugins"],
        json!(["ai-proxy-advanced", "key-auth", "ip-restriction"])
    );
    // The gateway was built with static test credentials for targets without their own.
    assert_eq!(
        routes[1]["targets"][0]["credentials"],
        "static key from the gateway's build options"
    );
    let text = body.to_string();
    let home = std::env::var("HOME").expect("HOME is set");
    for secret in [LITERAL_SECRET, "AKIDLITERAL0001", KEY, home.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[tokio::test]
async fn recent_errors_name_route_target_status_and_code_newest_first() {
    let stack = Stack::start(&config_from(&deck())).await;
    stack.emulator.knobs().set_model(
        "throttled-model",
        ModelKnobs::with_fault(Fault::throttling(), None),
    );
    let client = reqwest::Client::new();
    let chat = |path: &str, key: Option<&str>| {
        let mut request = client
            .post(stack.url(path))
            .json(&aigw_tests::polish_writer_question());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };

    // 1. A refused key: the route is known, the key is not repeated.
    let refused = chat("/keyed", Some(WRONG_KEY)).await.expect("answers");
    assert_eq!(refused.status(), 401);
    // 2. Both targets throttle: the client sees the last attempt's 429.
    stack.emulator.knobs().set_model(
        "good-model",
        ModelKnobs::with_fault(Fault::throttling(), None),
    );
    let throttled = chat("/open", None).await.expect("answers");
    assert_eq!(throttled.status(), 429);
    stack.emulator.knobs().clear_model("good-model");
    // 3. A stream that breaks off after its head: the client saw 200.
    stack.emulator.knobs().set_model(
        "good-model",
        ModelKnobs::with_fault(Fault::CutStream { after_deltas: 2 }, None),
    );
    let streamed = client
        .post(stack.url("/keyed"))
        .bearer_auth(KEY)
        .json(&json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}))
        .send()
        .await
        .expect("answers");
    assert_eq!(streamed.status(), 200);
    let events = streamed.text().await.expect("the stream ends");
    assert!(events.contains("\"error\""), "{events}");
    stack.emulator.knobs().clear_model("good-model");
    // 4. A gRPC call to a route that does not exist.
    let status = grpc_client(&stack.gateway)
        .await
        .chat(grpc_question("no-such-route", "hi"))
        .await
        .expect_err("no such route");
    assert_eq!(status.code(), tonic::Code::NotFound);

    let body = overview(&stack).await;
    let errors = body["recent_errors"].as_array().expect("a list");
    assert_eq!(errors.len(), 4, "{body:#}");
    let (grpc, broken, upstream, auth) = (&errors[0], &errors[1], &errors[2], &errors[3]);

    assert_eq!(grpc["route"], Value::Null, "{grpc}");
    assert_eq!(grpc["status"], 404);
    assert_eq!(grpc["grpc_code"], tonic::Code::NotFound as i32);
    assert_eq!(grpc["code"], "route_not_found");

    assert_eq!(broken["route"], "keyed-route", "{broken}");
    assert_eq!(broken["target"], "bedrock/good-model");
    assert_eq!(broken["status"], 200, "the head went out as a 200");
    assert_eq!(broken["mid_stream"], true);

    assert_eq!(upstream["route"], "open-route", "{upstream}");
    assert_eq!(upstream["status"], 429);
    assert_eq!(upstream["code"], "rate_limited");
    let last = upstream["target"].as_str().expect("a target");
    assert!(
        ["bedrock/throttled-model", "bedrock/good-model"].contains(&last),
        "{upstream}"
    );
    assert!(
        upstream["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("all 2 attempts failed")),
        "{upstream}"
    );
    assert_eq!(upstream["grpc_code"], Value::Null);
    assert_eq!(upstream["mid_stream"], false);

    assert_eq!(auth["route"], "keyed-route", "{auth}");
    assert_eq!(auth["target"], Value::Null);
    assert_eq!(auth["status"], 401);
    assert_eq!(auth["code"], "unauthorized");

    for error in errors {
        let at = error["at_ms"].as_u64().expect("at_ms");
        assert!(at >= body["started_at_ms"].as_u64().expect("started"));
    }
    let text = body.to_string();
    for secret in [WRONG_KEY, KEY, "Polish writer", LITERAL_SECRET] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[tokio::test]
async fn successes_leave_no_trace_and_the_ring_keeps_the_last_fifty() {
    let stack = Stack::start(&config_from(&deck())).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let (status, _, body) = aigw_tests::chat(
            &client,
            &stack.url("/keyed"),
            &[("authorization", &format!("Bearer {KEY}"))],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(overview(&stack).await["recent_errors"], json!([]));
    // Refusals on a route: request n names an unknown role in its message n.
    for n in 0..55 {
        let mut messages = vec![json!({"role": "user", "content": "hi"}); n];
        messages.push(json!({"role": "robot", "content": "hi"}));
        let response = client
            .post(stack.url("/open"))
            .json(&json!({ "messages": messages }))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 400);
    }
    // Probes of paths no route serves, as scanners send, are not kept: they would push
    // the errors above out of the ring.
    for n in 0..5 {
        let response = client
            .post(stack.url(&format!("/missing-{n}")))
            .json(&aigw_tests::polish_writer_question())
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 404);
    }
    let body = overview(&stack).await;
    let errors = body["recent_errors"].as_array().expect("a list");
    assert_eq!(errors.len(), 50);
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("messages[54]")),
        "newest first: {}",
        errors[0]
    );
    assert!(
        errors[49]["message"]
            .as_str()
            .is_some_and(|m| m.contains("messages[5]")),
        "{}",
        errors[49]
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
