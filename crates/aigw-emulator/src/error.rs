//! AWS JSON-protocol error answers.

use std::borrow::Cow;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// An error answer as Bedrock sends it: status, `x-amzn-ErrorType`, and `{"message": ..}`.
///
/// The SDK reads the type from the header first (then from a `__type`/`code` body field), so
/// the header alone decides which typed error the caller sees.
#[derive(Debug, Clone)]
pub(crate) struct AwsError {
    status: StatusCode,
    error_type: Cow<'static, str>,
    message: Cow<'static, str>,
    retry_after: Option<u32>,
}

impl AwsError {
    pub(crate) fn new(
        status: StatusCode,
        error_type: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            error_type: error_type.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// The answer for a `Fault::Status`; an out-of-range status becomes 500 rather than a panic.
    pub(crate) fn from_fault(
        status: u16,
        error_type: &str,
        message: &str,
        retry_after: Option<u32>,
    ) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error_type: Cow::Owned(error_type.to_owned()),
            message: Cow::Owned(message.to_owned()),
            retry_after,
        }
    }

    /// The HTTP error Bedrock would send for an event-stream exception type, for when a
    /// stream-only fault hits a unary `converse`.
    pub(crate) fn from_exception_type(exception_type: &str) -> Self {
        let (status, error_type) = match exception_type {
            "throttlingException" => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
            "serviceUnavailableException" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
            ),
            "validationException" => (StatusCode::BAD_REQUEST, "ValidationException"),
            "modelStreamErrorException" => {
                (StatusCode::FAILED_DEPENDENCY, "ModelStreamErrorException")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException"),
        };
        Self::new(status, error_type, "emulated fault")
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        // A type that is not a valid header value (only possible from a user-set fault) is
        // still reported, in the body's `__type`, where the SDK also looks.
        let type_header = HeaderValue::from_str(&self.error_type).ok();
        let body = match type_header {
            Some(_) => serde_json::json!({ "message": self.message }),
            None => serde_json::json!({ "__type": self.error_type, "message": self.message }),
        };
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(v) = type_header {
            headers.insert("x-amzn-errortype", v);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The model id and JSON body of a `/model/{modelId}/…` call, or the
/// `ValidationException` Bedrock answers when either is unreadable.
pub(crate) fn model_and_json(
    model_id: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(String, serde_json::Value), AwsError> {
    let Ok(axum::extract::Path(model_id)) = model_id else {
        return Err(AwsError::validation(
            "The model id in the path is not valid",
        ));
    };
    match body.as_deref().map(serde_json::from_slice) {
        Ok(Ok(body)) => Ok((model_id, body)),
        _ => Err(AwsError::validation(
            "Malformed input request: the body is not JSON",
        )),
    }
}
