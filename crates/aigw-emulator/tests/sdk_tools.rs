//! Tool use, reasoning, prompt caching, guardrails and Bedrock's validation errors, read by
//! the real `aws-sdk-bedrockruntime` deserialisers: the emulator's wire shapes are the
//! ones the SDK understands.

mod common;

use aigw_emulator::ModelKnobs;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ContentBlockDelta, ContentBlockStart,
    ConversationRole, ConverseStreamOutput, ConverseTokensRequest, CountTokensInput,
    GuardrailConfiguration, ImageBlock, ImageFormat, ImageSource, Message, ReasoningContentBlock,
    StopReason, SystemContentBlock, Tool, ToolConfiguration, ToolInputSchema, ToolResultBlock,
    ToolResultContentBlock, ToolResultStatus, ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::Document;
use common::{client, emulator, user};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

fn weather_tool() -> ToolConfiguration {
    let schema = Document::Object(
        [
            ("type".to_owned(), Document::String("object".into())),
            (
                "properties".to_owned(),
                Document::Object(
                    [(
                        "city".to_owned(),
                        Document::Object(
                            [("type".to_owned(), Document::String("string".into()))].into(),
                        ),
                    )]
                    .into(),
                ),
            ),
            (
                "required".to_owned(),
                Document::Array(vec![Document::String("city".into())]),
            ),
        ]
        .into(),
    );
    ToolConfiguration::builder()
        .tools(Tool::ToolSpec(
            ToolSpecification::builder()
                .name("get_weather")
                .input_schema(ToolInputSchema::Json(schema))
                .build()
                .expect("spec"),
        ))
        .build()
        .expect("config")
}

fn tool_use(id: &str) -> Message {
    Message::builder()
        .role(ConversationRole::Assistant)
        .content(ContentBlock::ToolUse(
            ToolUseBlock::builder()
                .tool_use_id(id)
                .name("get_weather")
                .input(Document::Object(Default::default()))
                .build()
                .expect("tool use"),
        ))
        .build()
        .expect("message")
}

fn tool_result(id: &str, text: &str) -> Message {
    tool_result_with(id, text, None)
}

fn tool_result_with(id: &str, text: &str, status: Option<ToolResultStatus>) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::ToolResult(
            ToolResultBlock::builder()
                .tool_use_id(id)
                .content(ToolResultContentBlock::Text(text.into()))
                .set_status(status)
                .build()
                .expect("tool result"),
        ))
        .build()
        .expect("message")
}

#[tokio::test]
async fn offered_tools_are_called_then_results_answered_in_text() {
    let emu = emulator().await;
    let c = client(&emu);
    let out = c
        .converse()
        .model_id(CLAUDE)
        .messages(user("weather in Krakow?"))
        .tool_config(weather_tool())
        .send()
        .await
        .expect("converse succeeds");
    assert_eq!(out.stop_reason(), &StopReason::ToolUse);
    let message = out
        .output()
        .and_then(|o| o.as_message().ok())
        .expect("message");
    let call = message
        .content()
        .iter()
        .find_map(|b| b.as_tool_use().ok())
        .expect("a toolUse block");
    assert_eq!(call.name(), "get_weather");
    let Document::Object(input) = call.input() else {
        panic!("input is an object: {:?}", call.input());
    };
    assert_eq!(
        input.get("city"),
        Some(&Document::String("city-value".into()))
    );

    let id = call.tool_use_id().to_owned();
    let out = c
        .converse()
        .model_id(CLAUDE)
        .messages(user("weather in Krakow?"))
        .messages(message.clone())
        .messages(tool_result(&id, "sunny"))
        .tool_config(weather_tool())
        .send()
        .await
        .expect("converse succeeds");
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    assert!(common::text_of(&out).contains("sunny"));
}

