//! The front ends: each decodes its wire request into what [`admission`](crate::admission)
//! takes (a route key, the caller's headers, a core `ChatRequest`) and encodes the answer
//! back into its wire form. Nothing else happens in them.
//!
//! - `http`: OpenAI's chat-completions JSON and SSE, at route paths and at
//!   `/v1/chat/completions`;
//! - `grpc`: `aigw.v1.ChatService`;
//! - `models`: OpenAI's `GET /v1/models` over the route names;
//! - `anthropic`: Anthropic's Messages JSON and SSE, at `<route path>/v1/messages` of routes
//!   with `llm_format: anthropic`;
//! - `bedrock`: Bedrock's Converse JSON and event-stream frames, at
//!   `<route path>/model/{modelId}/converse(-stream)` of routes with `llm_format: bedrock`;
//! - `embeddings`: OpenAI's `POST /v1/embeddings` on `llm/v1/embeddings` routes.
//!
//! Adding a front end is one decoder and one encoder here; the helpers below are what
//! every decoder shares.

pub(crate) mod anthropic;
mod bedrock;
mod embeddings;
mod fetch;
pub(crate) mod grpc;
pub(crate) mod http;
pub(crate) mod models;

use std::sync::Arc;

pub(crate) use bedrock::ERROR_TYPE_HEADER;

use aigw_core::{Error, Message, ReasoningEffort, Role, ToolChoice};

/// A decoded conversation: at least one message, each decoded by `decode` with its index
/// (for error messages that point at `messages[i]`).
pub(crate) fn conversation<T>(
    wire: Vec<T>,
    decode: impl FnMut((usize, T)) -> Result<Message, Error>,
) -> Result<Arc<[Message]>, Error> {
    if wire.is_empty() {
        return Err(Error::invalid_request(
            "messages must hold at least one message",
        ));
    }
    wire.into_iter().enumerate().map(decode).collect()
}

/// The role named `name` at `messages[index]`; OpenAI's `developer` is a system prompt.
pub(crate) fn role(index: usize, name: &str) -> Result<Role, Error> {
    match name {
        "system" | "developer" => Ok(Role::System),
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        "tool" => Ok(Role::Tool),
        other => Err(Error::invalid_request(format!(
            "messages[{index}].role: unknown role {other:?}, expected one of system, developer, user, assistant, tool"
        ))),
    }
}

/// The request's `reasoning_effort`, if it names one.
pub(crate) fn reasoning_effort(name: Option<String>) -> Result<Option<ReasoningEffort>, Error> {
    name.map(|e| {
        ReasoningEffort::parse(&e).ok_or_else(|| {
            Error::invalid_request(format!(
                "reasoning_effort: unknown value {e:?}, expected minimal, low, medium or high"
            ))
        })
    })
    .transpose()
}

/// A `tool_choice` given by mode (`auto`, `none`, `required`), named `field` in errors.
pub(crate) fn tool_choice_mode(mode: &str, field: &str) -> Result<ToolChoice, Error> {
    match mode {
        "auto" => Ok(ToolChoice::Auto),
        "none" => Ok(ToolChoice::None),
        "required" => Ok(ToolChoice::Required),
        other => Err(Error::invalid_request(format!(
            "{field}: unknown value {other:?}, expected auto, none or required (or a function)"
        ))),
    }
}
