//! Provider-neutral core of aigw: the chat request and answer types every front end and
//! driver speaks (messages as content parts, tools and tool calls, reasoning, cache
//! points, usage with cache counts), the one error type with its classification, and the
//! driver contract.
//!
//! A driver is a [`tower::Service`] from [`ChatRequest`] to [`ChatReply`]; the balancer and
//! the front ends only ever see these types, never a provider's or a wire format's. What
//! every driver shares lives here too: the [`Driver`] shell (request defaults, the stream
//! idle timeout, the serving-model name), the [`ClientCache`] of provider clients, and
//! [`error_chain`] for client-readable messages.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod around;
mod attempt;
mod chat;
mod client_cache;
mod count;
mod defaults;
mod driver;
mod embeddings;
mod error;
mod idle;
mod ids;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use around::{Around, AroundLayer, AroundService};
pub use attempt::Attempt;
pub use chat::{
    ChatChunk, ChatCompletion, ChatReply, ChatRequest, ChunkSequence, ChunkStream, Document,
    FinishReason, Guardrail, Image, ImageFormat, Message, Part, Reasoning, ReasoningEffort,
    ReplyBody, ResponseFormat, Role, ServedBy, Tool, ToolCall, ToolCallDelta, ToolChoice, Usage,
};
pub use client_cache::ClientCache;
pub use count::CountTokensService;
pub use defaults::RequestDefaults;
pub use driver::{BoxDriver, Chat, Driver, DriverFuture};
pub use embeddings::{EmbedPurpose, EmbedRequest, EmbedService, Embeddings};
pub use error::{Error, ErrorKind, ErrorReply, error_chain};
pub use ids::{completion_id, unix_now};
