//! Provider-neutral core of aigw: the chat request and answer types every front end and
//! driver speaks, the one error type with its classification, and the driver contract.
//!
//! A driver is a [`tower::Service`] from [`ChatRequest`] to [`ChatReply`]; the balancer and
//! the front ends only ever see these types, never a provider's or a wire format's.
#![forbid(unsafe_code)]

mod attempt;
mod chat;
mod driver;
mod error;
mod ids;

pub use attempt::Attempt;
pub use chat::{
    ChatChunk, ChatReply, ChatRequest, ChatResponse, ChunkSequence, ChunkStream, FinishReason,
    Message, ReplyBody, Role, ServedBy, Usage,
};
pub use driver::{BoxDriver, Chat, DriverFuture, Target};
pub use error::{Error, ErrorKind};
pub use ids::{completion_id, unix_now};
