//! Converse output → core answer types.

use std::sync::Arc;

use aigw_core::{ChatCompletion, Error, ErrorKind, FinishReason, Usage, completion_id, unix_now};
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{ContentBlock, ConverseOutput as ConverseOutputUnion};
use aws_sdk_bedrockruntime::types::{StopReason, TokenUsage};

/// Translates a whole Converse answer.
pub fn to_chat_completion(
    output: &ConverseOutput,
    model: &Arc<str>,
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
    // Non-text blocks (tool use, reasoning, images) have no place in a text answer yet.
    let content = message
        .content()
        .iter()
        .filter_map(|block| match block {
            ContentBlock::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect::<String>();
    Ok(ChatCompletion {
        id: completion_id(),
        created: unix_now(),
        model: Arc::clone(model),
        content,
        finish_reason: finish_reason(output.stop_reason()),
        usage: output.usage().map(usage).unwrap_or_default(),
    })
}

/// Bedrock's stop reason in OpenAI's vocabulary.
pub(crate) fn finish_reason(reason: &StopReason) -> FinishReason {
    match reason {
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => FinishReason::Length,
        StopReason::ToolUse => FinishReason::ToolCalls,
        StopReason::ContentFiltered | StopReason::GuardrailIntervened => {
            FinishReason::ContentFilter
        }
        // end_turn, stop_sequence, and reasons newer than this SDK: generation simply ended.
        _ => FinishReason::Stop,
    }
}

/// Token counts; Bedrock reports them as `i32`, which are never negative in practice.
pub(crate) fn usage(usage: &TokenUsage) -> Usage {
    let count = |n: i32| u32::try_from(n).unwrap_or(0);
    Usage {
        prompt_tokens: count(usage.input_tokens()),
        completion_tokens: count(usage.output_tokens()),
        total_tokens: count(usage.total_tokens()),
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
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("content_filtered", FinishReason::ContentFilter),
            ("guardrail_intervened", FinishReason::ContentFilter),
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
        let response = to_chat_completion(&output, &model).unwrap();
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
                total_tokens: 7
            }
        );
    }

    #[test]
    fn missing_output_is_a_protocol_error() {
        let output = ConverseOutput::builder()
            .stop_reason(StopReason::EndTurn)
            .build()
            .unwrap();
        let err = to_chat_completion(&output, &Arc::from("m")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UpstreamProtocol);
    }

    #[test]
    fn ids_are_unique() {
        assert_ne!(completion_id(), completion_id());
    }
}
