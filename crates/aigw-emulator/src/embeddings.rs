//! `InvokeModel` for Bedrock's embeddings families (and OpenAI's `POST /v1/embeddings`), answered deterministically so tests
//! can steer a semantic router: a text's vector is a hashed bag of its words (lowercased,
//! three letters or more), normalized, so texts that share words land near each other
//! and texts that share none are orthogonal.
//!
//! Amazon Titan Text Embeddings (`amazon.titan-embed-text-*`: `{"inputText"}` →
//! `{"embedding", "inputTextTokenCount"}`) and Cohere Embed (`cohere.embed-*`: `{"texts",
//! "input_type"}` → `{"embeddings", ...}`); any other model is a `ValidationException`,
//! as Bedrock answers a body the model does not take.

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::error::AwsError;

/// Titan v2's default vector length.
const TITAN_DIMENSIONS: usize = 1024;
/// Cohere Embed v3's vector length.
const COHERE_DIMENSIONS: usize = 1024;

/// `POST /model/{modelId}/invoke`.
pub(crate) async fn invoke(
    model_id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let invalid = |message: String| {
        AwsError::new(StatusCode::BAD_REQUEST, "ValidationException", message).into_response()
    };
    let (model_id, body) = match crate::error::model_and_json(model_id, body) {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    if model_id.contains("titan-embed") {
        let Some(text) = body["inputText"].as_str() else {
            return invalid(
                "Malformed input request: #: required key [inputText] not found".into(),
            );
        };
        let dimensions = body["dimensions"]
            .as_u64()
            .map_or(TITAN_DIMENSIONS, |d| d as usize);
        if ![256, 512, 1024].contains(&dimensions) {
            return invalid(format!(
                "Malformed input request: dimensions {dimensions} is not one of 256, 512, 1024"
            ));
        }
        // Titan's `normalize` defaults to true; false answers the raw word counts.
        let embedding = if body["normalize"].as_bool().unwrap_or(true) {
            embed(text, dimensions)
        } else {
            word_counts(text, dimensions)
        };
        Json(json!({
            "embedding": embedding,
            "inputTextTokenCount": words(text).count(),
        }))
        .into_response()
    } else if model_id.contains("cohere.embed") {
        let Some(texts) = body["texts"].as_array() else {
            return invalid("Malformed input request: #: required key [texts] not found".into());
        };
        let texts: Vec<&str> = texts.iter().filter_map(Value::as_str).collect();
        Json(json!({
            "id": "emulator-embeddings",
            "response_type": "embeddings_floats",
            "texts": texts,
            "embeddings": texts.iter().map(|t| embed(t, COHERE_DIMENSIONS)).collect::<Vec<_>>(),
        }))
        .into_response()
    } else {
        invalid(format!(
            "The emulator answers InvokeModel for embeddings models only (amazon.titan-embed-text-*, cohere.embed-*), not {model_id}"
        ))
    }
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
}

/// The hashed bag of words of `text` in `dimensions`, of length 1 (all zeros for a text
/// without words).
pub(crate) fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = word_counts(text, dimensions);
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// How often each hashed word of `text` occurs, in `dimensions` buckets.
fn word_counts(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0f32; dimensions];
    for word in words(text) {
        // FNV-1a: stable across runs and platforms, unlike the std hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in word.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        vector[(hash % dimensions as u64) as usize] += 1.0;
    }
    vector
}

/// text-embedding-3-small's vector length, the default of `POST /v1/embeddings`.
const OPENAI_DIMENSIONS: usize = 1536;

/// `POST /v1/embeddings`, OpenAI's API: `input` one text or a list, `dimensions`
/// optional; the same vectors as for Bedrock.
pub(crate) async fn openai_embeddings(body: Result<Bytes, BytesRejection>) -> Response {
    let invalid = |message: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})),
        )
            .into_response()
    };
    let body: Value = match body.as_deref().map(serde_json::from_slice) {
        Ok(Ok(body)) => body,
        _ => return invalid("We could not parse the JSON body of your request."),
    };
    let texts: Vec<&str> = match &body["input"] {
        Value::String(text) => vec![text.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => return invalid("'input' is a required property"),
    };
    let dimensions = body["dimensions"]
        .as_u64()
        .map_or(OPENAI_DIMENSIONS, |d| d as usize);
    if dimensions == 0 || dimensions > OPENAI_DIMENSIONS {
        return invalid("'dimensions' must be between 1 and 1536");
    }
    let tokens: usize = texts.iter().map(|t| words(t).count()).sum();
    Json(json!({
        "object": "list",
        "model": body["model"],
        "data": texts.iter().enumerate().map(|(index, text)| json!({
            "object": "embedding",
            "index": index,
            "embedding": embed(text, dimensions),
        })).collect::<Vec<_>>(),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn shared_words_bring_texts_together() {
        let code = embed("write rust code for a parser", 1024);
        let near = embed("Rust code review", 1024);
        let far = embed("bake sourdough bread", 1024);
        assert!(cosine(&code, &near) > 0.4);
        assert_eq!(cosine(&code, &far), 0.0);
        assert_eq!(embed("same text", 256), embed("same text", 256));
    }
}
