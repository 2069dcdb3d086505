//! The emulator driven by the real `aws-sdk-bedrockruntime` client.

mod common;

use std::time::{Duration, Instant};

use aigw_emulator::{Fault, ModelKnobs, Operation};
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    ConverseStreamOutput, InferenceConfiguration, StopReason, SystemContentBlock,
};
use common::{NOVA, ask, ask_stream, client, emulator, eventually, text_of, user};

#[tokio::test]
async fn converse_answers_naming_the_model_and_records_the_request() {
    let emu = emulator().await;
    let out = client(&emu)
        .converse()
        .model_id(NOVA)
        .system(SystemContentBlock::Text("be brief".into()))
        .messages(user("What is Rust?"))
        .send()
        .await
        .expect("converse succeeds");

    let text = text_of(&out);
    assert!(
        text.starts_with("[us.amazon.nova-micro-v1:0] You asked: What is Rust? This is a"),
        "{text}"
    );
    assert_eq!(text.split(' ').count(), aigw_emulator::DEFAULT_ANSWER_WORDS);
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    let usage = out.usage().expect("usage");
    assert_eq!(usage.input_tokens(), 5, "2 system words + 3 user words");
    assert_eq!(usage.output_tokens(), 24);
    assert_eq!(usage.total_tokens(), 29);
    assert!(out.metrics().is_some());

    let seen = emu.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.raw_path, "/model/us.amazon.nova-micro-v1%3A0/converse");
    assert_eq!(r.model_id, NOVA);
    assert_eq!(r.operation, Operation::Converse);
    assert_eq!(r.region.as_deref(), Some("us-west-2"));
    assert_eq!(r.service.as_deref(), Some("bedrock"));
    assert_eq!(r.body["messages"][0]["content"][0]["text"], "What is Rust?");
    assert_eq!(r.body["system"][0]["text"], "be brief");
    assert!(!r.client_went_away);
}

#[tokio::test]
async fn different_models_get_different_answers() {
    let emu = emulator().await;
    let c = client(&emu);
    for model in [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "amazon.titan-text-lite-v1",
    ] {
        let out = ask(&c, model, "hi").await.expect("converse succeeds");
        assert!(text_of(&out).starts_with(&format!("[{model}] You asked: hi.")));
    }
}

#[tokio::test]
async fn max_tokens_truncates_with_max_tokens_stop_reason() {
    let emu = emulator().await;
    let out = client(&emu)
        .converse()
        .model_id(NOVA)
        .messages(user("hello there"))
        .inference_config(InferenceConfiguration::builder().max_tokens(5).build())
        .send()
        .await
        .expect("converse succeeds");
    assert_eq!(out.stop_reason(), &StopReason::MaxTokens);
    assert_eq!(
        text_of(&out),
        "[us.amazon.nova-micro-v1:0] You asked: hello there."
    );
    assert_eq!(out.usage().map(|u| u.output_tokens()), Some(5));
}

#[tokio::test]
async fn stop_sequence_truncates_with_stop_sequence_reason() {
    let emu = emulator().await;
    let out = client(&emu)
        .converse()
        .model_id(NOVA)
        .messages(user("hello"))
        .inference_config(
            InferenceConfiguration::builder()
                .stop_sequences("deterministic")
                .build(),
        )
        .send()
        .await
        .expect("converse succeeds");
    assert_eq!(out.stop_reason(), &StopReason::StopSequence);
    assert_eq!(
        text_of(&out),
        "[us.amazon.nova-micro-v1:0] You asked: hello. This is a "
    );
}

