//! Failures to reach Bedrock at all, through the real SDK HTTP client.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aigw_bedrock::{BedrockProvider, BedrockTargetSpec};
use aigw_core::{ChatRequest, ErrorKind, Message, Role};
use tokio::net::TcpListener;
use tower::ServiceExt;

fn spec(endpoint_url: String) -> BedrockTargetSpec {
    BedrockTargetSpec {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint_url),
        static_credentials: Some(("AKIDTEST".into(), "test-secret".into())),
        connect_timeout: Duration::from_millis(300),
        ..BedrockTargetSpec::new("us.amazon.nova-micro-v1:0")
    }
}

fn hello(stream: bool) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::User, "hello")].into(),
        stream,
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    // Bind then drop: the port is known to be free and closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = BedrockProvider::new()
        .target(spec(format!("http://127.0.0.1:{port}")))
        .await
        .unwrap();
    for stream in [false, true] {
        let err = target.clone().oneshot(hello(stream)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UpstreamUnreachable, "{err}");
        assert_eq!(err.upstream_status(), None);
        assert!(
            err.message().starts_with("could not reach bedrock"),
            "{err}"
        );
        assert!(!err.message().contains("test-secret"), "{err}");
    }
}

#[tokio::test]
async fn connect_timeout_is_unreachable() {
    // TCP connects, but the TLS handshake never gets an answer: the connect timeout
    // covers the handshake, and nothing was sent.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let target = BedrockProvider::new()
        .target(spec(format!("https://127.0.0.1:{port}")))
        .await
        .unwrap();
    let started = Instant::now();
    let err = target.oneshot(hello(false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamUnreachable, "{err}");
    assert!(
        err.message()
            .starts_with("could not connect to bedrock in time"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    silent.abort();
}
