//! OpenAI-compatible embeddings: `POST …/v1/embeddings` with the texts batched in
//! `input`, answered with one `data[].embedding` per text (put back in `index` order).

use std::sync::Arc;

use aigw_core::{EmbedRequest, EmbedService, Embeddings, Error, ErrorKind};
use http::{HeaderValue, header};
use serde_json::{Value, json};

use crate::error::{classify_body, classify_send, from_status};
use crate::provider::Upstream;
use crate::{OpenAiProvider, OpenAiTargetSpec};

/// OpenAI's own embeddings endpoint, used when the spec names no `upstream_url`.
pub const OPENAI_EMBEDDINGS_URL: &str = "https://api.openai.com/v1/embeddings";

/// The most of an error answer's body that is read, for its message.
const MAX_ERROR_BODY: usize = 8 * 1024;

/// One OpenAI-compatible embeddings model, served through `tower::service_fn`.
#[derive(Clone)]
struct OpenAiEmbeddings {
    upstream: Arc<Upstream>,
    model: Arc<str>,
}

impl OpenAiProvider {
    /// The embeddings service for `spec`'s model; `spec.upstream_url` is the whole
    /// embeddings URL (`http://host/v1/embeddings`), else [`OPENAI_EMBEDDINGS_URL`].
    pub async fn embeddings(&self, spec: OpenAiTargetSpec) -> Result<EmbedService, Error> {
        let upstream = self.upstream(&spec, OPENAI_EMBEDDINGS_URL).await?;
        let model = OpenAiEmbeddings {
            upstream: Arc::new(upstream),
            model: Arc::from(spec.model),
        };
        Ok(EmbedService::new(tower::service_fn(move |request| {
            let model = model.clone();
            async move { model.post(request).await }
        })))
    }
}

impl OpenAiEmbeddings {
    async fn post(&self, request: EmbedRequest) -> Result<Embeddings, Error> {
        let upstream = &self.upstream;
        let count = request.inputs.len();
        let mut body = json!({ "model": &*self.model, "input": request.inputs });
        if let Some(dimensions) = request.dimensions {
            body["dimensions"] = json!(dimensions);
        }
        for (name, value) in &upstream.body_params {
            body[name] = json!(value);
        }
        let response = upstream
            .client
            .post(upstream.url.clone())
            .headers(upstream.headers.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(classify_send)?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let bytes = response.bytes().await.unwrap_or_default();
            let cut = bytes.len().min(MAX_ERROR_BODY);
            return Err(from_status(status, &headers, &bytes[..cut]));
        }
        let bytes = response.bytes().await.map_err(classify_body)?;
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|err| unreadable(&format!("not JSON ({err})")))?;
        let data = answer["data"]
            .as_array()
            .ok_or_else(|| unreadable("no \"data\" list"))?;
        let mut vectors = vec![Vec::new(); count];
        for (position, item) in data.iter().enumerate() {
            let index = item["index"].as_u64().map_or(position, |i| i as usize);
            let slot = vectors
                .get_mut(index)
                .ok_or_else(|| unreadable("an index past the inputs"))?;
            *slot = item["embedding"]
                .as_array()
                .ok_or_else(|| unreadable("an embedding that is not a list"))?
                .iter()
                .map(|n| n.as_f64().map(|n| n as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| unreadable("an embedding with a non-number"))?;
        }
        if vectors.iter().any(Vec::is_empty) {
            return Err(unreadable("fewer vectors than inputs"));
        }
        Ok(Embeddings {
            vectors,
            input_tokens: answer["usage"]["prompt_tokens"].as_u64(),
        })
    }
}

fn unreadable(why: &str) -> Error {
    Error::new(
        ErrorKind::UpstreamProtocol,
        format!("openai embeddings answer aigw could not read: {why}"),
    )
}
