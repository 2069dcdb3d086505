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
pub struct ChatCompletion {
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

impl ChatChunk {
    /// Whether the chunk says anything about the answer's one choice (its role, text or
    /// end); a chunk that only reports usage does not, and wire formats show it without a
    /// choice.
    pub fn has_choice(&self) -> bool {
        self.role.is_some() || self.content.is_some() || self.finish_reason.is_some()
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
