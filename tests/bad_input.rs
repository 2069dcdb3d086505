//! The rest of the bad-input and upstream-fault matrix: every case gets a clear status and
//! an OpenAI-style body, never a hang, a panic or a half answer marked as success.

use std::time::Duration;

use aigw_emulator::Fault;
use aigw_tests::{
    Stack, assert_error_message_names, grpc_client, grpc_question, polish_writer_question,
    seed_config,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn post(
    url: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().post(url).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.expect("JSON body"))
}

async fn post_json(url: &str, body: &str) -> (u16, Value) {
    let (status, _, body) = post(url, Some("application/json"), body.as_bytes().to_vec()).await;
    (status, body)
}

/// POSTs the walkthrough's question as JSON.
async fn post_polish_question(url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let body = polish_writer_question().to_string().into_bytes();
    post(url, Some("application/json"), body).await
}

fn assert_invalid(status: u16, body: &Value, message_part: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_error_message_names(body, message_part);
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_problem() {
    let stack = Stack::start(&seed_config()).await;
    let url = stack.url("/bedrock-route");

    let (status, body) = post_json(&url, r#"{"messages":[{"role":"user","content":"hi""#).await;
    assert_invalid(status, &body, "invalid JSON");
    let (status, body) = post_json(&url, r#"{"messages":[{"role":"user","content":42}]}"#).await;
    assert_invalid(status, &body, "messages[0].content");
    let (status, body) = post_json(&url, r#"{"messages":[{"role":"user","content":""}]}"#).await;
    assert_invalid(status, &body, "messages[0].content is empty");
    let (status, body) = post_json(
        &url,
        r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"  "}]}"#,
    )
    .await;
    assert_invalid(status, &body, "messages[1].content is empty");

    let mut non_utf8 = br#"{"messages":[{"role":"user","content":""#.to_vec();
    non_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    non_utf8.extend_from_slice(br#""}]}"#);
    let (status, _, body) = post(&url, Some("application/json"), non_utf8).await;
    assert_invalid(status, &body, "invalid JSON");

    // max_tokens beyond what Bedrock takes (an i32), negative, fractional, or not a number.
    let absurd = [
        ("4294967295", "larger than bedrock accepts"),
        ("-1", "max_tokens"),
        ("1e40", "max_tokens"),
        ("\"lots\"", "max_tokens"),
    ];
    for (value, part) in absurd {
        let json =
            format!(r#"{{"messages":[{{"role":"user","content":"hi"}}],"max_tokens":{value}}}"#);
        let (status, body) = post_json(&url, &json).await;
        assert_invalid(status, &body, part);
    }
    assert_eq!(
        stack.emulator.emulator().request_count(),
        0,
        "none of these reached the model"
    );

    let mut empty = grpc_question("", "");
    empty.max_tokens = Some(5);
    let status = grpc_client(&stack.gateway)
        .await
        .chat(empty)
        .await
        .expect_err("empty content");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn only_json_bodies_are_read() {
    let stack = Stack::start(&seed_config()).await;
    let url = stack.url("/bedrock-route");
    let question = polish_writer_question().to_string().into_bytes();
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, _, body) = post(&url, Some(content_type), question.clone()).await;
        assert_eq!(status, 415, "{content_type}: {body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains("application/json"), "{message}");
    }
    for content_type in [Some("application/json; charset=utf-8"), None] {
        let (status, _, body) = post(&url, content_type, question.clone()).await;
        assert_eq!(status, 200, "{content_type:?}: {body}");
    }
}

#[tokio::test]
async fn http_1_0_and_h2_prior_knowledge_are_served() {
    let stack = Stack::start(&seed_config()).await;
    let question = polish_writer_question().to_string();

    let mut tcp = TcpStream::connect(stack.gateway.addr())
        .await
        .expect("connects");
    let head = format!(
        "POST /bedrock-route HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        question.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("writes");
    tcp.write_all(question.as_bytes()).await.expect("writes");
    let mut answer = String::new();
    // HTTP/1.0 has no keep-alive unless asked: the gateway answers and closes.
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut answer))
        .await
        .expect("the gateway closes an HTTP/1.0 connection after answering")
        .expect("reads");
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    assert!(answer.contains("\"chat.completion\""), "{answer}");

    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = h2
        .post(stack.url("/bedrock-route"))
        .header("content-type", "application/json")
        .body(question)
        .send()
        .await
        .expect("answers over h2c");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn upstream_reset_mid_body_is_502_not_a_half_answer() {
    let stack = Stack::seed_failing_with(Fault::CutStream { after_deltas: 3 }).await;
    let (status, _, body) = post_polish_question(&stack.url("/bedrock-route")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    assert!(body.get("choices").is_none(), "{body}");
}

#[tokio::test]
async fn upstream_invalid_json_is_502_protocol_error() {
    let stack = Stack::seed_failing_with(Fault::InvalidJson).await;
    let (status, _, body) = post_polish_question(&stack.url("/bedrock-route")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_protocol_error", "{body}");
}

#[tokio::test]
async fn upstream_429_passes_retry_after_on_only_when_given() {
    let with_hint = Fault::Status {
        status: 429,
        error_type: "ThrottlingException".into(),
        message: "slow down".into(),
        retry_after: Some(7),
    };
    let stack = Stack::seed_failing_with(with_hint).await;
    let (status, headers, body) = post_polish_question(&stack.url("/bedrock-route")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["retry-after"], "7");

    let stack = Stack::seed_failing_with(Fault::throttling()).await;
    let (status, headers, body) = post_polish_question(&stack.url("/bedrock-route")).await;
    assert_eq!(status, 429, "{body}");
    assert!(!headers.contains_key("retry-after"), "no hint is invented");
}

/// Refusals outside the chat body still come from the one error table: a wrong method on an
/// operator endpoint is an OpenAI-style 405 naming GET, and a gRPC call to a service the
/// gateway does not serve is a gRPC UNIMPLEMENTED, not an HTTP page.
#[tokio::test]
async fn wrong_methods_and_unknown_grpc_services_are_answered_in_their_protocol() {
    let stack = Stack::start(&seed_config()).await;
    for url in [
        stack.url("/health"),
        stack.status_url("/health"),
        stack.status_url("/metrics"),
        stack.status_url("/status/targets"),
    ] {
        let path = &url;
        let (status, headers, body) = post(&url, None, Vec::new()).await;
        assert_eq!(status, 405, "{path}: {body}");
        assert_eq!(headers["allow"], "GET", "{path}");
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{path}: {body}"
        );
    }

    let response = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client")
        .post(stack.url("/no.such.Service/Call"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200, "gRPC errors travel in grpc-status");
    assert_eq!(response.headers()["grpc-status"], "12", "UNIMPLEMENTED");
    let message = response.headers()["grpc-message"]
        .to_str()
        .expect("ascii message");
    assert!(message.contains("no.such.Service"), "{message}");
}

/// gRPC requests are held to the route's `max_request_body_size` as HTTP bodies are.
#[tokio::test]
async fn grpc_requests_over_the_body_limit_are_refused_before_the_upstream() {
    let stack = Stack::start(&seed_config()).await;
    // Kong's default max_request_body_size is 8 KiB.
    let status = grpc_client(&stack.gateway)
        .await
        .chat(grpc_question("", &"x".repeat(20_000)))
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("8192"), "{status:?}");
    assert_eq!(stack.emulator.emulator().request_count(), 0);
}

/// serde_json stops at the end of the first value; what follows it is not ignored.
#[tokio::test]
async fn bytes_after_the_json_body_are_400() {
    let stack = Stack::start(&seed_config()).await;
    let question = polish_writer_question().to_string();
    for trailing in ["}", " {\"model\":\"x\"}", "garbage"] {
        let (status, body) = post_json(
            &stack.url("/bedrock-route"),
            &format!("{question}{trailing}"),
        )
        .await;
        assert_invalid(status, &body, "trailing characters");
    }
    let (status, body) = post_json(&stack.url("/bedrock-route"), &format!("{question} \n")).await;
    assert_eq!(status, 200, "trailing whitespace is fine: {body}");
    assert_eq!(stack.emulator.emulator().request_count(), 1);
}

/// A compressed body is refused by name rather than failing as a JSON syntax error.
#[tokio::test]
async fn a_content_encoded_body_is_415() {
    let stack = Stack::start(&seed_config()).await;
    for encoding in ["gzip", "br", "deflate"] {
        let response = reqwest::Client::new()
            .post(stack.url("/bedrock-route"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0])
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 415, "{encoding}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains("Content-Encoding"), "{message}");
    }
    let response = reqwest::Client::new()
        .post(stack.url("/bedrock-route"))
        .header("content-type", "application/json")
        .header("content-encoding", "identity")
        .body(polish_writer_question().to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
}

/// A call to the gRPC service that is not labelled as gRPC is an HTTP 415, not an HTTP 200
/// carrying gRPC's INTERNAL.
#[tokio::test]
async fn the_grpc_service_without_a_grpc_content_type_is_415() {
    let stack = Stack::start(&seed_config()).await;
    for content_type in [Some("application/json"), None] {
        let (status, headers, body) = post(
            &stack.url("/aigw.v1.ChatService/Chat"),
            content_type,
            polish_writer_question().to_string().into_bytes(),
        )
        .await;
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert!(!headers.contains_key("grpc-status"), "{headers:?}");
        assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
    }
    let answer = grpc_client(&stack.gateway)
        .await
        .chat(grpc_question("", "hi"))
        .await
        .expect("real gRPC calls are served");
    assert!(!answer.into_inner().choices.is_empty());
}

/// Kong's key-auth refuses a key name given twice, even when the first is the right key.
#[tokio::test]
async fn a_key_header_sent_twice_is_401() {
    let stack = Stack::start(&aigw_tests::config_from(
        r#"
_format_version: "3.0"
consumers:
- username: alice
  keyauth_credentials:
  - key: alice-key
services:
- name: svc
  routes:
  - name: locked
    paths: [/locked]
    plugins:
    - name: key-auth
      config:
        key_names: [apikey]
plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - model: {provider: bedrock, name: "us.amazon.nova-micro-v1:0", options: {bedrock: {aws_region: us-west-2}}}
      route_type: llm/v1/chat
"#,
    ))
    .await;
    let send = |keys: &'static [&'static str]| {
        let mut request = reqwest::Client::new()
            .post(stack.url("/locked"))
            .header("content-type", "application/json")
            .body(polish_writer_question().to_string());
        for key in keys {
            request = request.header("apikey", *key);
        }
        request.send()
    };
    let response = send(&["alice-key", "other"]).await.expect("answers");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body["error"]["message"], "Duplicate API key found",
        "{body}"
    );
    assert_eq!(stack.emulator.emulator().request_count(), 0);
    let response = send(&["alice-key"]).await.expect("answers");
    assert_eq!(response.status(), 200, "one key is let in");
}

/// A body that cannot be read is the client's fault, not a body over the limit: 400 for a
/// malformed chunk size, and a client that leaves mid-body is counted as 499.
#[tokio::test]
async fn body_read_errors_are_400_and_only_a_large_body_is_413() {
    let stack = Stack::start(&seed_config()).await;
    let head = "POST /bedrock-route HTTP/1.1\r\nhost: aigw\r\ncontent-type: application/json\r\n";

    let mut tcp = TcpStream::connect(stack.gateway.addr())
        .await
        .expect("connects");
    let chunked = format!("{head}transfer-encoding: chunked\r\n\r\n5\r\n{{\"mes\r\nzz\r\n");
    tcp.write_all(chunked.as_bytes()).await.expect("writes");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut answer))
        .await
        .expect("answered and closed")
        .ok();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_request"), "{answer}");
    assert!(!answer.contains("larger than"), "{answer}");

    // Ten bytes of a hundred, then the client closes its side.
    let mut tcp = TcpStream::connect(stack.gateway.addr())
        .await
        .expect("connects");
    let cut = format!("{head}content-length: 100\r\n\r\n{{\"messages");
    tcp.write_all(cut.as_bytes()).await.expect("writes");
    tcp.shutdown().await.expect("half-closes");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut answer))
        .await
        .expect("closed")
        .ok();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let metrics = reqwest::get(stack.status_url("/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    // The seed route's name is route1.
    assert!(
        metrics.contains(r#"route="route1",target="",status="499"}"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"route="route1",target="",status="413"}"#),
        "{metrics}"
    );

    let (status, body) = post_json(
        &stack.url("/bedrock-route"),
        &format!(
            r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
            "x".repeat(9000)
        ),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(stack.emulator.emulator().request_count(), 0);
}
