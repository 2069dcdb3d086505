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
    /// The result of a tool the model asked to call (OpenAI's `role: "tool"`).
    Tool,
}

impl Role {
    /// The OpenAI wire name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
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
    /// What is said: text, images, documents and cache points, in order.
    pub content: Vec<Part>,
    /// The tools an assistant turn asked to call.
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] turn, the id of the call it answers.
    pub tool_call_id: Option<String>,
    /// For a [`Role::Tool`] turn, whether the tool failed (Anthropic's `is_error`,
    /// Bedrock's `toolResult.status: error`); OpenAI's wire has no such flag.
    pub tool_failed: bool,
    /// The reasoning an assistant turn showed, sent back so the model can continue from it
    /// (Anthropic models on Bedrock require it, signature included, in tool loops).
    pub reasoning: Option<Reasoning>,
}

impl Message {
    /// A turn holding one text part.
    pub fn new(role: Role, text: impl Into<String>) -> Message {
        Message {
            role,
            content: vec![Part::Text(text.into())],
            tool_calls: Vec::new(),
            tool_call_id: None,
            tool_failed: false,
            reasoning: None,
        }
    }

    /// The message's text parts joined, without copying when there is only one; what
    /// policies that read prompts (guards, logs, token estimates) look at.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        let mut texts = self.content.iter().filter_map(Part::as_text);
        match (texts.next(), texts.next()) {
            (None, _) => std::borrow::Cow::Borrowed(""),
            (Some(one), None) => std::borrow::Cow::Borrowed(one),
            (Some(first), Some(second)) => {
                let mut joined = String::from(first);
                joined.push_str(second);
                texts.for_each(|t| joined.push_str(t));
                std::borrow::Cow::Owned(joined)
            }
        }
    }
}

/// One piece of a message's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text.
    Text(String),
    /// An image, its bytes already decoded (from a `data:` URI or fetched).
    Image(Image),
    /// A document (a PDF from an OpenAI `file` part).
    Document(Document),
    /// The prompt up to here may be cached by the provider (Anthropic's
    /// `cache_control: {"type": "ephemeral"}`, Bedrock's `cachePoint`).
    CachePoint,
}

impl Part {
    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Part::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// An image's encoding, as the bytes are in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// `image/png`.
    Png,
    /// `image/jpeg`.
    Jpeg,
    /// `image/gif`.
    Gif,
    /// `image/webp`.
    Webp,
}

impl ImageFormat {
    /// The format of the media type `mime` (`image/png`, …), if it is one of ours.
    pub fn from_mime(mime: &str) -> Option<ImageFormat> {
        match mime.trim().to_ascii_lowercase().as_str() {
            "image/png" => Some(ImageFormat::Png),
            "image/jpeg" | "image/jpg" => Some(ImageFormat::Jpeg),
            "image/gif" => Some(ImageFormat::Gif),
            "image/webp" => Some(ImageFormat::Webp),
            _ => None,
        }
    }

    /// The short name Bedrock uses (`png`, `jpeg`, `gif`, `webp`).
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Gif => "gif",
            ImageFormat::Webp => "webp",
        }
    }

    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Gif => "image/gif",
            ImageFormat::Webp => "image/webp",
        }
    }
}

/// An image in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// How the bytes are encoded.
    pub format: ImageFormat,
    /// The image file's bytes, shared because failover sends them twice.
    pub bytes: Arc<[u8]>,
}

/// A document in a message; only PDF is accepted by the front ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The file name the client gave, or a neutral one; Bedrock requires a name.
    pub name: String,
    /// The file's bytes.
    pub bytes: Arc<[u8]>,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    pub parameters: serde_json::Value,
    /// The tool definitions up to this one may be cached (`cache_control` on the tool).
    pub cache_point: bool,
}

/// Which tool, if any, the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must not call a tool.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call the named tool.
    Function(String),
}

/// A call of a tool the model asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The call's id, which the tool's result names.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

/// A piece of a tool call in a stream: the first piece of a call has its id and name,
/// later ones only more argument text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallDelta {
    /// Counts tool calls of the answer from 0 (not content blocks).
    pub index: u32,
    /// Set on the call's first piece.
    pub id: Option<String>,
    /// Set on the call's first piece.
    pub name: Option<String>,
    /// More argument JSON text (empty on a first piece that has none yet).
    pub arguments: String,
}

/// A model's visible reasoning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasoning {
    /// The reasoning text.
    pub text: String,
    /// The provider's signature over it, which must come back with it in a later turn.
    pub signature: Option<String>,
}

/// How hard a reasoning model should think (OpenAI's `reasoning_effort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasoningEffort {
    /// `minimal`.
    Minimal,
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
}

