//! Kong plugins aigw enforces from the decK file unchanged, over HTTP and gRPC alike:
//! basic-auth, jwt, ip-restriction, request-termination and request-size-limiting; and a
//! plugin it does not enforce stops a reload, leaving the old routes serving.

use aigw_server::RouteLimits;
use aigw_tests::post_question_with_header as post;
use aigw_tests::{Stack, config_from, grpc_client, grpc_question, polish_writer_question};
use serde_json::Value;
use tonic::metadata::MetadataValue;

/// `alice:open-sesame`, as `Authorization: Basic` carries it.
const ALICE: &str = "Basic YWxpY2U6b3Blbi1zZXNhbWU=";
/// `alice:wrong`.
const ALICE_WRONG: &str = "Basic YWxpY2U6d3Jvbmc=";

fn deck() -> String {
    let public_key: String = ES_PUBLIC
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    r#"
_format_version: "3.0"
consumers:
- username: alice
  basicauth_credentials:
  - username: alice
    password: open-sesame
  jwt_secrets:
  - key: alice-hs
    secret: alice-hmac-secret
  - key: alice-es
    algorithm: ES256
    rsa_public_key: |
ES_PUBLIC_KEY
services:
- name: svc
  routes:
  - name: open
    paths: [/open]
  - name: basic
    paths: [/basic]
    plugins:
    - name: basic-auth
      config: {hide_credentials: true}
  - name: jwt
    paths: [/jwt]
    plugins:
    - name: jwt
      config: {claims_to_verify: [exp]}
  - name: deny
    paths: [/deny]
    plugins:
    - name: ip-restriction
      config: {deny: [127.0.0.1, "::1"]}
  - name: allow
    paths: [/allow]
    plugins:
    - name: ip-restriction
      config: {allow: [127.0.0.0/8, "::1/128"]}
  - name: elsewhere
    paths: [/elsewhere]
    plugins:
    - name: ip-restriction
      config: {allow: [10.0.0.0/8], status: 404, message: "nothing here"}
  - name: stop
    paths: [/stop]
    plugins:
    - name: request-termination
      config: {message: "down for maintenance"}
  - name: teapot
    paths: [/teapot]
    plugins:
    - name: request-termination
      config: {status_code: 418, body: "short and stout", content_type: text/plain}
  - name: small
    paths: [/small]
    plugins:
    - name: request-size-limiting
      config: {allowed_payload_size: 64, size_unit: bytes}
plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - model: {provider: bedrock, name: "us.amazon.nova-micro-v1:0", options: {bedrock: {aws_region: us-west-2}}}
      route_type: llm/v1/chat
"#
    .replace("ES_PUBLIC_KEY\n", &public_key)
}

const ES_PUBLIC: &str = include_str!("fixtures/jwt/es256-public.pem");
const ES_PRIVATE: &str = include_str!("fixtures/jwt/es256-private.pem");

/// A token for `key`, signed with `algorithm` (HS256 with alice's secret, or ES256 with
/// the fixture's private key), expiring `exp_in` seconds from now.
fn token(algorithm: jsonwebtoken::Algorithm, key: &str, exp_in: i64) -> String {
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).expect("a sane clock");
    let signing = match algorithm {
        jsonwebtoken::Algorithm::ES256 => {
            jsonwebtoken::EncodingKey::from_ec_pem(ES_PRIVATE.as_bytes()).expect("EC key")
        }
        _ => jsonwebtoken::EncodingKey::from_secret(b"alice-hmac-secret"),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &serde_json::json!({"iss": key, "exp": now + exp_in}),
        &signing,
    )
    .expect("signs")
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

async fn still_serving(stack: &Stack) {
    let (status, _, body) = post(&stack.url("/open"), None).await;
    assert_eq!(status, 200, "the gateway keeps serving: {body}");
}