#[tokio::test]
async fn streamed_tool_input_arrives_in_fragments_the_sdk_reads() {
    let emu = emulator().await;
    let mut out = client(&emu)
        .converse_stream()
        .model_id(CLAUDE)
        .messages(user("weather?"))
        .tool_config(weather_tool())
        .send()
        .await
        .expect("stream starts");
    let (mut started, mut input, mut fragments, mut stop) = (None, String::new(), 0, None);
    while let Some(event) = out.stream.recv().await.expect("an event") {
        match event {
            ConverseStreamOutput::ContentBlockStart(start) => {
                if let Some(ContentBlockStart::ToolUse(tool)) = start.start {
                    started = Some((start.content_block_index, tool.name));
                }
            }
            ConverseStreamOutput::ContentBlockDelta(delta) => {
                if let Some(ContentBlockDelta::ToolUse(piece)) = delta.delta {
                    assert_eq!(
                        Some(delta.content_block_index),
                        started.as_ref().map(|s| s.0)
                    );
                    input.push_str(&piece.input);
                    fragments += 1;
                }
            }
            ConverseStreamOutput::MessageStop(m) => stop = Some(m.stop_reason),
            _ => {}
        }
    }
    let (block, name) = started.expect("a toolUse block started");
    assert_eq!(block, 1, "after the text block");
    assert_eq!(name, "get_weather");
    assert!(fragments >= 3, "{fragments} fragments");
    assert_eq!(input, r#"{"city":"city-value"}"#);
    assert_eq!(stop, Some(StopReason::ToolUse));
}

#[tokio::test]
async fn thinking_gives_signed_reasoning_and_is_refused_on_other_models() {
    let emu = emulator().await;
    let c = client(&emu);
    let thinking = Document::Object(
        [(
            "thinking".to_owned(),
            Document::Object(
                [
                    ("type".to_owned(), Document::String("enabled".into())),
                    (
                        "budget_tokens".to_owned(),
                        Document::Number(aws_smithy_types::Number::PosInt(1024)),
                    ),
                ]
                .into(),
            ),
        )]
        .into(),
    );
    let out = c
        .converse()
        .model_id(CLAUDE)
        .messages(user("think"))
        .additional_model_request_fields(thinking.clone())
        .send()
        .await
        .expect("converse succeeds");
    let message = out
        .output()
        .and_then(|o| o.as_message().ok())
        .expect("message");
    let Some(ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(reasoning))) =
        message.content().first()
    else {
        panic!("reasoning first: {:?}", message.content());
    };
    assert!(!reasoning.text().is_empty());
    assert!(reasoning.signature().is_some());

    let err = c
        .converse()
        .model_id(common::NOVA)
        .messages(user("think"))
        .additional_model_request_fields(thinking)
        .send()
        .await
        .expect_err("nova takes no thinking field")
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
}

#[tokio::test]
async fn cache_points_write_then_read_the_prefix() {
    let emu = emulator().await;
    let c = client(&emu);
    let call = || {
        c.converse()
            .model_id(CLAUDE)
            .system(SystemContentBlock::Text(
                "a long shared system prompt".into(),
            ))
            .system(SystemContentBlock::CachePoint(
                CachePointBlock::builder()
                    .r#type(CachePointType::Default)
                    .build()
                    .expect("cache point"),
            ))
            .messages(user("hi"))
            .send()
    };
    let first = call().await.expect("converse succeeds");
    let usage = first.usage().expect("usage");
    assert_eq!(usage.cache_write_input_tokens(), Some(5));
    assert_eq!(usage.cache_read_input_tokens(), Some(0));
    let second = call().await.expect("converse succeeds");
    let usage = second.usage().expect("usage");
    assert_eq!(usage.cache_read_input_tokens(), Some(5));
    assert_eq!(usage.input_tokens(), 1, "only the uncached word");
}

