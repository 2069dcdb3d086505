//! OpenAI's `POST /v1/embeddings` wire form: the request is decoded here, the route's
//! [`EmbedRoute`](crate::embed::EmbedRoute) embeds, and the answer is OpenAI's list, with
//! each vector as JSON floats or (`encoding_format: "base64"`) little-endian `f32` bytes.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use aigw_core::{Error, ErrorKind};

/// OpenAI's embeddings path, routed by the request's `model` as chat is.
pub(crate) const EMBEDDINGS_PATH: &str = "/v1/embeddings";

/// OpenAI's embeddings request; `user` is accepted and ignored, as OpenAI only logs it.
#[derive(Debug, Deserialize)]
pub(crate) struct WireEmbedRequest {
    pub(crate) model: Option<String>,
    #[serde(default)]
    input: Value,
    dimensions: Option<u64>,
    encoding_format: Option<String>,
}

/// How the answer carries its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Float,
    Base64,
}

/// What the request asks for, checked.
pub(crate) struct EmbedAsk {
    pub(crate) inputs: Vec<String>,
    pub(crate) dimensions: Option<usize>,
    pub(crate) encoding: Encoding,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidRequest, message.into())
}

impl WireEmbedRequest {
    /// The texts, dimensions and encoding, or a 400 naming the field at fault.
    pub(crate) fn ask(self) -> Result<EmbedAsk, Error> {
        let inputs = match self.input {
            Value::String(text) => vec![text],
            Value::Array(items) if items.is_empty() => {
                return Err(invalid("input: must hold at least one text"));
            }
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::String(text) => Ok(text),
                    _ => Err(invalid(format!(
                        "input[{index}]: must be a string; token arrays are not supported, send the text"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Value::Null => return Err(invalid("input: is required")),
            _ => return Err(invalid("input: must be a string or an array of strings")),
        };
        let dimensions = match self.dimensions {
            None => None,
            Some(0) => return Err(invalid("dimensions: must be at least 1")),
            Some(n) => {
                Some(usize::try_from(n).map_err(|_| invalid("dimensions: too large".to_owned()))?)
            }
        };
        let encoding = match self.encoding_format.as_deref() {
            None | Some("float") => Encoding::Float,
            Some("base64") => Encoding::Base64,
            Some(other) => {
                return Err(invalid(format!(
                    "encoding_format: {other:?} is not one of \"float\", \"base64\""
                )));
            }
        };
        Ok(EmbedAsk {
            inputs,
            dimensions,
            encoding,
        })
    }
}

/// OpenAI's embeddings answer.
pub(crate) fn answer(
    vectors: &[Vec<f32>],
    encoding: Encoding,
    model: &str,
    input_tokens: u64,
) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = match encoding {
                Encoding::Float => json!(vector),
                Encoding::Base64 => json!(base64_of(vector)),
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
    })
}

/// A vector as OpenAI's base64 encoding: its `f32`s, little-endian, back to back.
fn base64_of(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(body: Value) -> Result<EmbedAsk, Error> {
        serde_json::from_value::<WireEmbedRequest>(body)
            .map_err(|e| invalid(e.to_string()))?
            .ask()
    }

    #[test]
    fn token_arrays_are_refused_naming_the_input() {
        let error = wire(json!({"model": "m", "input": [[1, 2, 3]]})).err();
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("input[0]"), "{message}");
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let encoded = base64_of(&[1.0, -0.5]);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_default();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat()
        );
    }
}
