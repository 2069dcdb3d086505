//! gRPC calls are bounded from their head, as HTTP requests are: the route is named inside
//! the message, so before reading it the gateway refuses a caller that no route lets in
//! (UNAUTHENTICATED) and a message longer than any route the caller may use accepts
//! (RESOURCE_EXHAUSTED), each without waiting for the message; and errors to a caller
//! without a key name no routes.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aigw_tests::{Stack, config_from, grpc_client, grpc_question, key_consumer_deck_head};
use http_body::Frame;
use tonic::codegen::Bytes;
use tonic::metadata::MetadataValue;

const KEY: &str = "grpc-limits-key-51c0";

/// Two routes behind key-auth, one allowing 16 MiB messages, and optionally an open one.
fn config(with_open_route: bool) -> aigw_config::GatewayConfig {
    let open = if with_open_route {
        "  - name: open-route\n    paths: [/open]\n"
    } else {
        ""
    };
    config_from(&format!(
        r#"{head}{open}  - name: small-locked
    paths: [/small]
    plugins:
    - name: key-auth
  - name: large-locked
    paths: [/large]
    plugins:
    - name: key-auth
    - name: ai-proxy-advanced
      config:
        max_request_body_size: 16777216
        targets:
        - model: {{provider: bedrock, name: "us.amazon.nova-micro-v1:0", options: {{bedrock: {{aws_region: us-west-2}}}}}}
          route_type: llm/v1/chat
plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - model: {{provider: bedrock, name: "us.amazon.nova-micro-v1:0", options: {{bedrock: {{aws_region: us-west-2}}}}}}
      route_type: llm/v1/chat
"#,
        head = key_consumer_deck_head(KEY)
    ))
}

/// A request body that sends its first bytes and then nothing, ever: a client that is
/// slow, or holds the gateway's memory while it waits.
struct Stalls(Option<Bytes>);

impl http_body::Body for Stalls {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.0.take() {
            Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            None => Poll::Pending,
        }
    }
}

/// A `Chat` call whose message claims `length` bytes, of which the first kilobyte is sent
/// before the client stalls; `None` if no answer came within five seconds.
async fn stalled_call(stack: &Stack, key: Option<&str>, length: u32) -> Option<(String, String)> {
    let mut sent = vec![0u8];
    sent.extend_from_slice(&length.to_be_bytes());
    sent.extend(std::iter::repeat_n(0x0a, 1024));
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let mut request = client
        .post(stack.url("/aigw.v1.ChatService/Chat"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(reqwest::Body::wrap(Stalls(Some(Bytes::from(sent)))));
    if let Some(key) = key {
        request = request.header("apikey", key);
    }
    let response = tokio::time::timeout(Duration::from_secs(5), request.send())
        .await
        .ok()?
        .expect("the gateway answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    // grpc-message is percent-encoded; spaces are all these messages need decoded.
    Some((
        header("grpc-status"),
        header("grpc-message").replace("%20", " "),
    ))
}

#[tokio::test]
async fn a_caller_no_route_lets_in_is_refused_before_its_message_arrives() {
    let stack = Stack::start(&config(false)).await;
    let (status, message) = stalled_call(&stack, None, 4_000_000)
        .await
        .expect("refused without waiting for the message");
    assert_eq!(status, "16", "UNAUTHENTICATED: {message}");
    assert!(message.contains("no API key"), "{message}");
    let (status, message) = stalled_call(&stack, Some("not-the-key"), 4_000_000)
        .await
        .expect("refused without waiting for the message");
    assert_eq!(status, "16", "UNAUTHENTICATED: {message}");

    // The gateway still serves a caller with the key.
    let mut request = grpc_question("small-locked", "hi");
    let mut request = tonic::Request::new(std::mem::take(&mut request));
    request
        .metadata_mut()
        .insert("apikey", MetadataValue::from_static(KEY));
    let answer = grpc_client(&stack.gateway)
        .await
        .chat(request)
        .await
        .expect("a caller with the key is served");
    assert!(!answer.into_inner().choices.is_empty());
    assert_eq!(stack.emulator.emulator().request_count(), 1);
}

#[tokio::test]
async fn a_message_longer_than_every_route_allows_is_refused_from_its_length() {
    let stack = Stack::start(&config(true)).await;
    // Without a key only the open route (8 KiB) is the caller's; with it, 16 MiB.
    let (status, message) = stalled_call(&stack, None, 1_000_000)
        .await
        .expect("refused from the length prefix");
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {message}");
    assert!(message.contains("8192"), "{message}");
    let (status, message) = stalled_call(&stack, Some(KEY), 17_000_000)
        .await
        .expect("refused from the length prefix");
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {message}");
    assert!(message.contains("16777216"), "{message}");
    // Under the bound the gateway waits for the rest of the message.
    assert!(stalled_call(&stack, Some(KEY), 1_000_000).await.is_none());
    assert_eq!(stack.emulator.emulator().request_count(), 0);
}

/// A route may allow more than tonic's own 4 MiB default: such a message is decoded and
/// sent on (the emulator then refuses it as too large for itself).
#[tokio::test]
async fn a_route_allowing_large_messages_gets_them() {
    let stack = Stack::start(&config(false)).await;
    let mut request = tonic::Request::new(grpc_question("large-locked", &"x".repeat(5_000_000)));
    request
        .metadata_mut()
        .insert("apikey", MetadataValue::from_static(KEY));
    let outcome = grpc_client(&stack.gateway).await.chat(request).await;
    if let Err(status) = &outcome {
        assert!(
            !matches!(
                status.code(),
                tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
            ),
            "{status:?}"
        );
    }
    assert_eq!(
        stack.emulator.emulator().request_count(),
        1,
        "the message went upstream"
    );
}

#[tokio::test]
async fn an_unknown_route_is_not_listed_to_a_caller_when_routes_take_keys() {
    let stack = Stack::start(&config(true)).await;
    let status = grpc_client(&stack.gateway)
        .await
        .chat(grpc_question("no-such-route", "hi"))
        .await
        .expect_err("unknown route");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(status.message().contains("no-such-route"), "{status:?}");
    for name in [
        "open-route",
        "small-locked",
        "large-locked",
        "/small",
        "/large",
    ] {
        assert!(!status.message().contains(name), "names {name}: {status:?}");
    }
}