#[tokio::test]
async fn basic_auth_lets_in_only_a_consumers_password() {
    let stack = Stack::start(&config_from(&deck())).await;
    let url = stack.url("/basic");

    let (status, headers, body) = post(&url, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        headers.get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Basic realm=\"aigw\""[..])
    );
    let body = json(&body);
    assert_eq!(body["error"]["type"], "authentication_error");
    let (status, _, body) = post(&url, Some(("authorization", ALICE_WRONG))).await;
    assert_eq!(status, 401);
    assert!(
        !body.contains("wrong"),
        "a password is never echoed: {body}"
    );
    let (status, _, _) = post(&url, Some(("authorization", "Basic !!!"))).await;
    assert_eq!(status, 401);
    assert!(
        stack.emulator.requests().is_empty(),
        "refused requests stop at the gateway"
    );

    let (status, _, body) = post(&url, Some(("authorization", ALICE))).await;
    assert_eq!(status, 200, "{body}");
    let seen = stack.emulator.requests();
    assert_eq!(seen.len(), 1);
    for (name, value) in &seen[0].headers {
        assert!(
            !value.contains("YWxpY2U6"),
            "credentials are hidden upstream: {name}"
        );
    }
    still_serving(&stack).await;
}

#[tokio::test]
async fn grpc_basic_auth_reads_the_metadata() {
    let stack = Stack::start(&config_from(&deck())).await;
    let mut client = grpc_client(&stack.gateway).await;
    let status = client
        .chat(grpc_question("basic", "hi"))
        .await
        .expect_err("no credentials");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let mut wrong = tonic::Request::new(grpc_question("basic", "hi"));
    wrong
        .metadata_mut()
        .insert("authorization", MetadataValue::from_static(ALICE_WRONG));
    let status = client.chat(wrong).await.expect_err("wrong password");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let mut right = tonic::Request::new(grpc_question("basic", "hi"));
    right
        .metadata_mut()
        .insert("authorization", MetadataValue::from_static(ALICE));
    let answer = client.chat(right).await.expect("the password is accepted");
    assert_eq!(answer.get_ref().object, "chat.completion");
}

#[tokio::test]
async fn jwt_lets_in_only_a_token_signed_with_a_consumers_secret() {
    use jsonwebtoken::Algorithm::{ES256, HS256};
    let stack = Stack::start(&config_from(&deck())).await;
    let url = stack.url("/jwt");

    let (status, headers, body) = post(&url, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers.contains_key("www-authenticate"));
    let refused = [
        token(HS256, "alice-hs", -10), // expired
        token(HS256, "mallory", 60),   // nobody's key
        token(HS256, "alice-es", 60),  // alice's EC key, signed with HMAC
        format!("{}x", token(HS256, "alice-hs", 60)),
    ];
    for bad in &refused {
        let (status, _, body) = post(&url, Some(("authorization", &format!("Bearer {bad}")))).await;
        assert_eq!(status, 401, "{body}");
        assert!(!body.contains(bad.as_str()), "a token is never echoed");
    }
    assert!(stack.emulator.requests().is_empty());

    for good in [token(HS256, "alice-hs", 60), token(ES256, "alice-es", 60)] {
        let (status, _, body) =
            post(&url, Some(("authorization", &format!("Bearer {good}")))).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, _) = post(&format!("{url}?jwt={}", token(HS256, "alice-hs", 60)), None).await;
    assert_eq!(status, 200, "uri_param_names defaults to jwt");

    let mut client = grpc_client(&stack.gateway).await;
    let status = client
        .chat(grpc_question("jwt", "hi"))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut signed = tonic::Request::new(grpc_question("jwt", "hi"));
    signed.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token(ES256, "alice-es", 60))
            .parse()
            .expect("ascii metadata"),
    );
    client.chat(signed).await.expect("the token is accepted");
    still_serving(&stack).await;
}

#[tokio::test]
async fn ip_restriction_checks_the_tcp_peer() {
    let stack = Stack::start(&config_from(&deck())).await;

    let (status, _, body) = post(&stack.url("/deny"), None).await;
    assert_eq!(status, 403, "{body}");
    let body = json(&body);
    assert_eq!(body["error"]["message"], "Your IP address is not allowed");
    assert_eq!(body["error"]["type"], "permission_error");
    // A spoofed forwarding header changes nothing: the peer is the TCP connection's.
    let (status, _, _) = post(&stack.url("/deny"), Some(("x-forwarded-for", "10.1.2.3"))).await;
    assert_eq!(status, 403);

    let (status, _, body) = post(&stack.url("/elsewhere"), None).await;
    assert_eq!(status, 404, "Kong's `status` and `message`: {body}");
    assert_eq!(json(&body)["error"]["message"], "nothing here");
    assert!(stack.emulator.requests().is_empty());

    let (status, _, body) = post(&stack.url("/allow"), None).await;
    assert_eq!(status, 200, "{body}");

    let mut client = grpc_client(&stack.gateway).await;
    let status = client
        .chat(grpc_question("deny", "hi"))
        .await
        .expect_err("denied");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(status.message(), "Your IP address is not allowed");
    client
        .chat(grpc_question("allow", "hi"))
        .await
        .expect("loopback is allowed");
    still_serving(&stack).await;
}