#[tokio::test]
async fn converse_stream_events_arrive_in_order_and_match_the_unary_answer() {
    let emu = emulator().await;
    let c = client(&emu);
    let unary = ask(&c, NOVA, "Tell me a story")
        .await
        .expect("converse succeeds");

    let mut stream = ask_stream(&c, NOVA, "Tell me a story")
        .await
        .expect("stream starts")
        .stream;
    let mut kinds = Vec::new();
    let mut text = String::new();
    let mut usage = None;
    while let Some(event) = stream.recv().await.expect("clean stream") {
        match event {
            ConverseStreamOutput::MessageStart(e) => {
                assert_eq!(e.role().as_str(), "assistant");
                kinds.push("start");
            }
            ConverseStreamOutput::ContentBlockDelta(e) => {
                assert_eq!(e.content_block_index(), 0);
                let delta = e
                    .delta()
                    .and_then(|d| d.as_text().ok())
                    .expect("text delta");
                text.push_str(delta);
                kinds.push("delta");
            }
            ConverseStreamOutput::ContentBlockStop(_) => kinds.push("block_stop"),
            ConverseStreamOutput::MessageStop(e) => {
                assert_eq!(e.stop_reason(), &StopReason::EndTurn);
                kinds.push("stop");
            }
            ConverseStreamOutput::Metadata(e) => {
                usage = e.usage().cloned();
                kinds.push("metadata");
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    let deltas = aigw_emulator::DEFAULT_ANSWER_WORDS;
    let mut expected = vec!["start"];
    expected.extend(std::iter::repeat_n("delta", deltas));
    expected.extend(["block_stop", "stop", "metadata"]);
    assert_eq!(kinds, expected);
    assert_eq!(text, text_of(&unary));
    let usage = usage.expect("metadata carries usage");
    assert_eq!(usage.output_tokens(), deltas as i32);
    assert_eq!(
        usage.total_tokens(),
        usage.input_tokens() + usage.output_tokens()
    );

    let seen = emu.requests();
    assert_eq!(seen[1].operation, Operation::ConverseStream);
    assert_eq!(
        seen[1].raw_path,
        "/model/us.amazon.nova-micro-v1%3A0/converse-stream"
    );
    assert_eq!(emu.open_streams(), 0);
    assert_eq!(emu.cancelled_streams(), 0);
}

#[tokio::test]
async fn stream_deltas_are_paced_and_flushed_as_produced() {
    let emu = emulator().await;
    emu.knobs().set_default(ModelKnobs {
        latency: Duration::from_millis(100),
        token_delay: Duration::from_millis(100),
        answer_words: 6,
        ..ModelKnobs::default()
    });
    let started = Instant::now();
    let mut stream = ask_stream(&client(&emu), NOVA, "pace")
        .await
        .expect("stream starts")
        .stream;
    let mut delta_times = Vec::new();
    while let Some(event) = stream.recv().await.expect("clean stream") {
        if let ConverseStreamOutput::ContentBlockDelta(_) = event {
            delta_times.push(started.elapsed());
        }
    }
    assert_eq!(delta_times.len(), 6);
    // Lower bounds hold however slow the machine: nothing is sent early.
    assert!(
        delta_times[0] >= Duration::from_millis(100),
        "latency first"
    );
    assert!(
        delta_times[5] >= Duration::from_millis(600),
        "{delta_times:?}"
    );
    // The first delta is not held back until the stream is complete (500 ms later); the
    // margin leaves room for a busy machine.
    assert!(
        delta_times[5] - delta_times[0] >= Duration::from_millis(250),
        "deltas were buffered: {delta_times:?}"
    );
}

#[tokio::test]
async fn unary_latency_knob_delays_the_answer() {
    let emu = emulator().await;
    emu.knobs().set_model(
        NOVA,
        ModelKnobs {
            latency: Duration::from_millis(150),
            ..ModelKnobs::default()
        },
    );
    let c = client(&emu);
    let started = Instant::now();
    ask(&c, NOVA, "slow").await.expect("converse succeeds");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn throttling_fault_is_the_typed_exception_for_count_requests() {
    let emu = emulator().await;
    emu.knobs()
        .set_model(NOVA, ModelKnobs::with_fault(Fault::throttling(), Some(1)));
    let c = client(&emu);

    let err = ask(&c, NOVA, "hi").await.expect_err("throttled");
    let err = err.into_service_error();
    assert!(err.is_throttling_exception(), "{err:?}");

    // The fault was for one request only; other models were never affected.
    ask(&c, NOVA, "hi").await.expect("second request succeeds");
}

#[tokio::test]
async fn status_faults_map_to_typed_exceptions() {
    let emu = emulator().await;
    let c = client(&emu);

    emu.knobs()
        .set_default(ModelKnobs::with_fault(Fault::internal_error(), None));
    let err = ask(&c, NOVA, "hi")
        .await
        .expect_err("500")
        .into_service_error();
    assert!(err.is_internal_server_exception(), "{err:?}");

    emu.knobs()
        .set_default(ModelKnobs::with_fault(Fault::service_unavailable(), None));
    let err = ask_stream(&c, NOVA, "hi")
        .await
        .expect_err("503")
        .into_service_error();
    assert!(err.is_service_unavailable_exception(), "{err:?}");

    emu.knobs().set_default(ModelKnobs::with_fault(
        Fault::status(400, "ValidationException", "bad input"),
        None,
    ));
    let err = ask(&c, NOVA, "hi")
        .await
        .expect_err("400")
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert_eq!(err.meta().message(), Some("bad input"));
}

#[tokio::test]
async fn unknown_model_is_resource_not_found_with_an_allow_list() {
    let emu = emulator().await;
    emu.knobs().set_allowed_models(Some(vec![NOVA.to_owned()]));
    let c = client(&emu);
    let err = ask(&c, "no.such-model", "hi")
        .await
        .expect_err("404")
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    ask(&c, NOVA, "hi").await.expect("allowed model answers");
}

/// Reads a stream to its end or first error; returns the deltas seen, whether a messageStop
/// arrived, and the error (transport and decoding errors come out as `Unhandled`).
async fn drain(
    mut stream: EventReceiver<ConverseStreamOutput, ConverseStreamOutputError>,
) -> (usize, bool, Option<ConverseStreamOutputError>) {
    let (mut deltas, mut stopped) = (0, false);
    loop {
        match stream.recv().await {
            Ok(Some(ConverseStreamOutput::ContentBlockDelta(_))) => deltas += 1,
            Ok(Some(ConverseStreamOutput::MessageStop(_))) => stopped = true,
            Ok(Some(_)) => {}
            Ok(None) => return (deltas, stopped, None),
            Err(e) => return (deltas, stopped, Some(e.into_service_error())),
        }
    }
}

async fn stream_with_fault(fault: Fault) -> (usize, bool, bool) {
    let emu = emulator().await;
    emu.knobs()
        .set_model(NOVA, ModelKnobs::with_fault(fault, Some(1)));
    let out = ask_stream(&client(&emu), NOVA, "hi")
        .await
        .expect("stream starts");
    let (deltas, stopped, err) = drain(out.stream).await;
    (deltas, stopped, err.is_some())
}

#[tokio::test]
async fn cut_stream_makes_recv_fail_without_message_stop() {
    let (deltas, stopped, failed) = stream_with_fault(Fault::CutStream { after_deltas: 3 }).await;
    assert_eq!(deltas, 3);
    assert!(!stopped);
    assert!(failed, "a cut stream must be an error, not a clean end");
}

#[tokio::test]
async fn bad_crc_makes_recv_fail() {
    let (deltas, stopped, failed) = stream_with_fault(Fault::BadCrc { after_deltas: 2 }).await;
    assert_eq!(deltas, 2);
    assert!(!stopped);
    assert!(failed);
}

#[tokio::test]
async fn invalid_event_stream_body_makes_recv_fail() {
    let (deltas, _, failed) = stream_with_fault(Fault::InvalidJson).await;
    assert_eq!(deltas, 0);
    assert!(failed);
}

#[tokio::test]
async fn stream_exception_surfaces_as_the_typed_error() {
    for (exception_type, check) in [
        (
            "throttlingException",
            ConverseStreamOutputError::is_throttling_exception as fn(&_) -> bool,
        ),
        (
            "modelStreamErrorException",
            ConverseStreamOutputError::is_model_stream_error_exception,
        ),
        (
            "internalServerException",
            ConverseStreamOutputError::is_internal_server_exception,
        ),
    ] {
        let emu = emulator().await;
        emu.knobs().set_model(
            NOVA,
            ModelKnobs::with_fault(
                Fault::StreamException {
                    after_deltas: 4,
                    exception_type: exception_type.to_owned(),
                },
                None,
            ),
        );
        let out = ask_stream(&client(&emu), NOVA, "hi")
            .await
            .expect("stream starts");
        let (deltas, stopped, err) = drain(out.stream).await;
        assert_eq!(deltas, 4);
        assert!(!stopped);
        let err = err.expect("exception");
        assert!(check(&err), "{exception_type}: {err:?}");
    }
}

#[tokio::test]
async fn invalid_json_and_cut_unary_answers_are_errors() {
    let emu = emulator().await;
    let c = client(&emu);
    for fault in [Fault::InvalidJson, Fault::CutStream { after_deltas: 0 }] {
        emu.knobs()
            .set_default(ModelKnobs::with_fault(fault.clone(), Some(1)));
        let err = ask(&c, NOVA, "hi").await.expect_err("undecodable answer");
        // Not a typed AWS error: the SDK could not make sense of the answer at all.
        let err = err.into_service_error();
        assert!(err.meta().code().is_none(), "{fault:?}: {err:?}");
    }
}

#[tokio::test]
async fn client_leaving_mid_stream_is_counted_as_cancelled() {
    let emu = emulator().await;
    emu.knobs().set_default(ModelKnobs {
        token_delay: Duration::from_millis(50),
        answer_words: 200,
        ..ModelKnobs::default()
    });
    let c = client(&emu);
    let mut stream = ask_stream(&c, NOVA, "long story")
        .await
        .expect("stream starts")
        .stream;
    // Read a couple of events so the stream is really under way, then walk away.
    for _ in 0..3 {
        stream.recv().await.expect("event").expect("not ended");
    }
    assert_eq!(emu.open_streams(), 1);
    drop(stream);
    drop(c);

    assert!(
        eventually(|| emu.cancelled_streams() == 1).await,
        "the emulator should notice the client went away"
    );
    assert_eq!(emu.open_streams(), 0);
    assert!(emu.requests()[0].client_went_away);
}

#[tokio::test]
async fn hang_holds_the_request_until_the_client_gives_up() {
    let emu = emulator().await;
    emu.knobs()
        .set_model(NOVA, ModelKnobs::with_fault(Fault::Hang, Some(1)));
    let config = client(&emu)
        .config()
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_millis(300))
                .build(),
        )
        .build();
    let c = aws_sdk_bedrockruntime::Client::from_conf(config);
    let started = Instant::now();
    let err = ask_stream(&c, NOVA, "hi").await.expect_err("times out");
    assert!(started.elapsed() >= Duration::from_millis(300), "{err:?}");
    assert!(eventually(|| emu.cancelled_streams() == 1).await);
    assert!(emu.requests()[0].client_went_away);

    // Only one request was to hang.
    ask(&c, NOVA, "hi").await.expect("answers again");
}

#[tokio::test]
async fn shutdown_releases_hung_requests() {
    let emu = emulator().await;
    emu.knobs()
        .set_default(ModelKnobs::with_fault(Fault::Hang, None));
    let c = client(&emu);
    let pending = tokio::spawn(async move { ask(&c, NOVA, "hi").await });
    let emulator = emu.emulator().clone();
    assert!(eventually(|| emulator.request_count() == 1).await);
    let started = Instant::now();
    emu.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let answer = pending.await.expect("task joins");
    let err = answer
        .expect_err("hung request ends with an error")
        .into_service_error();
    assert!(err.is_service_unavailable_exception(), "{err:?}");
}
