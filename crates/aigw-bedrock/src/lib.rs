//! The AWS Bedrock driver of aigw: one [`BedrockDriver`] per configured model, a
//! `tower::Service` that turns a core [`ChatRequest`](aigw_core::ChatRequest) into a
//! Converse (or ConverseStream) call through `aws-sdk-bedrockruntime`, and the answer back
//! into core types, with SDK failures classified into [`aigw_core::ErrorKind`]s.
//!
//! [`BedrockProvider`] builds targets and shares SDK clients between targets with the same
//! connection settings. What every driver gets alike (request defaults, the stream idle
//! timeout, the serving-model name) is core's [`Driver`](aigw_core::Driver) shell's. Clients come from `aws-config`'s chains (region, credentials,
//! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`) unless the target's spec overrides them, and never
//! retry on their own: retries and failover are the balancer's.
//!
//! Only this crate sees the SDK's types; the server's SigV4 check of clients
//! (`aigw-server`'s `sigv4.rs`) uses the `aws-sigv4` signer alone, not the SDK.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod count;
mod driver;
mod embeddings;
mod error;
mod json;
mod provider;
mod request;
mod response;
mod spec;
mod stream;

/// The pure OpenAI ↔ Converse translation the driver applies on every call, public so that
/// it can be benchmarked and inspected on its own.
pub mod mapping {
    pub use crate::request::{AnswerShape, ConverseParts, to_converse};
    pub use crate::response::to_chat_completion;
}

pub use driver::{BedrockChat, BedrockDriver};
pub use embeddings::EmbeddingFamily;
pub use provider::BedrockProvider;
pub use spec::BedrockTargetSpec;

/// The provider name, as in the config and in [`aigw_core::ServedBy`].
pub const PROVIDER: &str = "bedrock";