impl ReasoningEffort {
    /// The effort named `name`, as OpenAI spells it.
    pub fn parse(name: &str) -> Option<ReasoningEffort> {
        match name {
            "minimal" => Some(ReasoningEffort::Minimal),
            "low" => Some(ReasoningEffort::Low),
            "medium" => Some(ReasoningEffort::Medium),
            "high" => Some(ReasoningEffort::High),
            _ => None,
        }
    }

    /// OpenAI's name of the effort.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Minimal => "minimal",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// The shape the answer must have (OpenAI's `response_format`).
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON that fits `schema`.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The JSON Schema.
        schema: serde_json::Value,
    },
}

/// A Bedrock guardrail to apply, passed through from the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guardrail {
    /// The guardrail's id or ARN.
    pub identifier: String,
    /// Its version (`DRAFT` or a number).
    pub version: String,
    /// `enabled` / `disabled` / `enabled_full`, when set.
    pub trace: Option<String>,
    /// `sync` / `async`, for streams, when set.
    pub stream_processing_mode: Option<String>,
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
    /// Tools the model may call.
    pub tools: Arc<[Tool]>,
    /// Which tool the model must call, if the client said.
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may ask for several calls at once, if the client said.
    pub parallel_tool_calls: Option<bool>,
    /// How hard a reasoning model should think.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// The shape the answer must have.
    pub response_format: Option<Arc<ResponseFormat>>,
    /// A provider guardrail to apply.
    pub guardrail: Option<Arc<Guardrail>>,
    /// Model-specific request fields, passed as they are to providers that take such
    /// fields (Bedrock's `additionalModelRequestFields`); from a Bedrock client's
    /// `additionalModelRequestFields` or an Anthropic client's `top_k`.
    pub model_fields: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

/// Why the model stopped generating. OpenAI's vocabulary has four words; the variants
/// beyond them keep what Bedrock and Anthropic tell apart, so their native front ends can
/// say it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// Natural end.
    Stop,
    /// One of the request's stop sequences was generated.
    StopSequence,
    /// The token limit was reached.
    Length,
    /// The model asked to call a tool.
    ToolCalls,
    /// The provider's content filter intervened.
    ContentFilter,
    /// A guardrail (Bedrock Guardrails) intervened.
    GuardrailIntervened,
}

impl FinishReason {
    /// The OpenAI wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop | FinishReason::StopSequence => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter | FinishReason::GuardrailIntervened => "content_filter",
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
    /// Of the prompt tokens, how many were read from the provider's prompt cache.
    pub cache_read_tokens: u32,
    /// Of the prompt tokens, how many were written to the provider's prompt cache.
    pub cache_write_tokens: u32,
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
pub struct ChatCompletion {
    /// Unique answer id (`chatcmpl-…`).
    pub id: String,
    /// Unix seconds when the answer was made.
    pub created: u64,
    /// The model that answered.
    pub model: Arc<str>,
    /// The assistant's reply.
    pub content: String,
    /// The tools the model asked to call, in order.
    pub tool_calls: Vec<ToolCall>,
    /// The model's reasoning, when it showed it.
    pub reasoning: Option<Reasoning>,
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
    /// A piece of a tool call, if any.
    pub tool_call: Option<ToolCallDelta>,
    /// A piece of reasoning (text, or the signature that ends it), if any.
    pub reasoning: Option<Reasoning>,
    /// Set on the chunk that ends generation.
    pub finish_reason: Option<FinishReason>,
    /// Set once token counts are known, at the end.
    pub usage: Option<Usage>,
}

impl ChatChunk {
    /// Whether the chunk says anything about the answer's one choice (its role, text or
    /// end); a chunk that only reports usage does not, and wire formats show it without a
    /// choice.
    pub fn has_choice(&self) -> bool {
        self.role.is_some()
            || self.content.is_some()
            || self.tool_call.is_some()
            || self.reasoning.is_some()
            || self.finish_reason.is_some()
    }
}

/// The bookkeeping every driver's stream shares: the identity each chunk of one answer
/// carries, that the first chunk out carries the role, and whether the upstream said the
/// answer was complete before its stream ended.
#[derive(Debug)]
pub struct ChunkSequence {
    id: Arc<str>,
    created: u64,
    model: Arc<str>,
    role_sent: bool,
    complete: bool,
}

impl ChunkSequence {
    /// The sequence of the answer `id`, created at `created` (Unix seconds) by `model`.
    pub fn new(id: Arc<str>, created: u64, model: Arc<str>) -> ChunkSequence {
        ChunkSequence {
            id,
            created,
            model,
            role_sent: false,
            complete: false,
        }
    }

    /// A chunk of this answer carrying nothing yet; the driver fills in what an event adds.
    pub fn chunk(&self) -> ChatChunk {
        ChatChunk {
            id: Arc::clone(&self.id),
            created: self.created,
            model: Arc::clone(&self.model),
            role: None,
            content: None,
            tool_call: None,
            reasoning: None,
            finish_reason: None,
            usage: None,
        }
    }

