//! `POST /model/{modelId}/count-tokens`, Bedrock's CountTokens: the prompt's input tokens
//! as the same request's Converse `usage.inputTokens` would count them, without an answer.
//! Bedrock counts for Anthropic Claude models only; any other model is the
//! `ValidationException` Bedrock sends, so a gateway that must say "not supported" is
//! tested against that answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use crate::answer::parse_prompt;
use crate::error::AwsError;

/// What Bedrock answers when the model cannot count.
pub(crate) const NOT_SUPPORTED: &str = "The provided model doesn't support counting tokens.";

/// Whether Bedrock counts tokens for `model_id` (a model, inference-profile id or ARN).
fn counts(model_id: &str) -> bool {
    model_id.contains("anthropic.claude")
}

pub(crate) async fn count_tokens(
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
    let input = &body["input"];
    let converse = match (input.get("converse"), input.get("invokeModel")) {
        (Some(converse), None) => converse,
        (None, Some(_)) => {
            return invalid(
                "The emulator counts the converse input only, not invokeModel".to_owned(),
            );
        }
        _ => {
            return invalid(
                "1 validation error detected: Value at 'input' failed to satisfy constraint: \
                 Member must hold exactly one of converse, invokeModel"
                    .to_owned(),
            );
        }
    };
    if !counts(&model_id) {
        return invalid(NOT_SUPPORTED.to_owned());
    }
    match parse_prompt(&model_id, converse) {
        Ok(prompt) => Json(json!({ "inputTokens": prompt.input_tokens })).into_response(),
        Err(message) => invalid(message),
    }
}
