//! Converse output → core answer types.

use std::sync::Arc;

use aigw_core::{
    ChatCompletion, Error, ErrorKind, FinishReason, Reasoning, ToolCall, Usage, completion_id,
    unix_now,
};
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConverseOutput as ConverseOutputUnion, ReasoningContentBlock,
};
use aws_sdk_bedrockruntime::types::{StopReason, TokenUsage};

use crate::json::to_json;
use crate::request::{AnswerShape, RESPONSE_FORMAT_TOOL};

/// Translates a whole Converse answer to a request mapped with `shape`.
pub fn to_chat_completion(
    output: &ConverseOutput,
    model: &Arc<str>,
    shape: AnswerShape,
) -> Result<ChatCompletion, Error> {
    let message = match output.output() {
        Some(ConverseOutputUnion::Message(message)) => message,
        _ => {
            return Err(Error::new(
                ErrorKind::UpstreamProtocol,
                "bedrock answered without an output message",
            ));
        }
    };
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    let mut reasoning: Option<Reasoning> = None;
    let mut answered_format = false;
    for block in message.content() {
        match block {
            ContentBlock::Text(text) => content.push_str(text),
            ContentBlock::ToolUse(tool) => {
                let arguments = to_json(tool.input()).to_string();
                if shape.json_via_tool && tool.name() == RESPONSE_FORMAT_TOOL {
                    // The forced tool's input is the answer; text the model wrote
                    // around it is not JSON and is dropped.
                    content = arguments;
                    answered_format = true;
                    continue;
                }
                if shape.single_tool_call && !tool_calls.is_empty() {
                    continue;
                }
                tool_calls.push(ToolCall {
                    id: tool.tool_use_id().to_owned(),
                    name: tool.name().to_owned(),
                    arguments,
                });
            }
            ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(text)) => {
                let r = reasoning.get_or_insert_with(Reasoning::default);
                r.text.push_str(text.text());
                if let Some(signature) = text.signature() {
                    r.signature = Some(signature.to_owned());
                }
            }
            // Redacted reasoning, citations and blocks newer than this SDK have no place
            // in an OpenAI answer.
            _ => {}
        }
    }
    let mut finish = finish_reason(output.stop_reason());
    if answered_format && finish == FinishReason::ToolCalls {
        finish = FinishReason::Stop;
    }
    Ok(ChatCompletion {
        id: completion_id(),
        created: unix_now(),
        model: Arc::clone(model),
        content,
        tool_calls,
        reasoning,
        finish_reason: finish,
        usage: output.usage().map(usage).unwrap_or_default(),
    })
}

/// Bedrock's stop reason in OpenAI's vocabulary.
pub(crate) fn finish_reason(reason: &StopReason) -> FinishReason {
    match reason {
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => FinishReason::Length,
        StopReason::ToolUse => FinishReason::ToolCalls,
        StopReason::StopSequence => FinishReason::StopSequence,
        StopReason::ContentFiltered => FinishReason::ContentFilter,
        StopReason::GuardrailIntervened => FinishReason::GuardrailIntervened,
        // end_turn, and reasons newer than this SDK: generation simply ended.
        _ => FinishReason::Stop,
    }
}

/// Token counts; Bedrock reports them as `i32`, which are never negative in practice.
pub(crate) fn usage(usage: &TokenUsage) -> Usage {
    let count = |n: i32| u32::try_from(n).unwrap_or(0);
    let cache_read = usage.cache_read_input_tokens().map_or(0, count);
    let cache_write = usage.cache_write_input_tokens().map_or(0, count);
    // Bedrock's inputTokens leaves cached tokens out; OpenAI's prompt_tokens counts them
    // (and `cached_tokens` says how many of them were cached), so they are added back.
    let prompt = count(usage.input_tokens())
        .saturating_add(cache_read)
        .saturating_add(cache_write);
    let completion = count(usage.output_tokens());
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: count(usage.total_tokens()).max(prompt.saturating_add(completion)),
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_bedrockruntime::types::{ConversationRole, Message};

    use super::*;

    #[test]
    fn stop_reasons_map_to_openai() {
        let cases = [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::StopSequence),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("content_filtered", FinishReason::ContentFilter),
            ("guardrail_intervened", FinishReason::GuardrailIntervened),
            ("something_new", FinishReason::Stop),
        ];
        for (wire, expected) in cases {
            assert_eq!(finish_reason(&StopReason::from(wire)), expected, "{wire}");
        }
    }

    #[test]
    fn converse_output_maps_to_response() {
        let message = Message::builder()
            .role(ConversationRole::Assistant)
            .content(ContentBlock::Text("Hello, ".into()))
            .content(ContentBlock::Text("world".into()))
            .build()
            .unwrap();
        let output = ConverseOutput::builder()
            .output(ConverseOutputUnion::Message(message))
            .stop_reason(StopReason::MaxTokens)
            .usage(
                TokenUsage::builder()
                    .input_tokens(5)
                    .output_tokens(2)
                    .total_tokens(7)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let model: Arc<str> = Arc::from("m1");
        let response = to_chat_completion(&output, &model, AnswerShape::default()).unwrap();
        assert!(response.id.starts_with("chatcmpl-"));
        assert!(response.created > 1_600_000_000);
        assert!(Arc::ptr_eq(&response.model, &model));
        assert_eq!(response.content, "Hello, world");
        assert_eq!(response.finish_reason, FinishReason::Length);
        assert_eq!(
            response.usage,
            Usage {
                prompt_tokens: 5,
                completion_tokens: 2,
                total_tokens: 7,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn tool_use_and_cache_counts_map_to_openai() {
        let message = Message::builder()
            .role(ConversationRole::Assistant)
            .content(ContentBlock::Text("Calling.".into()))
            .content(ContentBlock::ToolUse(
                aws_sdk_bedrockruntime::types::ToolUseBlock::builder()
                    .tool_use_id("t1")
                    .name("get_weather")
                    .input(crate::json::to_document(
                        &serde_json::json!({"city": "Krakow"}),
                    ))
                    .build()
                    .unwrap(),
            ))
            .build()
            .unwrap();
        let output = ConverseOutput::builder()
            .output(ConverseOutputUnion::Message(message))
            .stop_reason(StopReason::ToolUse)
            .usage(
                TokenUsage::builder()
                    .input_tokens(5)
                    .output_tokens(2)
                    .total_tokens(57)
                    .cache_read_input_tokens(40)
                    .cache_write_input_tokens(10)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let answer = to_chat_completion(&output, &Arc::from("m"), AnswerShape::default()).unwrap();
        // Text and tool calls in one answer are both kept.
        assert_eq!(answer.content, "Calling.");
        assert_eq!(answer.tool_calls.len(), 1);
        assert_eq!(answer.tool_calls[0].id, "t1");
        assert_eq!(answer.tool_calls[0].arguments, r#"{"city":"Krakow"}"#);
        assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            answer.usage,
            Usage {
                prompt_tokens: 55,
                completion_tokens: 2,
                total_tokens: 57,
                cache_read_tokens: 40,
                cache_write_tokens: 10,
            }
        );
    }

    #[test]
    fn missing_output_is_a_protocol_error() {
        let output = ConverseOutput::builder()
            .stop_reason(StopReason::EndTurn)
            .build()
            .unwrap();
        let err = to_chat_completion(&output, &Arc::from("m"), AnswerShape::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UpstreamProtocol);
    }

    #[test]
    fn ids_are_unique() {
        assert_ne!(completion_id(), completion_id());
    }
}