#[tokio::test]
async fn the_guardrail_knob_intervenes_when_a_guardrail_is_named() {
    let emu = emulator().await;
    emu.knobs()
        .set_default(ModelKnobs::with_guardrail_intervening());
    let c = client(&emu);
    let guarded = c
        .converse()
        .model_id(CLAUDE)
        .messages(user("hi"))
        .guardrail_config(
            GuardrailConfiguration::builder()
                .guardrail_identifier("gr")
                .guardrail_version("1")
                .build(),
        )
        .send()
        .await
        .expect("converse succeeds");
    assert_eq!(guarded.stop_reason(), &StopReason::GuardrailIntervened);
    let plain = common::ask(&c, CLAUDE, "hi")
        .await
        .expect("converse succeeds");
    assert_eq!(plain.stop_reason(), &StopReason::EndTurn);
}

#[tokio::test]
async fn bedrock_validation_errors_are_validation_exceptions() {
    let emu = emulator().await;
    let c = client(&emu);
    let not_alternating = c
        .converse()
        .model_id(CLAUDE)
        .messages(user("a"))
        .messages(user("b"))
        .send()
        .await;
    let no_tool_config = c
        .converse()
        .model_id(CLAUDE)
        .messages(user("a"))
        .messages(tool_use("t1"))
        .messages(tool_result("t1", "x"))
        .send()
        .await;
    let bad_image = c
        .converse()
        .model_id(CLAUDE)
        .messages(
            Message::builder()
                .role(ConversationRole::User)
                .content(ContentBlock::Image(
                    ImageBlock::builder()
                        .format(ImageFormat::from("bmp"))
                        .source(ImageSource::Bytes(Blob::new(vec![1, 2, 3])))
                        .build()
                        .expect("image"),
                ))
                .build()
                .expect("message"),
        )
        .send()
        .await;
    let tool_turns = |status: &str| {
        c.converse()
            .model_id(CLAUDE)
            .tool_config(weather_tool())
            .messages(user("a"))
            .messages(tool_use("t1"))
            .messages(tool_result_with(
                "t1",
                "x",
                Some(ToolResultStatus::from(status)),
            ))
            .send()
    };
    let blank_text = c
        .converse()
        .model_id(CLAUDE)
        .messages(user("  "))
        .send()
        .await;
    let failed_tool = tool_turns("error").await;
    assert!(
        failed_tool.is_ok(),
        "status error is valid: {failed_tool:?}"
    );
    let unknown_status = tool_turns("failed").await;
    for (what, result) in [
        ("roles not alternating", not_alternating),
        ("toolResult without toolConfig", no_tool_config),
        ("a bmp image", bad_image),
        ("a toolResult status outside success/error", unknown_status),
        ("a blank text block", blank_text),
    ] {
        let err = result.expect_err(what).into_service_error();
        assert!(err.is_validation_exception(), "{what}: {err:?}");
    }
}

#[tokio::test]
async fn count_tokens_counts_as_converse_does_for_claude_only() {
    let emu = emulator().await;
    let c = client(&emu);
    let question = user("What is the weather in Krakow today?");
    let system = SystemContentBlock::Text("Answer briefly.".into());
    let counted = c
        .count_tokens()
        .model_id(CLAUDE)
        .input(CountTokensInput::Converse(
            ConverseTokensRequest::builder()
                .messages(question.clone())
                .system(system.clone())
                .build(),
        ))
        .send()
        .await
        .expect("Claude counts");
    let answered = c
        .converse()
        .model_id(CLAUDE)
        .messages(question.clone())
        .system(system)
        .send()
        .await
        .expect("converse");
    let usage = answered.usage().expect("usage");
    assert!(counted.input_tokens() > 0);
    assert_eq!(counted.input_tokens(), usage.input_tokens());

    let other = c
        .count_tokens()
        .model_id("us.amazon.nova-micro-v1:0")
        .input(CountTokensInput::Converse(
            ConverseTokensRequest::builder().messages(question).build(),
        ))
        .send()
        .await
        .expect_err("Nova does not count")
        .into_service_error();
    assert!(other.is_validation_exception(), "{other:?}");
}
