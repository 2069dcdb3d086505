//! The driver against the emulator's OpenAI endpoint, over a real socket: answers, Kong
//! auth, defaults, error classification, and streams in the Bedrock driver's shape.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aigw_bedrock::{BedrockProvider, BedrockTargetSpec};
use aigw_core::test_support::{ask, call, collect, eventually, into_stream, text_then_error};
use aigw_core::{
    BoxDriver, ChatChunk, ChatRequest, Error, ErrorKind, FinishReason, ReplyBody, RequestDefaults,
    Role,
};
use aigw_emulator::{EmulatorHandle, Fault, ModelKnobs, Operation};
use aigw_openai::{Auth, OpenAiDriver, OpenAiProvider, OpenAiTargetSpec, ParamLocation};
use futures_util::StreamExt;

const MODEL: &str = "gpt-4o-mini";

async fn emulator() -> EmulatorHandle {
    aigw_emulator::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn spec(emulator: &EmulatorHandle, model: &str) -> OpenAiTargetSpec {
    OpenAiTargetSpec {
        upstream_url: Some(format!("{}/v1/chat/completions", emulator.endpoint_url())),
        connect_timeout: Duration::from_secs(2),
        ..OpenAiTargetSpec::new(model)
    }
}

async fn target(spec: OpenAiTargetSpec) -> OpenAiDriver {
    OpenAiProvider::new().target(spec).await.unwrap()
}

async fn driver(spec: OpenAiTargetSpec) -> BoxDriver {
    target(spec).await.into_driver()
}

#[tokio::test]
async fn unary_answer_names_the_model_and_sends_kong_auth_and_defaults() {
    let emulator = emulator().await;
    let driver = target(OpenAiTargetSpec {
        auth: vec![
            Auth::Header {
                name: "Authorization".into(),
                value: "Bearer sk-test".into(),
            },
            Auth::Param {
                name: "api-version".into(),
                value: "2024-06-01".into(),
                location: ParamLocation::Query,
            },
            Auth::Param {
                name: "user_key".into(),
                value: "in-body".into(),
                location: ParamLocation::Body,
            },
        ],
        ..spec(&emulator, MODEL)
    })
    .await
    .with_defaults(RequestDefaults {
        max_tokens: Some(500),
        temperature: Some(0.25),
        top_p: None,
    })
    .into_driver();
    let request = ChatRequest {
        temperature: Some(0.75),
        ..ask("Who is considered the greatest Polish writer?", false)
    };
    let reply = call(&driver, request).await.unwrap();
    assert_eq!(reply.served_by.to_string(), "openai/gpt-4o-mini");
    let ReplyBody::Complete(answer) = reply.body else {
        panic!("expected a whole answer");
    };
    assert!(
        answer
            .content
            .starts_with("[gpt-4o-mini] You asked: Who is considered the greatest Polish writer?"),
        "{}",
        answer.content
    );
    assert_eq!(&*answer.model, MODEL);
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert!(answer.usage.prompt_tokens > 0 && answer.usage.completion_tokens > 0);
    assert_eq!(
        answer.usage.total_tokens,
        answer.usage.prompt_tokens + answer.usage.completion_tokens
    );

    let seen = &emulator.requests()[0];
    assert_eq!(seen.operation, Operation::ChatCompletions);
    assert_eq!(seen.raw_path, "/v1/chat/completions");
    assert_eq!(seen.query.as_deref(), Some("api-version=2024-06-01"));
    assert_eq!(
        seen.headers.get("authorization").map(String::as_str),
        Some("Bearer sk-test")
    );
    assert_eq!(seen.body["model"], MODEL);
    assert_eq!(seen.body["user_key"], "in-body");
    // The option fills the gap; the request's own temperature wins over the option's.
    assert_eq!(seen.body["max_tokens"], 500);
    assert_eq!(seen.body["temperature"], 0.75);
    assert!(seen.body.get("top_p").is_none());
}

fn shape(chunks: &[Result<ChatChunk, Error>]) -> Vec<String> {
    chunks
        .iter()
        .map(|chunk| {
            let chunk = chunk.as_ref().unwrap();
            let mut parts = Vec::new();
            if let Some(role) = chunk.role {
                parts.push(format!("role:{role}"));
            }
            if chunk.content.is_some() {
                parts.push("content".to_owned());
            }
            if let Some(reason) = chunk.finish_reason {
                parts.push(format!("finish:{}", reason.as_str()));
            }
            if chunk.usage.is_some() {
                parts.push("usage".to_owned());
            }
            parts.join("+")
        })
        .collect()
}

#[tokio::test]
async fn stream_has_the_bedrock_drivers_chunk_sequence() {
    let emulator = emulator().await;
    emulator.knobs().set_default(ModelKnobs {
        answer_words: 6,
        ..ModelKnobs::default()
    });
    let openai = driver(spec(&emulator, MODEL)).await;
    let bedrock = BedrockProvider::new()
        .target(BedrockTargetSpec {
            region: Some("us-west-2".into()),
            endpoint_url: Some(emulator.endpoint_url()),
            static_credentials: Some(("AKIDTEST".into(), "test-secret".into())),
            ..BedrockTargetSpec::new("us.amazon.nova-micro-v1:0")
        })
        .await
        .unwrap()
        .into_driver();

    let from_openai = collect(into_stream(call(&openai, ask("hi", true)).await.unwrap())).await;
    let from_bedrock = collect(into_stream(call(&bedrock, ask("hi", true)).await.unwrap())).await;

    let expected = [
        "role:assistant",
        "content",
        "content",
        "content",
        "content",
        "content",
        "content",
        "finish:stop",
        "usage",
    ];
    assert_eq!(shape(&from_bedrock), expected);
    assert_eq!(shape(&from_openai), expected);

    let chunks: Vec<ChatChunk> = from_openai.into_iter().map(Result::unwrap).collect();
    let text: String = chunks.iter().filter_map(|c| c.content.as_deref()).collect();
    assert!(text.starts_with("[gpt-4o-mini] You asked: hi."), "{text}");
    let usage = chunks[8].usage.unwrap();
    assert_eq!(usage.completion_tokens, 6);
    assert!(
        chunks
            .iter()
            .all(|c| c.id == chunks[0].id && &*c.model == MODEL)
    );
    assert_eq!(
        emulator.requests()[0].body["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn stream_is_lazy_and_dropping_it_cancels_upstream() {
    let emulator = emulator().await;
    answer_slowly(&emulator, Duration::from_millis(100), 100);
    let driver = driver(spec(&emulator, MODEL)).await;
    let started = Instant::now();
    let mut stream = into_stream(call(&driver, ask("hi", true)).await.unwrap());
    assert_eq!(
        stream.next().await.unwrap().unwrap().role,
        Some(Role::Assistant)
    );
    for _ in 0..4 {
        assert!(stream.next().await.unwrap().unwrap().content.is_some());
    }
    // The whole answer takes ~10 s; chunks must come as they are made.
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
async fn error_answers_are_classified_with_status_and_retry_after() {
    let emulator = emulator().await;
    let driver = driver(spec(&emulator, MODEL)).await;
    let cases = [
        (Fault::throttling(), ErrorKind::Throttled, 429),
        (Fault::internal_error(), ErrorKind::UpstreamError, 500),
        (Fault::service_unavailable(), ErrorKind::UpstreamError, 503),
        (
            Fault::status(401, "invalid_api_key", "Incorrect API key provided"),
            ErrorKind::UpstreamRejected,
            401,
        ),
    ];
    for (fault, kind, status) in cases {
        emulator
            .knobs()
            .set_model(MODEL, ModelKnobs::with_fault(fault, Some(2)));
        for stream in [false, true] {
            let err = call(&driver, ask("hi", stream)).await.unwrap_err();
            assert_eq!(err.kind(), kind, "{status} stream={stream}: {err}");
            assert_eq!(err.upstream_status(), Some(status));
        }
    }

    emulator.knobs().set_model(
        MODEL,
        ModelKnobs::with_fault(
            Fault::Status {
                status: 429,
                error_type: "requests".into(),
                message: "Rate limit reached".into(),
                retry_after: Some(3),
            },
            Some(1),
        ),
    );
    let err = call(&driver, ask("hi", false)).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert!(err.message().contains("Rate limit reached"), "{err}");

    // An unknown model is the upstream refusing the request.
    emulator
        .knobs()
        .set_allowed_models(Some(vec!["something-else".into()]));
    let err = call(&driver, ask("hi", false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamRejected);
    assert_eq!(err.upstream_status(), Some(404));
}

#[tokio::test]
async fn unreachable_and_unreadable_upstreams_are_told_apart() {
    let emulator = emulator().await;
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let nowhere = driver(OpenAiTargetSpec {
        upstream_url: Some(format!("http://127.0.0.1:{port}/v1/chat/completions")),
        ..OpenAiTargetSpec::new(MODEL)
    })
    .await;
    let err = call(&nowhere, ask("hi", false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamUnreachable, "{err}");

    let driver = driver(spec(&emulator, MODEL)).await;
    emulator
        .knobs()
        .set_model(MODEL, ModelKnobs::with_fault(Fault::InvalidJson, Some(2)));
    for stream in [false, true] {
        let err = call(&driver, ask("hi", stream)).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::UpstreamProtocol,
            "stream={stream}: {err}"
        );
    }

    emulator.knobs().set_model(
        MODEL,
        ModelKnobs::with_fault(Fault::CutStream { after_deltas: 0 }, Some(1)),
    );
    let err = call(&driver, ask("hi", false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamProtocol, "{err}");
}

/// Makes [`MODEL`] answer `words` words, `delay` apart.
fn answer_slowly(emulator: &EmulatorHandle, delay: Duration, words: usize) {
    emulator.knobs().set_model(
        MODEL,
        ModelKnobs {
            token_delay: delay,
            answer_words: words,
            ..ModelKnobs::default()
        },
    );
}

async fn broken_stream(emulator: &EmulatorHandle, fault: Fault) -> (String, Error) {
    emulator
        .knobs()
        .set_model(MODEL, ModelKnobs::with_fault(fault, Some(1)));
    let driver = driver(spec(emulator, MODEL)).await;
    let chunks = collect(into_stream(call(&driver, ask("hi", true)).await.unwrap())).await;
    text_then_error(&chunks)
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_item() {
    let emulator = emulator().await;
    let (text, err) = broken_stream(&emulator, Fault::CutStream { after_deltas: 3 }).await;
    assert_eq!(err.kind(), ErrorKind::UpstreamProtocol, "{err}");
    assert_eq!(text, "[gpt-4o-mini] You asked:");

    let (_, err) = broken_stream(&emulator, Fault::BadCrc { after_deltas: 2 }).await;
    assert_eq!(err.kind(), ErrorKind::UpstreamProtocol, "{err}");

    let (text, err) = broken_stream(
        &emulator,
        Fault::StreamException {
            after_deltas: 2,
            exception_type: "server_error".into(),
        },
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::UpstreamError, "{err}");
    assert!(err.message().contains("emulated stream exception"), "{err}");
    assert_eq!(text, "[gpt-4o-mini] You");
}

#[tokio::test]
async fn a_hung_upstream_is_cut_by_the_callers_timeout_and_told_apart() {
    let emulator = emulator().await;
    emulator
        .knobs()
        .set_model(MODEL, ModelKnobs::with_fault(Fault::Hang, None));
    let driver = driver(spec(&emulator, MODEL)).await;
    // The driver has no read timeout of its own: the balancer's per-attempt timeout
    // bounds it, and dropping the call frees the connection.
    let waited =
        tokio::time::timeout(Duration::from_millis(300), call(&driver, ask("hi", false))).await;
    assert!(waited.is_err(), "a hung upstream must not answer");
    assert!(
        eventually(Duration::from_secs(5), || emulator.requests()[0]
            .client_went_away)
        .await,
        "the hung request was not abandoned"
    );
}

#[tokio::test]
async fn an_upstream_silent_mid_stream_past_the_idle_timeout_is_cut() {
    let emulator = emulator().await;
    // The first piece comes at once, the next only after 5 s: past the idle timeout.
    answer_slowly(&emulator, Duration::from_secs(5), 4);
    let driver = target(spec(&emulator, MODEL))
        .await
        .with_stream_idle_timeout(Duration::from_millis(300))
        .into_driver();
    let started = Instant::now();
    let chunks = collect(into_stream(call(&driver, ask("hi", true)).await.unwrap())).await;
    let took = started.elapsed();

    let (text, err) = text_then_error(&chunks);
    assert!(
        text.starts_with('['),
        "the first piece came through: {text:?}"
    );
    assert_eq!(err.kind(), ErrorKind::UpstreamTimeout, "{err}");
    assert_eq!(
        err.message(),
        "openai stream sent nothing for 300 ms (read_timeout)"
    );
    assert!(
        took < Duration::from_secs(3),
        "the idle timeout bounds the wait: {took:?}"
    );
    // The silent upstream call was abandoned, not left running.
    assert!(
        eventually(Duration::from_secs(5), || emulator.cancelled_streams() > 0).await,
        "upstream stream was not cancelled"
    );
    assert!(emulator.requests()[0].client_went_away);
}
