//! Which request bodies the HTTP facade reads: JSON, or a body that does not say.
//!
//! A body labelled as something else (a form, plain text) is answered 415 rather than
//! parsed as JSON anyway: `curl -d` without `-H 'Content-Type: application/json'` sends a
//! form, and "send JSON" is a clearer answer than a JSON syntax error.

use aigw_core::Error;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};

use crate::ApiError;

/// A 415 answer when `headers` label the body as something other than JSON.
pub(crate) fn reject_non_json(headers: &HeaderMap) -> Option<Response> {
    let value = headers.get(header::CONTENT_TYPE)?;
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let is_json = essence
        .as_deref()
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if is_json {
        return None;
    }
    let shown = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let error = ApiError(Error::invalid_request(format!(
        "unsupported Content-Type {shown:?}; send the body as application/json"
    )));
    Some((StatusCode::UNSUPPORTED_MEDIA_TYPE, axum::Json(error.body())).into_response())
}
