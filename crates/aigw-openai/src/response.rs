//! OpenAI wire answers (whole, streamed, and errors) → core answer types.

use std::sync::Arc;

use aigw_core::{
    ChatCompletion, Error, ErrorKind, FinishReason, Reasoning, ToolCall, Usage, completion_id,
    unix_now,
};
use serde::Deserialize;

/// A whole chat completion, as far as aigw reads it; unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct Completion {
    id: Option<String>,
    created: Option<u64>,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: Option<ChoiceMessage>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
    reasoning_content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: String,
    function: WireFunction,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

/// A streamed piece of a tool call.
#[derive(Debug, Deserialize)]
pub(crate) struct WireToolCallDelta {
    #[serde(default)]
    pub(crate) index: u32,
    pub(crate) id: Option<String>,
    pub(crate) function: Option<WireFunctionDelta>,
}

/// A streamed piece of a tool call's function.
#[derive(Debug, Deserialize)]
pub(crate) struct WireFunctionDelta {
    pub(crate) name: Option<String>,
    pub(crate) arguments: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u32,
    #[serde(default)]
    cache_write_tokens: u32,
}

/// Token counts as OpenAI reports them.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    total_tokens: Option<u32>,
    prompt_tokens_details: Option<PromptDetails>,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        Usage {
            prompt_tokens: wire.prompt_tokens,
            completion_tokens: wire.completion_tokens,
            // Some compatible servers leave the sum out.
            total_tokens: wire
                .total_tokens
                .unwrap_or(wire.prompt_tokens.saturating_add(wire.completion_tokens)),
            cache_read_tokens: wire.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            cache_write_tokens: wire
                .prompt_tokens_details
                .map_or(0, |d| d.cache_write_tokens),
        }
    }
}

/// One `data:` event of a streamed completion.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamEvent {
    #[serde(default)]
    pub(crate) choices: Vec<DeltaChoice>,
    pub(crate) usage: Option<WireUsage>,
    /// Servers report failures that happen mid-stream as an event with an error object.
    pub(crate) error: Option<WireError>,
}

/// One choice's piece of a streamed completion.
#[derive(Debug, Deserialize)]
pub(crate) struct DeltaChoice {
    #[serde(default)]
    pub(crate) delta: Delta,
    pub(crate) finish_reason: Option<String>,
}

/// What a streamed piece adds.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Delta {
    pub(crate) role: Option<String>,
    pub(crate) content: Option<String>,
    #[serde(default)]
    pub(crate) tool_calls: Vec<WireToolCallDelta>,
    pub(crate) reasoning_content: Option<String>,
}

/// OpenAI's error object, `{"error": {"message": …, "type": …, "code": …}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireError {
    pub(crate) message: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
}

/// An error answer's body.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: WireError,
}

/// Translates a whole completion; the answer names the configured `model`, as the
/// `x-aigw-llm-model` header does, whatever snapshot name the upstream reports.
pub(crate) fn to_chat_completion(
    completion: Completion,
    model: &Arc<str>,
) -> Result<ChatCompletion, Error> {
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(Error::new(
            ErrorKind::UpstreamProtocol,
            "openai upstream answered without a choice",
        ));
    };
    let message = choice.message.unwrap_or(ChoiceMessage {
        content: None,
        tool_calls: Vec::new(),
        reasoning_content: None,
    });
    Ok(ChatCompletion {
        id: completion
            .id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(completion_id),
        created: completion.created.unwrap_or_else(unix_now),
        model: Arc::clone(model),
        content: message.content.unwrap_or_default(),
        tool_calls: message
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.function.name,
                arguments: c.function.arguments,
            })
            .collect(),
        reasoning: message.reasoning_content.map(|text| Reasoning {
            text,
            signature: None,
        }),
        finish_reason: finish_reason(choice.finish_reason.as_deref()),
        usage: completion.usage.map(Usage::from).unwrap_or_default(),
    })
}

/// OpenAI's finish reason; servers that invent others simply stopped.
pub(crate) fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_reasoning_and_cached_tokens_are_read() {
        let completion: Completion = serde_json::from_value(serde_json::json!({
            "id": "chatcmpl-x",
            "choices": [{
                "message": {
                    "role": "assistant",
                    "content": null,
                    "reasoning_content": "thinking",
                    "tool_calls": [{"id": "t1", "type": "function",
                        "function": {"name": "f", "arguments": "{}"}}]
                },
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12,
                "prompt_tokens_details": {"cached_tokens": 8}}
        }))
        .unwrap();
        let answer = to_chat_completion(completion, &Arc::from("m")).unwrap();
        assert_eq!(answer.content, "");
        assert_eq!(answer.tool_calls[0].name, "f");
        assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            answer.reasoning.map(|r| r.text).as_deref(),
            Some("thinking")
        );
        assert_eq!(answer.usage.cache_read_tokens, 8);
    }

    #[test]
    fn completion_maps_to_response() {
        let completion: Completion = serde_json::from_str(
            r#"{"id":"chatcmpl-up","object":"chat.completion","created":1700000000,
                "model":"gpt-4o-mini-2024-07-18",
                "choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},
                            "finish_reason":"length"}],
                "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
        )
        .unwrap();
        let model: Arc<str> = Arc::from("gpt-4o-mini");
        let response = to_chat_completion(completion, &model).unwrap();
        assert_eq!(response.id, "chatcmpl-up");
        assert_eq!(response.created, 1_700_000_000);
        assert_eq!(&*response.model, "gpt-4o-mini");
        assert_eq!(response.content, "Hello");
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
    fn no_choice_is_a_protocol_error() {
        let completion: Completion = serde_json::from_str(r#"{"choices":[]}"#).unwrap();
        let err = to_chat_completion(completion, &Arc::from("m")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UpstreamProtocol);
    }

    #[test]
    fn finish_reasons_map() {
        assert_eq!(finish_reason(Some("stop")), FinishReason::Stop);
        assert_eq!(finish_reason(Some("length")), FinishReason::Length);
        assert_eq!(finish_reason(Some("tool_calls")), FinishReason::ToolCalls);
        assert_eq!(
            finish_reason(Some("content_filter")),
            FinishReason::ContentFilter
        );
        assert_eq!(finish_reason(Some("eos")), FinishReason::Stop);
    }
}
