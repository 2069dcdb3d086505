//! Bedrock embeddings through `InvokeModel`: Amazon Titan Text Embeddings (one text a
//! call, so a batch is that many calls at once) and Cohere Embed (a batch a call). The
//! model's family is known from its id at build time, so a request never guesses.

use std::sync::Arc;

use aigw_core::{EmbedPurpose, EmbedRequest, EmbedService, Embeddings, Error, ErrorKind};
use aws_sdk_bedrockruntime::Client;
use aws_smithy_types::Blob;
use futures_util::future::try_join_all;
use serde_json::{Value, json};

use crate::error::classify;
use crate::{BedrockProvider, BedrockTargetSpec};

/// Which request and answer shape an embeddings model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingFamily {
    /// `amazon.titan-embed-text-*`: `{"inputText"}` → `{"embedding"}`.
    Titan,
    /// `cohere.embed-*`: `{"texts", "input_type"}` → `{"embeddings"}`.
    Cohere,
}

impl EmbeddingFamily {
    /// The family of a model or inference-profile id, if it is an embeddings model.
    pub fn of(model_id: &str) -> Option<Self> {
        if model_id.contains("titan-embed") {
            Some(EmbeddingFamily::Titan)
        } else if model_id.contains("cohere.embed") {
            Some(EmbeddingFamily::Cohere)
        } else {
            None
        }
    }
}

/// One Bedrock embeddings model, served through `tower::service_fn`.
#[derive(Clone)]
pub struct BedrockEmbeddings {
    client: Client,
    model_id: Arc<str>,
    family: EmbeddingFamily,
}

impl BedrockProvider {
    /// The embeddings service for `spec`'s model, sharing the SDK client with chat
    /// targets of the same connection settings. Fails on a model id of no known
    /// embeddings family.
    pub async fn embeddings(&self, spec: BedrockTargetSpec) -> Result<EmbedService, Error> {
        let family = EmbeddingFamily::of(&spec.model_id).ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!(
                    "bedrock model {:?} is not an embeddings model aigw knows (amazon.titan-embed-text-*, cohere.embed-*)",
                    spec.model_id
                ),
            )
        })?;
        let model_id: Arc<str> = Arc::from(spec.model_id.as_str());
        let client = self.client(spec).await?;
        let model = BedrockEmbeddings {
            client,
            model_id,
            family,
        };
        Ok(EmbedService::new(tower::service_fn(move |request| {
            let model = model.clone();
            async move { model.embed(request).await }
        })))
    }
}

impl BedrockEmbeddings {
    async fn embed(&self, request: EmbedRequest) -> Result<Embeddings, Error> {
        match self.family {
            EmbeddingFamily::Titan => {
                let calls = request.inputs.iter().map(|text| {
                    let mut body = json!({ "inputText": text, "normalize": request.normalize });
                    if let Some(dimensions) = request.dimensions {
                        body["dimensions"] = json!(dimensions);
                    }
                    self.invoke(body)
                });
                let answers = try_join_all(calls).await?;
                let mut out = Embeddings::default();
                for answer in answers {
                    out.vectors.push(vector(&answer["embedding"])?);
                    if let Some(tokens) = answer["inputTextTokenCount"].as_u64() {
                        *out.input_tokens.get_or_insert(0) += tokens;
                    }
                }
                Ok(out)
            }
            EmbeddingFamily::Cohere => {
                let input_type = match request.purpose {
                    EmbedPurpose::Document => "search_document",
                    EmbedPurpose::Query => "search_query",
                };
                let answer = self
                    .invoke(json!({ "texts": request.inputs, "input_type": input_type }))
                    .await?;
                let mut vectors = answer["embeddings"]
                    .as_array()
                    .ok_or_else(|| unreadable("no \"embeddings\" list"))?
                    .iter()
                    .map(vector)
                    .collect::<Result<Vec<_>, _>>()?;
                // Cohere has no switch for it, so the gateway scales the vectors.
                if request.normalize {
                    vectors.iter_mut().for_each(|v| unit_length(v));
                }
                if vectors.len() != request.inputs.len() {
                    return Err(unreadable("a vector count other than the texts'"));
                }
                Ok(Embeddings {
                    vectors,
                    input_tokens: None,
                })
            }
        }
    }

    async fn invoke(&self, body: Value) -> Result<Value, Error> {
        let answer = self
            .client
            .invoke_model()
            .model_id(self.model_id.as_ref())
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body.to_string()))
            .send()
            .await
            .map_err(|err| classify(&err))?;
        serde_json::from_slice(answer.body().as_ref())
            .map_err(|err| unreadable(&format!("not JSON ({err})")))
    }
}

fn vector(value: &Value) -> Result<Vec<f32>, Error> {
    value
        .as_array()
        .ok_or_else(|| unreadable("an embedding that is not a list"))?
        .iter()
        .map(|n| {
            n.as_f64()
                .map(|n| n as f32)
                .ok_or_else(|| unreadable("an embedding with a non-number"))
        })
        .collect()
}

fn unreadable(why: &str) -> Error {
    Error::new(
        ErrorKind::UpstreamProtocol,
        format!("bedrock embeddings answer aigw could not read: {why}"),
    )
}

/// Scales `vector` to length 1; an all-zero vector stays as it is.
fn unit_length(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}
