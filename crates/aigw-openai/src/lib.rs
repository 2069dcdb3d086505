//! The OpenAI-compatible driver of aigw: one [`OpenAiDriver`] per configured model, a
//! `tower::Service` that turns a core [`ChatRequest`](aigw_core::ChatRequest) into a
//! `POST …/chat/completions` call (JSON, or SSE when the request asks for a stream) and the
//! answer back into core types, with failures classified into [`aigw_core::ErrorKind`]s.
//!
//! Anything that speaks OpenAI's chat completions works as an upstream: OpenAI itself,
//! Azure-compatible endpoints, vLLM, Ollama, LiteLLM, or another aigw.
//!
//! [`OpenAiProvider`] builds targets and shares one pooled HTTP client between targets with
//! the same connection settings. What every driver gets alike (request defaults, the stream
//! idle timeout, the serving-model name) is core's [`Driver`](aigw_core::Driver) shell's. Clients never retry on their own: retries and failover
//! are the balancer's.
//!
//! Only this crate sees the HTTP client's types.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod driver;
mod embeddings;
mod error;
mod provider;
mod request;
mod response;
mod spec;
mod sse;
mod stream;

pub use driver::{OpenAiChat, OpenAiDriver};
pub use embeddings::OPENAI_EMBEDDINGS_URL;
pub use provider::OpenAiProvider;
pub use spec::{Auth, OPENAI_URL, OpenAiTargetSpec, ParamLocation};

/// The provider name, as in the config and in [`aigw_core::ServedBy`].
pub const PROVIDER: &str = "openai";
