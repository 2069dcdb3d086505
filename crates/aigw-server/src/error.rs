//! The one map from an error's kind to what each wire shows: HTTP status, OpenAI error
//! type, gRPC code.

use aigw_core::{Error, ErrorKind};
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

struct WireError {
    status: StatusCode,
    grpc: tonic::Code,
    openai_type: &'static str,
}

fn wire(kind: ErrorKind, upstream_status: Option<u16>) -> WireError {
    let (status, grpc, openai_type) = match kind {
        ErrorKind::InvalidRequest => (
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
            "invalid_request_error",
        ),
        ErrorKind::RouteNotFound => (
            StatusCode::NOT_FOUND,
            tonic::Code::NotFound,
            "invalid_request_error",
        ),
        ErrorKind::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            tonic::Code::Unauthenticated,
            "authentication_error",
        ),
        ErrorKind::Forbidden => (
            StatusCode::FORBIDDEN,
            tonic::Code::PermissionDenied,
            "permission_error",
        ),
        // Kong's request-termination default; the file's `status_code` usually replaces it.
        ErrorKind::Terminated => (
            StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unavailable,
            "api_error",
        ),
        ErrorKind::PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
            "invalid_request_error",
        ),
        ErrorKind::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            tonic::Code::Unimplemented,
            "invalid_request_error",
        ),
        ErrorKind::UnsupportedMediaType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            "invalid_request_error",
        ),
        ErrorKind::RequestTimeout => (
            StatusCode::REQUEST_TIMEOUT,
            tonic::Code::DeadlineExceeded,
            "invalid_request_error",
        ),
        // The upstream judged the request invalid: the client can fix it, so pass the
        // upstream's 4xx through (Kong does too).
        ErrorKind::UpstreamRejected => (
            upstream_status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(StatusCode::is_client_error)
                .unwrap_or(StatusCode::BAD_REQUEST),
            tonic::Code::FailedPrecondition,
            "invalid_request_error",
        ),
        ErrorKind::Throttled | ErrorKind::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            tonic::Code::ResourceExhausted,
            "rate_limit_error",
        ),
        ErrorKind::UpstreamError | ErrorKind::UpstreamUnreachable | ErrorKind::UpstreamProtocol => {
            (
                StatusCode::BAD_GATEWAY,
                tonic::Code::Unavailable,
                "api_error",
            )
        }
        ErrorKind::UpstreamTimeout => (
            StatusCode::GATEWAY_TIMEOUT,
            tonic::Code::DeadlineExceeded,
            "timeout_error",
        ),
        ErrorKind::NoHealthyTarget | ErrorKind::Overloaded => (
            StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unavailable,
            "api_error",
        ),
        ErrorKind::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
            "server_error",
        ),
    };
    WireError {
        status,
        grpc,
        openai_type,
    }
}

/// The table's answer for `error`, with the status its route's configuration chose.
fn wire_for(error: &Error) -> WireError {
    let mut wire = wire(error.kind(), error.upstream_status());
    let chosen = error
        .reply()
        .and_then(|r| r.status)
        .and_then(|s| StatusCode::from_u16(s).ok());
    if let Some(status) = chosen {
        wire.status = status;
        wire.grpc = grpc_code_for(status, wire.grpc);
    }
    wire
}

/// The gRPC code for a status a config chose, after gRPC's own HTTP-to-gRPC mapping where
/// it has one; otherwise the kind's code.
fn grpc_code_for(status: StatusCode, kind_code: tonic::Code) -> tonic::Code {
    match status.as_u16() {
        400 | 411 => tonic::Code::InvalidArgument,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::NotFound,
        408 | 504 => tonic::Code::DeadlineExceeded,
        413 | 429 => tonic::Code::ResourceExhausted,
        502 | 503 => tonic::Code::Unavailable,
        _ => kind_code,
    }
}

/// The HTTP status and gRPC code `error` is answered with, as the table and the route's
/// configuration decide.
pub(crate) fn wire_status(error: &Error) -> (u16, tonic::Code) {
    let wire = wire_for(error);
    (wire.status.as_u16(), wire.grpc)
}

/// An error on its way to an HTTP client, as an OpenAI-style body:
/// `{"error":{"message","type","code"}}`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError(error)
    }
}

impl ApiError {
    /// The OpenAI-style JSON body, also used for a stream's error event.
    pub fn body(&self) -> serde_json::Value {
        let wire = wire_for(&self.0);
        json!({
            "error": {
                "message": self.0.message(),
                "type": wire.openai_type,
                "code": self.0.kind().as_str(),
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let wire = wire_for(&self.0);
        let reply = self.0.reply();
        let mut response = match reply.and_then(|r| r.body.as_ref()) {
            Some((content_type, body)) => {
                let mut raw = (wire.status, body.clone()).into_response();
                if let Ok(value) = http::HeaderValue::from_str(content_type) {
                    raw.headers_mut().insert(http::header::CONTENT_TYPE, value);
                }
                raw
            }
            None => (wire.status, Json(self.body())).into_response(),
        };
        if self.0.kind() == ErrorKind::Unauthorized {
            // RFC 9110 asks a 401 to name the scheme; Kong's key-auth sends the same.
            let challenge = reply
                .and_then(|r| r.challenge.as_deref())
                .and_then(|c| http::HeaderValue::from_str(c).ok())
                .unwrap_or(http::HeaderValue::from_static("Key realm=\"aigw\""));
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, challenge);
        }
        for (name, value) in reply.map(|r| r.headers.as_slice()).unwrap_or_default() {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::try_from(name.as_str()),
                http::HeaderValue::try_from(value.as_str()),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        if let Some(after) = self.0.retry_after() {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(after.as_secs().max(1)),
            );
        }
        response
    }
}

/// The gRPC status for an error.
pub fn grpc_status(error: &Error) -> tonic::Status {
    let wire = wire_for(error);
    let mut status = tonic::Status::new(wire.grpc, error.message());
    // The figures go in the trailers, which a trailers-only answer also is.
    for (name, value) in error
        .reply()
        .map(|r| r.headers.as_slice())
        .unwrap_or_default()
    {
        if let (Ok(name), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(name.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            status.metadata_mut().insert(name, value);
        }
    }
    status
}

/// `error` as a whole gRPC answer ("trailers-only"), for the few gRPC calls refused before
/// tonic sees them.
pub(crate) fn grpc_response(error: &Error) -> Response {
    grpc_status(error).into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_one_status_and_code() {
        let throttled = wire(ErrorKind::Throttled, Some(429));
        assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(throttled.grpc, tonic::Code::ResourceExhausted);
        let rejected = wire(ErrorKind::UpstreamRejected, Some(404));
        assert_eq!(rejected.status, StatusCode::NOT_FOUND);
        // An upstream that rejects with a non-4xx status must not turn into a success.
        let odd = wire(ErrorKind::UpstreamRejected, Some(200));
        assert_eq!(odd.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            wire(ErrorKind::UpstreamTimeout, None).grpc,
            tonic::Code::DeadlineExceeded
        );
        let wrong_method = wire(ErrorKind::MethodNotAllowed, None);
        assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(wrong_method.grpc, tonic::Code::Unimplemented);
        let slow_body = wire(ErrorKind::RequestTimeout, None);
        assert_eq!(slow_body.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(slow_body.openai_type, "invalid_request_error");
    }
}
