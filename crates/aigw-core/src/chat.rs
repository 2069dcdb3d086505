use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Who speaks a message in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model; providers that separate them (Bedrock) get them apart.
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The OpenAI wire name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said, as text.
    pub content: String,
}

/// A chat request after the front end decoded it; what drivers translate to their provider.
///
/// Cloning is cheap (the conversation is shared), because failover sends the same request
/// to a second target.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// The model the client named, if any. Targets decide the model actually used.
    pub model: Option<String>,
    /// The conversation, oldest first; never empty once validated by a front end.
    pub messages: Arc<[Message]>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling bound.
    pub top_p: Option<f32>,
    /// Sequences that end generation.
    pub stop: Arc<[String]>,
    /// Whether the client wants the answer as a stream of chunks.
    pub stream: bool,
    /// The value of the route's `hash_on_header` (HTTP header or gRPC metadata), which the
    /// consistent-hashing balancer keys on; `None` when absent or not hashing.
    pub hash_key: Option<Arc<str>>,
}

/// Why the model stopped generating, in OpenAI's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// The token limit was reached.
    Length,
    /// The model asked to call a tool.
    ToolCalls,
    /// A content filter or guardrail intervened.
    ContentFilter,
}

impl FinishReason {
    /// The OpenAI wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// Token accounting of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens read from the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Their sum, as the provider reports it.
    pub total_tokens: u32,
}

/// The target that served an answer, for the `x-aigw-llm-model` header and traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedBy {
    /// Provider name as in the config (`bedrock`).
    pub provider: &'static str,
    /// Model id as in the config.
    pub model: Arc<str>,
}

impl fmt::Display for ServedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// A whole (non-streamed) answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// Unique answer id (`chatcmpl-…`).
    pub id: String,
    /// Unix seconds when the answer was made.
    pub created: u64,
    /// The model that answered.
    pub model: Arc<str>,
    /// The assistant's reply.
    pub content: String,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Token accounting.
    pub usage: Usage,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatChunk {
    /// Id shared by every chunk of one answer.
    pub id: Arc<str>,
    /// Unix seconds when the answer started.
    pub created: u64,
    /// The model that answers.
    pub model: Arc<str>,
    /// Set on the first chunk only.
    pub role: Option<Role>,
    /// Newly generated text, if any.
    pub content: Option<String>,
    /// Set on the chunk that ends generation.
    pub finish_reason: Option<FinishReason>,
    /// Set once token counts are known, at the end.
    pub usage: Option<Usage>,
}

/// A stream of answer pieces; an `Err` item ends it with the reason.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, Error>> + Send>>;

/// What a driver hands back: a whole answer or a stream of pieces.
pub enum ReplyBody {
    /// The whole answer.
    Complete(ChatResponse),
    /// Pieces as the model produces them.
    Stream(ChunkStream),
}

impl fmt::Debug for ReplyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyBody::Complete(r) => f.debug_tuple("Complete").field(r).finish(),
            ReplyBody::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// A driver's answer together with the target that produced it.
#[derive(Debug)]
pub struct ChatReply {
    /// The serving target, known before the first byte of a stream.
    pub served_by: ServedBy,
    /// The answer itself.
    pub body: ReplyBody,
}