    /// Whether a chunk carried the role already.
    pub fn role_sent(&self) -> bool {
        self.role_sent
    }

    /// Gives `chunk` the role when no chunk carried it yet: clients expect it on the first
    /// chunk even when the upstream's opening event went missing.
    pub fn give_role_if_first(&mut self, chunk: &mut ChatChunk) {
        if !self.role_sent {
            self.role_sent = true;
            chunk.role = Some(Role::Assistant);
        }
    }

    /// The upstream said the answer is complete (a stop event, a finish reason).
    pub fn mark_complete(&mut self) {
        self.complete = true;
    }

    /// What the end of the upstream's stream means: nothing after
    /// [`mark_complete`](Self::mark_complete), otherwise a protocol error with `why`.
    pub fn end(&self, why: &'static str) -> Option<Error> {
        (!self.complete).then(|| Error::new(crate::ErrorKind::UpstreamProtocol, why))
    }
}

/// A stream of answer pieces; an `Err` item ends it with the reason.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, Error>> + Send>>;

/// What a driver hands back: a whole answer or a stream of pieces.
pub enum ReplyBody {
    /// The whole answer.
    Complete(ChatCompletion),
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

impl ChatReply {
    /// Keeps `guard` alive for as long as the answer is being delivered: a whole answer
    /// drops it at once, a stream only when the stream is dropped (it ended, failed, or the
    /// client went away).
    ///
    /// For accounting that must last as long as the answer rather than the call, such as a
    /// target's in-flight count: a stream's `call` returns at its first event, long before
    /// the last token.
    pub fn hold_until_done<G: Send + 'static>(mut self, guard: G) -> Self {
        if let ReplyBody::Stream(chunks) = self.body {
            use futures_util::StreamExt;
            self.body = ReplyBody::Stream(Box::pin(chunks.map(move |chunk| {
                // The closure owns the guard, so it lives exactly as long as the stream.
                let _held = &guard;
                chunk
            })));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::StreamExt;

    use super::*;

    struct Slot(Arc<AtomicUsize>);

    impl Drop for Slot {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn served_by() -> ServedBy {
        ServedBy {
            provider: "test",
            model: Arc::from("m"),
        }
    }

    fn chunk() -> ChatChunk {
        ChatChunk {
            id: Arc::from("chatcmpl-1"),
            created: 0,
            model: Arc::from("m"),
            role: None,
            content: Some("x".into()),
            tool_call: None,
            reasoning: None,
            finish_reason: None,
            usage: None,
        }
    }

    #[test]
    fn a_whole_answer_releases_the_guard_at_once() {
        let released = Arc::new(AtomicUsize::new(0));
        let reply = ChatReply {
            served_by: served_by(),
            body: ReplyBody::Complete(ChatCompletion {
                id: "chatcmpl-1".into(),
                created: 0,
                model: Arc::from("m"),
                content: String::new(),
                tool_calls: Vec::new(),
                reasoning: None,
                finish_reason: FinishReason::Stop,
                usage: Usage::default(),
            }),
        }
        .hold_until_done(Slot(released.clone()));
        assert_eq!(released.load(Ordering::SeqCst), 1);
        drop(reply);
    }

    #[test]
    fn a_stream_holds_the_guard_until_it_is_dropped() {
        let released = Arc::new(AtomicUsize::new(0));
        let chunks: ChunkStream = Box::pin(futures_util::stream::iter([Ok(chunk()), Ok(chunk())]));
        let reply = ChatReply {
            served_by: served_by(),
            body: ReplyBody::Stream(chunks),
        }
        .hold_until_done(Slot(released.clone()));
        let ReplyBody::Stream(mut chunks) = reply.body else {
            panic!("still a stream");
        };
        let first = futures_util::FutureExt::now_or_never(chunks.next());
        assert!(matches!(first, Some(Some(Ok(_)))));
        assert_eq!(released.load(Ordering::SeqCst), 0, "held mid-stream");
        // A client leaving mid-stream drops the stream: the slot comes back.
        drop(chunks);
        assert_eq!(released.load(Ordering::SeqCst), 1);
    }
}

#[cfg(test)]
mod message_tests {
    use super::*;

    #[test]
    fn text_joins_text_parts_and_skips_the_rest() {
        let mut message = Message::new(Role::User, "look at ");
        message.content.push(Part::Image(Image {
            format: ImageFormat::Png,
            bytes: Arc::from(&b"png"[..]),
        }));
        message.content.push(Part::CachePoint);
        message.content.push(Part::Text("this".into()));
        assert_eq!(message.text(), "look at this");
        assert!(matches!(
            Message::new(Role::User, "one").text(),
            std::borrow::Cow::Borrowed("one")
        ));
    }
}
