//! Client authentication with Kong's key-auth: a protected route lets in only callers
//! with a consumer's key, over HTTP and gRPC, and never echoes a key back.

use aigw_tests::{
    Stack, grpc_client, grpc_question, open_and_locked_deck, polish_writer_question,
    post_question_with_header,
};
use serde_json::Value;
use tonic::metadata::MetadataValue;

const KEY: &str = "alice-key-7f3a9c";

fn protected_config() -> aigw_config::GatewayConfig {
    open_and_locked_deck(KEY)
}

async fn post(url: &str, header: Option<(&str, &str)>) -> (u16, reqwest::header::HeaderMap, Value) {
    let (status, headers, body) = post_question_with_header(url, header).await;
    (
        status,
        headers,
        serde_json::from_str(&body).expect("JSON body"),
    )
}

#[tokio::test]
async fn http_needs_a_consumer_key_on_a_protected_route() {
    let stack = Stack::start(&protected_config()).await;
    let locked = stack.url("/locked");

    let (status, headers, body) = post(&locked, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(body["error"]["code"], "unauthorized");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("no API key"), "{message}");
    assert!(headers.contains_key("www-authenticate"));

    let wrong = "alice-key-7f3a9d";
    let (status, _, body) = post(&locked, Some(("apikey", wrong))).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "invalid API key");
    assert!(!body.to_string().contains(wrong), "a key is never echoed");
    // Only part of the key, or the key with more after it, is still wrong.
    let (status, _, _) = post(&locked, Some(("apikey", &KEY[..8]))).await;
    assert_eq!(status, 401);
    let (status, _, _) = post(&locked, Some(("apikey", &format!("{KEY}0")))).await;
    assert_eq!(status, 401);
    assert!(
        stack.emulator.requests().is_empty(),
        "refused requests never reach the model"
    );

    let bearer = format!("Bearer {KEY}");
    for header in [
        ("authorization", bearer.as_str()),
        ("apikey", KEY),
        ("x-api-key", KEY),
    ] {
        let (status, _, body) = post(&locked, Some(header)).await;
        assert_eq!(status, 200, "{header:?}: {body}");
        assert_eq!(body["object"], "chat.completion");
    }
    let (status, _, _) = post(&format!("{locked}?apikey={KEY}"), None).await;
    assert_eq!(status, 200, "key_in_query is on by default, as in Kong");

    let (status, _, _) = post(&stack.url("/open"), None).await;
    assert_eq!(status, 200, "a route without key-auth stays open");
    assert_eq!(stack.emulator.requests().len(), 5);
}

#[tokio::test]
async fn the_openai_path_checks_the_key_of_the_route_the_model_picks() {
    let stack = Stack::start(&protected_config()).await;
    let send = |model: &'static str, key: Option<&'static str>| {
        let mut request = reqwest::Client::new()
            .post(stack.url("/v1/chat/completions"))
            .json(&serde_json::json!({
                "model": model,
                "messages": [{"role": "user", "content": "hi"}],
            }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move { request.send().await.expect("answers").status().as_u16() }
    };
    assert_eq!(send("locked", None).await, 401);
    assert_eq!(send("locked", Some("wrong")).await, 401);
    assert_eq!(send("locked", Some(KEY)).await, 200);
    assert_eq!(send("open", None).await, 200);
}

#[tokio::test]
async fn grpc_reads_the_key_from_metadata() {
    let stack = Stack::start(&protected_config()).await;
    let mut client = grpc_client(&stack.gateway).await;

    let status = client
        .chat(grpc_question("locked", "hi"))
        .await
        .expect_err("no key");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let mut wrong = tonic::Request::new(grpc_question("locked", "hi"));
    wrong
        .metadata_mut()
        .insert("apikey", MetadataValue::from_static("nope"));
    let status = client.chat(wrong).await.expect_err("wrong key");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(status.message(), "invalid API key");

    for (name, value) in [
        ("authorization", format!("Bearer {KEY}")),
        ("x-api-key", KEY.to_owned()),
    ] {
        let mut request = tonic::Request::new(grpc_question("locked", "hi"));
        request
            .metadata_mut()
            .insert(name, value.parse().expect("ascii metadata"));
        let answer = client.chat(request).await.expect("key accepted");
        assert_eq!(answer.get_ref().object, "chat.completion");
    }

    client
        .chat(grpc_question("open", "hi"))
        .await
        .expect("the open route needs no key");
}

/// `auth.allow_override: false` (the only mode aigw has): whatever credentials a client
/// sends, the upstream call is signed with the target's own and carries none of them.
#[tokio::test]
async fn client_credentials_never_reach_the_upstream() {
    let stack = Stack::start(&protected_config()).await;
    let response = reqwest::Client::new()
        .post(stack.url("/locked"))
        .header("content-type", "application/json")
        .bearer_auth(KEY)
        .header("apikey", KEY)
        .header("x-amz-security-token", "client-session-token")
        .header("x-amz-date", "20000101T000000Z")
        .body(polish_writer_question().to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let seen = stack.emulator.requests();
    let headers = &seen[0].headers;
    let authorization = headers.get("authorization").expect("signed");
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/"),
        "{authorization}"
    );
    assert!(!headers.contains_key("x-amz-security-token"), "{headers:?}");
    for (name, value) in headers {
        assert!(
            !value.contains(KEY) && !value.contains("client-session-token"),
            "{name}: {value}"
        );
    }
}