#[tokio::test]
async fn request_termination_answers_without_the_upstream() {
    let stack = Stack::start(&config_from(&deck())).await;

    let (status, _, body) = post(&stack.url("/stop"), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(json(&body)["error"]["message"], "down for maintenance");

    let (status, headers, body) = post(&stack.url("/teapot"), None).await;
    assert_eq!(status, 418);
    assert_eq!(body, "short and stout");
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/plain"[..])
    );

    let mut client = grpc_client(&stack.gateway).await;
    let status = client
        .chat(grpc_question("stop", "hi"))
        .await
        .expect_err("terminated");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "down for maintenance");

    assert!(
        stack.emulator.requests().is_empty(),
        "a terminated route never calls the model"
    );
    still_serving(&stack).await;
}

#[tokio::test]
async fn request_size_limiting_refuses_large_bodies() {
    let stack = Stack::start(&config_from(&deck())).await;
    let body_len = polish_writer_question().to_string().len();
    assert!(body_len > 64, "the question is larger than the limit");

    // Refused from Content-Length, before the body is read.
    let (status, _, body) = post(&stack.url("/small"), None).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        json(&body)["error"]["message"],
        "Request size limit exceeded"
    );

    // A chunked body declares no length: refused while being read, in the same words.
    let chunks = polish_writer_question()
        .to_string()
        .into_bytes()
        .chunks(16)
        .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
        .collect::<Vec<_>>();
    let response = reqwest::Client::new()
        .post(stack.url("/small"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(tokio_stream::iter(chunks)))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 413);
    let body = response.text().await.expect("a body");
    assert_eq!(
        json(&body)["error"]["message"],
        "Request size limit exceeded"
    );

    // At OpenAI's path the route is known only from the body, so it is refused after.
    let response = reqwest::Client::new()
        .post(stack.url("/v1/chat/completions"))
        .json(&serde_json::json!({
            "model": "small",
            "messages": [{"role": "user", "content": "Who is considered the greatest Polish writer?"}],
        }))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 413);

    let mut client = grpc_client(&stack.gateway).await;
    let status = client
        .chat(grpc_question("small", &"x".repeat(100)))
        .await
        .expect_err("too large");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    client
        .chat(grpc_question("small", "hi"))
        .await
        .expect("a small message fits");

    assert_eq!(stack.emulator.requests().len(), 1);
    still_serving(&stack).await;
}

/// Failing closed on reload too: a file that adds a plugin aigw does not enforce is
/// refused, naming the plugin and where it is, and the old routes keep serving.
#[tokio::test]
async fn a_reload_with_an_unenforced_plugin_is_refused() {
    let stack = Stack::start(&config_from(&deck())).await;
    let with_other = deck().replace(
        "  - name: open\n    paths: [/open]\n",
        "  - name: open\n    paths: [/open]\n    plugins:\n    - name: ai-semantic-prompt-guard\n      config: {rules: {deny_prompts: [secret]}}\n",
    );
    let path = std::env::temp_dir().join(format!("aigw-plugins-{}-guard.yaml", std::process::id()));
    std::fs::write(&path, &with_other).expect("writes the temp config");
    let options = Stack::options_for(&stack.emulator, RouteLimits::default());
    let error = stack
        .gateway
        .routes()
        .reload_from(&path, &options)
        .await
        .expect_err("ai-semantic-prompt-guard is not enforced, so the file is refused")
        .to_string();
    let _ = std::fs::remove_file(&path);
    let line = with_other
        .lines()
        .position(|l| l.contains("name: ai-semantic-prompt-guard"))
        .expect("plugin line")
        + 1;
    assert!(
        error.contains(&format!(".yaml:{line}:13: services[0].routes[0].plugins[0].name: plugin \"ai-semantic-prompt-guard\" applies to route open")),
        "{error}"
    );
    still_serving(&stack).await;
}
