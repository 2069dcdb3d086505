//! The driver against the Bedrock emulator, through the real SDK client and a real socket.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_bedrock::{BedrockDriver, BedrockProvider, BedrockTargetSpec, PROVIDER};
use aigw_core::test_support::{ask, call, collect, eventually, into_stream, text_then_error};
use aigw_core::{
    ChatChunk, ChatRequest, Error, ErrorKind, FinishReason, Message, ReplyBody, RequestDefaults,
    Role,
};
use aigw_emulator::{EmulatorHandle, Fault, ModelKnobs, Operation};
use futures_util::StreamExt;
use tower::ServiceExt;

const MODEL: &str = "us.amazon.nova-micro-v1:0";

async fn emulator() -> EmulatorHandle {
    aigw_emulator::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn spec(emulator: &EmulatorHandle, model: &str) -> BedrockTargetSpec {
    BedrockTargetSpec {
        region: Some("us-west-2".into()),
        endpoint_url: Some(emulator.endpoint_url()),
        static_credentials: Some(("AKIDTEST".into(), "test-secret".into())),
        connect_timeout: Duration::from_secs(2),
        ..BedrockTargetSpec::new(model)
    }
}

async fn target(emulator: &EmulatorHandle, model: &str) -> BedrockDriver {
    BedrockProvider::new()
        .target(spec(emulator, model))
        .await
        .unwrap()
}

#[tokio::test]
async fn converse_returns_the_model_named_answer_with_usage() {
    let emulator = emulator().await;
    let target = target(&emulator, MODEL)
        .await
        .with_defaults(RequestDefaults {
            max_tokens: Some(500),
            temperature: Some(0.25),
            top_p: None,
        });
    let request = ChatRequest {
        messages: vec![
            Message::new(Role::System, "Be brief."),
            Message::new(Role::User, "What is"),
            Message::new(Role::User, "the answer?"),
        ]
        .into(),
        ..ChatRequest::default()
    };
    let reply = call(&target, request).await.unwrap();
    assert_eq!(reply.served_by.provider, PROVIDER);
    assert_eq!(&*reply.served_by.model, MODEL);
    let ReplyBody::Complete(response) = reply.body else {
        panic!("expected a whole answer");
    };
    assert!(
        response
            .content
            .starts_with(&format!("[{MODEL}] You asked:")),
        "{}",
        response.content
    );
    assert!(response.id.starts_with("chatcmpl-"));
    assert_eq!(&*response.model, MODEL);
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(response.usage.prompt_tokens > 0);
    assert!(response.usage.completion_tokens > 0);
    assert_eq!(
        response.usage.total_tokens,
        response.usage.prompt_tokens + response.usage.completion_tokens
    );

    let seen = emulator.requests();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.operation, Operation::Converse);
    assert_eq!(seen.raw_path, "/model/us.amazon.nova-micro-v1%3A0/converse");
    assert_eq!(seen.region.as_deref(), Some("us-west-2"));
    assert_eq!(seen.service.as_deref(), Some("bedrock"));
    assert_eq!(seen.body["system"][0]["text"], "Be brief.");
    // Two user turns in a row travel as one message with two blocks.
    assert_eq!(seen.body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(
        seen.body["messages"][0]["content"][1]["text"],
        "the answer?"
    );
    assert_eq!(seen.body["inferenceConfig"]["maxTokens"], 500);
    assert_eq!(seen.body["inferenceConfig"]["temperature"], 0.25);
}

#[tokio::test]
async fn max_tokens_ends_with_length() {
    let emulator = emulator().await;
    let target = target(&emulator, MODEL).await;
    let request = ChatRequest {
        max_tokens: Some(3),
        ..ask("hello", false)
    };
    let ReplyBody::Complete(response) = call(&target, request).await.unwrap().body else {
        panic!("expected a whole answer");
    };
    assert_eq!(response.finish_reason, FinishReason::Length);
    assert_eq!(response.usage.completion_tokens, 3);
}

#[tokio::test]
async fn stream_yields_role_deltas_finish_and_usage_in_order() {
    let emulator = emulator().await;
    let target = target(&emulator, MODEL).await;
    let ReplyBody::Complete(whole) = call(&target, ask("Why is the sky blue?", false))
        .await
        .unwrap()
        .body
    else {
        panic!("expected a whole answer");
    };

    let reply = call(&target, ask("Why is the sky blue?", true))
        .await
        .unwrap();
    assert_eq!(&*reply.served_by.model, MODEL);
    let chunks: Vec<ChatChunk> = collect(into_stream(reply))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();

    let (first, rest) = chunks.split_first().unwrap();
    assert_eq!(first.role, Some(Role::Assistant));
    assert!(rest.iter().all(|c| c.role.is_none()));
    assert!(
        chunks
            .iter()
            .all(|c| c.id == first.id && &*c.model == MODEL)
    );
    assert!(first.id.starts_with("chatcmpl-"));

    let n = chunks.len();
    let deltas = &chunks[1..n - 2];
    assert!(
        deltas.len() > 1,
        "one chunk per delta, got {}",
        deltas.len()
    );
    let text: String = deltas
        .iter()
        .map(|c| c.content.as_deref().unwrap())
        .collect();
    assert_eq!(text, whole.content);
    assert_eq!(chunks[n - 2].finish_reason, Some(FinishReason::Stop));
    assert_eq!(chunks[n - 2].content, None);
    assert_eq!(chunks[n - 1].usage, Some(whole.usage));
    assert_eq!(chunks[n - 1].finish_reason, None);

    let seen = emulator.requests();
    assert_eq!(seen[1].operation, Operation::ConverseStream);
    assert_eq!(
        seen[1].raw_path,
        "/model/us.amazon.nova-micro-v1%3A0/converse-stream"
    );
}

#[tokio::test]
async fn throttling_maps_to_throttled_without_sdk_retries() {
    let emulator = emulator().await;
    emulator.knobs().set_model(
        MODEL,
        ModelKnobs::with_fault(
            Fault::Status {
                status: 429,
                error_type: "ThrottlingException".into(),
                message: "Too many requests".into(),
                retry_after: Some(3),
            },
            None,
        ),
    );
    let target = target(&emulator, MODEL).await;
    for stream in [false, true] {
        let err = call(&target, ask("hi", stream)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
        assert_eq!(err.upstream_status(), Some(429));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(
            err.message(),
            "bedrock returned 429 ThrottlingException: Too many requests"
        );
    }
    // One attempt per call: the SDK must leave retries to the balancer.
    assert_eq!(emulator.requests().len(), 2);
}

#[tokio::test]
async fn error_statuses_are_classified() {
    let emulator = emulator().await;
    let cases = [
        (
            "m-400",
            Fault::status(400, "ValidationException", "bad input"),
            ErrorKind::UpstreamRejected,
        ),
        (
            "m-403",
            Fault::status(403, "AccessDeniedException", "no access"),
            ErrorKind::UpstreamRejected,
        ),
        ("m-500", Fault::internal_error(), ErrorKind::UpstreamError),
        (
            "m-503",
            Fault::service_unavailable(),
            ErrorKind::UpstreamError,
        ),
    ];
    let provider = BedrockProvider::new();
    for (model, fault, kind) in cases {
        let status = match &fault {
            Fault::Status { status, .. } => *status,
            _ => unreachable!(),
        };
        emulator
            .knobs()
            .set_model(model, ModelKnobs::with_fault(fault, None));
        let target = provider.target(spec(&emulator, model)).await.unwrap();
        for stream in [false, true] {
            let err = call(&target, ask("hi", stream)).await.unwrap_err();
            assert_eq!(err.kind(), kind, "{model}: {err}");
            assert_eq!(err.upstream_status(), Some(status), "{model}");
        }
    }
    assert_eq!(provider.client_count().await, 1);
}

#[tokio::test]
async fn unreadable_converse_answer_is_a_protocol_error() {
    let emulator = emulator().await;
    emulator
        .knobs()
        .set_model(MODEL, ModelKnobs::with_fault(Fault::InvalidJson, None));
    let target = target(&emulator, MODEL).await;
    let err = call(&target, ask("hi", false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamProtocol, "{err}");
    // A stream that is not an event stream fails before its first event: on `call`.
    let err = call(&target, ask("hi", true)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamProtocol, "{err}");
}

/// Runs a stream with `fault` and returns the text received and the final error.
async fn broken_stream(fault: Fault) -> (String, Error) {
    let emulator = emulator().await;
    emulator
        .knobs()
        .set_model(MODEL, ModelKnobs::with_fault(fault, None));
    let target = target(&emulator, MODEL).await;
    let items = collect(into_stream(call(&target, ask("hi", true)).await.unwrap())).await;
    let (text, err) = text_then_error(&items);
    assert!(
        items
            .iter()
            .all(|c| c.as_ref().map_or(true, |c| c.finish_reason.is_none()))
    );
    (text, err)
}

#[tokio::test]
async fn mid_stream_exception_ends_the_stream_with_its_kind() {
    let (text, err) = broken_stream(Fault::StreamException {
        after_deltas: 2,
        exception_type: "throttlingException".into(),
    })
    .await;
    assert!(text.starts_with(&format!("[{MODEL}]")), "{text}");
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
    assert!(err.message().contains("ThrottlingException"), "{err}");

    let (_, err) = broken_stream(Fault::StreamException {
        after_deltas: 1,
        exception_type: "modelStreamErrorException".into(),
    })
    .await;
    assert_eq!(err.kind(), ErrorKind::UpstreamError, "{err}");
}

#[tokio::test]
async fn cut_stream_is_a_protocol_error() {
    let (text, err) = broken_stream(Fault::CutStream { after_deltas: 3 }).await;
    assert!(!text.is_empty());
    assert_eq!(err.kind(), ErrorKind::UpstreamProtocol, "{err}");
}

#[tokio::test]
async fn corrupt_frame_is_a_protocol_error() {
    let (_, err) = broken_stream(Fault::BadCrc { after_deltas: 2 }).await;
    assert_eq!(err.kind(), ErrorKind::UpstreamProtocol, "{err}");
}

#[tokio::test]
async fn stream_is_lazy_and_dropping_it_cancels_upstream() {
    let emulator = emulator().await;
    emulator.knobs().set_model(
        MODEL,
        ModelKnobs {
            token_delay: Duration::from_millis(100),
            answer_words: 100,
            ..ModelKnobs::default()
        },
    );
    let target = target(&emulator, MODEL).await;
    let started = Instant::now();
    let mut stream = into_stream(call(&target, ask("hi", true)).await.unwrap());
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.role, Some(Role::Assistant));
    for _ in 0..4 {
        let delta = stream.next().await.unwrap().unwrap();
        assert!(delta.content.is_some());
    }
    // Four deltas are three token delays apart; the whole answer takes ~10 s. Chunks must
    // come as they are made, not once the answer is complete.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(emulator.open_streams(), 1);

    drop(stream);
    assert!(
        eventually(Duration::from_secs(5), || emulator.cancelled_streams() > 0).await,
        "upstream stream was not cancelled"
    );
    assert!(emulator.requests()[0].client_went_away);
}

#[tokio::test]
async fn targets_share_clients_per_connection_settings() {
    let emulator = emulator().await;
    let provider = BedrockProvider::new();
    let a = provider.target(spec(&emulator, "model-a")).await.unwrap();
    let b = provider.target(spec(&emulator, "model-b")).await.unwrap();
    assert_eq!(provider.client_count().await, 1);
    let _c = provider
        .target(BedrockTargetSpec {
            region: Some("eu-central-1".into()),
            ..spec(&emulator, "model-a")
        })
        .await
        .unwrap();
    assert_eq!(provider.client_count().await, 2);

    // Shared client, separate models.
    let ReplyBody::Complete(answer_a) = call(&a, ask("hi", false)).await.unwrap().body else {
        panic!("expected a whole answer");
    };
    let ReplyBody::Complete(answer_b) = call(&b, ask("hi", false)).await.unwrap().body else {
        panic!("expected a whole answer");
    };
    assert!(answer_a.content.starts_with("[model-a]"));
    assert!(answer_b.content.starts_with("[model-b]"));
    assert!(Arc::ptr_eq(a.model(), &answer_a.model));
}

#[tokio::test]
async fn boxed_driver_serves_requests() {
    let emulator = emulator().await;
    let driver = target(&emulator, MODEL).await.into_driver();
    let reply = driver.oneshot(ask("hi", false)).await.unwrap();
    assert_eq!(reply.served_by.to_string(), format!("bedrock/{MODEL}"));
}
