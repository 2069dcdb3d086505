//! Embeddings as a driver capability: a provider that can embed text offers an
//! [`EmbedService`], a `tower::Service` from [`EmbedRequest`] to [`Embeddings`], as chat
//! drivers are services from chat requests. The `semantic` balancer and the embeddings
//! endpoints (`POST /v1/embeddings`, gRPC `Embed`) call the same services.

use tower::util::BoxCloneSyncService;

use crate::Error;

/// What the texts are for; providers that distinguish (Cohere's `input_type`) embed a
/// query and the documents it is compared with differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbedPurpose {
    /// Texts to be searched, stored once (a target's description).
    Document,
    /// A text to search with (a prompt).
    Query,
}

/// Texts to embed, in one call where the provider batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedRequest {
    /// The texts, each embedded on its own; never empty.
    pub inputs: Vec<String>,
    /// What the texts are for.
    pub purpose: EmbedPurpose,
    /// The vector length wanted, for models that let the caller choose.
    pub dimensions: Option<usize>,
    /// Vectors of length 1 wanted (Kong's Bedrock option `embeddings_normalize`).
    pub normalize: bool,
}

/// One vector per input, in the inputs' order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embeddings {
    /// The vectors.
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens, when the provider counts them.
    pub input_tokens: Option<u64>,
}

/// A provider's embeddings capability, boxed at the crate boundary like [`crate::BoxDriver`].
pub type EmbedService = BoxCloneSyncService<EmbedRequest, Embeddings, Error>;
