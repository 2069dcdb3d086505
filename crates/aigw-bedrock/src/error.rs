//! The one place where SDK failures become [`aigw_core::Error`]s, classified by cause so
//! the balancer can decide failover and the front ends can pick a status.
//!
//! Details come from [`error_chain`], not the SDK's `DisplayErrorContext`, whose `Debug`
//! dump is noisy and may show more of the upstream's answer than a client should see.

use std::error::Error as StdError;
use std::time::Duration;

use aigw_core::{Error, ErrorKind, error_chain};
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::operation::converse_stream::ConverseStreamError;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::event_stream::RawMessage;

/// What an SDK error's raw upstream answer can tell us beyond the modeled error.
pub(crate) trait RawAnswer {
    /// The HTTP status, when the answer was an HTTP response.
    fn status(&self) -> Option<u16>;
    /// How long the upstream asked us to wait, from `Retry-After` (delta-seconds form).
    fn retry_after(&self) -> Option<Duration>;
}

impl RawAnswer for HttpResponse {
    fn status(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }

    fn retry_after(&self) -> Option<Duration> {
        let value = self.headers().get("retry-after")?;
        value.trim().parse::<u64>().ok().map(Duration::from_secs)
    }
}

// Event-stream frames arrive inside a 200 response: there is no status of their own.
impl RawAnswer for RawMessage {
    fn status(&self) -> Option<u16> {
        None
    }

    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// An SDK operation error whose modeled variants name the AWS error code.
///
/// The variant is the reliable source: exception frames inside a stream carry their type
/// in a frame header, which the SDK turns into the variant but not into the metadata code.
pub(crate) trait ModeledError: ProvideErrorMetadata + StdError + 'static {
    /// The AWS error code: the modeled variant's name, else the metadata's code.
    fn error_code(&self) -> Option<&str>;
}

macro_rules! modeled_error {
    ($error:ty: $($variant:ident),+ $(,)?) => {
        impl ModeledError for $error {
            fn error_code(&self) -> Option<&str> {
                match self {
                    $(Self::$variant(_) => Some(stringify!($variant)),)+
                    _ => self.code(),
                }
            }
        }
    };
}

modeled_error!(ConverseError:
    AccessDeniedException, InternalServerException, ModelErrorException,
    ModelNotReadyException, ModelTimeoutException, ResourceNotFoundException,
    ServiceUnavailableException, ThrottlingException, ValidationException,
);
modeled_error!(ConverseStreamError:
    AccessDeniedException, InternalServerException, ModelErrorException,
    ModelNotReadyException, ModelTimeoutException, ResourceNotFoundException,
    ServiceUnavailableException, ThrottlingException, ValidationException,
    ModelStreamErrorException,
);
modeled_error!(aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError:
    AccessDeniedException, InternalServerException, ModelErrorException,
    ModelNotReadyException, ModelTimeoutException, ResourceNotFoundException,
    ServiceUnavailableException, ThrottlingException, ValidationException,
);
modeled_error!(aws_sdk_bedrockruntime::operation::count_tokens::CountTokensError:
    AccessDeniedException, InternalServerException, ResourceNotFoundException,
    ServiceUnavailableException, ThrottlingException, ValidationException,
);
modeled_error!(ConverseStreamOutputError:
    InternalServerException, ModelStreamErrorException, ServiceUnavailableException,
    ThrottlingException, ValidationException,
);

/// Classifies a failed Converse / ConverseStream call (or a failed stream frame).
pub(crate) fn classify<E, R>(err: &SdkError<E, R>) -> Error
where
    E: ModeledError,
    R: RawAnswer + std::fmt::Debug + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            from_service(
                service.err().error_code(),
                service.err().message(),
                raw.status(),
                raw.retry_after(),
            )
        }
        SdkError::DispatchFailure(failure) => match failure.as_connector_error() {
            Some(connector) => from_connector(connector),
            None => Error::new(
                ErrorKind::UpstreamUnreachable,
                format!("could not reach bedrock: {}", error_chain(err)),
            ),
        },
        SdkError::TimeoutError(_) => Error::new(
            ErrorKind::UpstreamTimeout,
            format!("bedrock did not answer in time: {}", error_chain(err)),
        ),
        SdkError::ResponseError(response) => {
            let error = Error::new(
                ErrorKind::UpstreamProtocol,
                format!(
                    "bedrock sent an answer aigw could not read: {}",
                    error_chain(err)
                ),
            );
            match response.raw().status() {
                Some(status) => error.with_upstream_status(status),
                None => error,
            }
        }
        // Construction failures are ours (serialization, bad config), and the enum is
        // non-exhaustive, so anything new is treated the same way until classified.
        _ => Error::new(
            ErrorKind::Internal,
            format!("could not build the bedrock request: {}", error_chain(err)),
        ),
    }
}

/// Classifies a failure while reading a stream that already started: the connection
/// breaking then is a broken answer, not an unreachable upstream.
pub(crate) fn classify_stream<E: ModeledError>(err: &SdkError<E, RawMessage>) -> Error {
    match err {
        SdkError::DispatchFailure(_) => Error::new(
            ErrorKind::UpstreamProtocol,
            format!("bedrock stream broke off: {}", error_chain(err)),
        ),
        _ => classify(err),
    }
}

/// A modeled (or unmodeled) error the upstream answered with.
fn from_service(
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    retry_after: Option<Duration>,
) -> Error {
    let kind = match code {
        Some("ThrottlingException") => ErrorKind::Throttled,
        Some("ValidationException" | "AccessDeniedException" | "ResourceNotFoundException") => {
            ErrorKind::UpstreamRejected
        }
        Some("ModelTimeoutException") => ErrorKind::UpstreamTimeout,
        // ModelNotReady comes with a 429 but is the model's state, not our rate.
        Some(
            "InternalServerException"
            | "ServiceUnavailableException"
            | "ModelNotReadyException"
            | "ModelErrorException"
            | "ModelStreamErrorException",
        ) => ErrorKind::UpstreamError,
        _ => match status {
            Some(429) => ErrorKind::Throttled,
            Some(400..=499) => ErrorKind::UpstreamRejected,
            Some(500..=599) => ErrorKind::UpstreamError,
            // An exception frame of a type we do not know is still the upstream failing.
            None if code.is_some() => ErrorKind::UpstreamError,
            _ => ErrorKind::UpstreamProtocol,
        },
    };

    let mut text = match status {
        Some(status) => format!("bedrock returned {status}"),
        None => "bedrock stream failed with".to_owned(),
    };
    if let Some(code) = code {
        text.push(' ');
        text.push_str(code);
    } else if status.is_none() {
        text.push_str(" an unknown error");
    }
    if let Some(message) = message {
        text.push_str(": ");
        text.push_str(message);
    }

    let mut error = Error::new(kind, text);
    if let Some(status) = status {
        error = error.with_upstream_status(status);
    }
    if let Some(after) = retry_after {
        error = error.with_retry_after(after);
    }
    error
}

/// A failure of the HTTP client itself: nothing (or no complete answer) came back.
fn from_connector(connector: &ConnectorError) -> Error {
    let detail = error_chain(connector);
    let phase = connection_phase(connector);
    if connector.is_io() {
        return match phase {
            Some(Phase::AfterConnect) => Error::new(
                ErrorKind::UpstreamError,
                format!("connection to bedrock failed after the request was sent: {detail}"),
            ),
            _ => Error::new(
                ErrorKind::UpstreamUnreachable,
                format!("could not reach bedrock: {detail}"),
            ),
        };
    }
    if connector.is_timeout() {
        return match phase {
            Some(Phase::Connect) => Error::new(
                ErrorKind::UpstreamUnreachable,
                format!("could not connect to bedrock in time: {detail}"),
            ),
            _ => Error::new(
                ErrorKind::UpstreamTimeout,
                format!("bedrock did not answer in time: {detail}"),
            ),
        };
    }
    if connector.is_user() {
        return Error::new(
            ErrorKind::Internal,
            format!("aigw built a request the HTTP client refused: {detail}"),
        );
    }
    match phase {
        // The HTTP client saw the upstream misbehave (e.g. an HTTP/2 protocol error).
        Some(_) => Error::new(
            ErrorKind::UpstreamProtocol,
            format!("bedrock connection failed: {detail}"),
        ),
        // Nothing reached the HTTP client: the SDK failed before sending, typically
        // while resolving credentials or the endpoint. That is our configuration.
        None => Error::new(
            ErrorKind::Internal,
            format!("could not prepare the bedrock request: {detail}"),
        ),
    }
}

enum Phase {
    Connect,
    AfterConnect,
}

/// Whether the HTTP client failed while connecting or later; `None` when the failure did
/// not come from the HTTP client at all.
fn connection_phase(connector: &ConnectorError) -> Option<Phase> {
    let mut next: Option<&(dyn StdError + 'static)> = connector.source();
    while let Some(err) = next {
        if let Some(client_err) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
            return Some(if client_err.is_connect() {
                Phase::Connect
            } else {
                Phase::AfterConnect
            });
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io;

    use aws_sdk_bedrockruntime::error::ErrorMetadata;
    use aws_sdk_bedrockruntime::operation::converse::ConverseError;
    use aws_sdk_bedrockruntime::operation::converse_stream::ConverseStreamError;
    use aws_sdk_bedrockruntime::types::error::{
        AccessDeniedException, InternalServerException, ModelStreamErrorException,
        ResourceNotFoundException, ServiceUnavailableException, ThrottlingException,
        ValidationException,
    };
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn response(status: u16, headers: &[(&'static str, &'static str)]) -> HttpResponse {
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).expect("valid status"),
            SdkBody::empty(),
        );
        for (name, value) in headers {
            response.headers_mut().insert(*name, *value);
        }
        response
    }

    fn meta(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(message).build()
    }

    fn converse_err(err: ConverseError, status: u16) -> SdkError<ConverseError, HttpResponse> {
        SdkError::service_error(err, response(status, &[]))
    }

    #[test]
    fn throttling_is_throttled_with_status_and_retry_after() {
        let err = ThrottlingException::builder()
            .message("Too many requests")
            .meta(meta("ThrottlingException", "Too many requests"))
            .build();
        let sdk = SdkError::<ConverseError, _>::service_error(
            ConverseError::ThrottlingException(err),
            response(429, &[("retry-after", "7")]),
        );
        let error = classify(&sdk);
        assert_eq!(error.kind(), ErrorKind::Throttled);
        assert_eq!(error.upstream_status(), Some(429));
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            error.message(),
            "bedrock returned 429 ThrottlingException: Too many requests"
        );
    }

    #[test]
    fn bare_429_is_throttled() {
        let sdk = converse_err(ConverseError::generic(ErrorMetadata::default()), 429);
        let error = classify(&sdk);
        assert_eq!(error.kind(), ErrorKind::Throttled);
        assert_eq!(error.upstream_status(), Some(429));
        assert_eq!(error.message(), "bedrock returned 429");
    }

    #[test]
    fn client_errors_are_rejected_with_status() {
        let cases = [
            (
                ConverseError::ValidationException(
                    ValidationException::builder()
                        .meta(meta("ValidationException", "bad"))
                        .build(),
                ),
                400,
            ),
            (
                ConverseError::AccessDeniedException(
                    AccessDeniedException::builder()
                        .meta(meta("AccessDeniedException", "no"))
                        .build(),
                ),
                403,
            ),
            (
                ConverseError::ResourceNotFoundException(
                    ResourceNotFoundException::builder()
                        .meta(meta("ResourceNotFoundException", "gone"))
                        .build(),
                ),
                404,
            ),
            (
                ConverseError::generic(meta("SomethingNewException", "hmm")),
                418,
            ),
        ];
        for (err, status) in cases {
            let error = classify(&converse_err(err, status));
            assert_eq!(error.kind(), ErrorKind::UpstreamRejected, "{error}");
            assert_eq!(error.upstream_status(), Some(status));
        }
    }

    #[test]
    fn server_errors_are_upstream_errors_with_status() {
        let cases = [
            (
                ConverseError::InternalServerException(
                    InternalServerException::builder()
                        .meta(meta("InternalServerException", "oops"))
                        .build(),
                ),
                500,
            ),
            (
                ConverseError::ServiceUnavailableException(
                    ServiceUnavailableException::builder()
                        .meta(meta("ServiceUnavailableException", "later"))
                        .build(),
                ),
                503,
            ),
            (
                ConverseError::generic(meta("ModelNotReadyException", "warming")),
                429,
            ),
            (ConverseError::generic(ErrorMetadata::default()), 502),
        ];
        for (err, status) in cases {
            let error = classify(&converse_err(err, status));
            assert_eq!(error.kind(), ErrorKind::UpstreamError, "{error}");
            assert_eq!(error.upstream_status(), Some(status));
        }
    }

    #[test]
    fn stream_call_errors_classify_the_same() {
        let sdk = SdkError::<ConverseStreamError, _>::service_error(
            ConverseStreamError::ThrottlingException(
                ThrottlingException::builder()
                    .meta(meta("ThrottlingException", "slow down"))
                    .build(),
            ),
            response(429, &[]),
        );
        assert_eq!(classify(&sdk).kind(), ErrorKind::Throttled);
    }

    #[test]
    fn connection_refused_is_unreachable() {
        let io = io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused");
        let sdk = SdkError::<ConverseError, HttpResponse>::dispatch_failure(ConnectorError::io(
            io.into(),
        ));
        let error = classify(&sdk);
        assert_eq!(error.kind(), ErrorKind::UpstreamUnreachable);
        assert!(error.message().contains("connection refused"), "{error}");
    }

    #[test]
    fn timeouts_are_timeouts() {
        let sdk = SdkError::<ConverseError, HttpResponse>::timeout_error("operation timed out");
        assert_eq!(classify(&sdk).kind(), ErrorKind::UpstreamTimeout);

        let sdk = SdkError::<ConverseError, HttpResponse>::dispatch_failure(
            ConnectorError::timeout("read timed out".into()),
        );
        assert_eq!(classify(&sdk).kind(), ErrorKind::UpstreamTimeout);
    }

    #[test]
    fn unreadable_answers_are_protocol_errors() {
        let sdk = SdkError::<ConverseError, _>::response_error("bad json", response(200, &[]));
        let error = classify(&sdk);
        assert_eq!(error.kind(), ErrorKind::UpstreamProtocol);
        assert_eq!(error.upstream_status(), Some(200));
    }

    #[test]
    fn failures_before_sending_are_internal() {
        let sdk = SdkError::<ConverseError, HttpResponse>::dispatch_failure(ConnectorError::other(
            "no credentials in the chain".into(),
            None,
        ));
        assert_eq!(classify(&sdk).kind(), ErrorKind::Internal);
        let sdk = SdkError::<ConverseError, HttpResponse>::construction_failure("bad input");
        assert_eq!(classify(&sdk).kind(), ErrorKind::Internal);
    }

    #[test]
    fn mid_stream_exceptions_keep_their_kind() {
        let sdk = SdkError::service_error(
            ConverseStreamOutputError::ThrottlingException(
                ThrottlingException::builder()
                    .message("slow down")
                    .meta(meta("ThrottlingException", "slow down"))
                    .build(),
            ),
            RawMessage::Invalid(None),
        );
        let error = classify_stream(&sdk);
        assert_eq!(error.kind(), ErrorKind::Throttled);
        assert_eq!(error.upstream_status(), None);
        assert_eq!(
            error.message(),
            "bedrock stream failed with ThrottlingException: slow down"
        );

        let sdk = SdkError::service_error(
            ConverseStreamOutputError::ModelStreamErrorException(
                ModelStreamErrorException::builder()
                    .meta(meta("ModelStreamErrorException", "boom"))
                    .build(),
            ),
            RawMessage::Invalid(None),
        );
        assert_eq!(classify_stream(&sdk).kind(), ErrorKind::UpstreamError);
    }

    #[test]
    fn the_variant_names_the_code_when_metadata_does_not() {
        let sdk = SdkError::service_error(
            ConverseStreamOutputError::ServiceUnavailableException(
                ServiceUnavailableException::builder()
                    .meta(ErrorMetadata::builder().message("later").build())
                    .build(),
            ),
            RawMessage::Invalid(None),
        );
        let error = classify_stream(&sdk);
        assert_eq!(error.kind(), ErrorKind::UpstreamError);
        assert_eq!(
            error.message(),
            "bedrock stream failed with ServiceUnavailableException: later"
        );
    }

    #[test]
    fn broken_stream_frames_are_protocol_errors() {
        let sdk = SdkError::<ConverseStreamOutputError, _>::response_error(
            "bad prelude checksum",
            RawMessage::Invalid(None),
        );
        assert_eq!(classify_stream(&sdk).kind(), ErrorKind::UpstreamProtocol);

        let sdk = SdkError::<ConverseStreamOutputError, RawMessage>::dispatch_failure(
            ConnectorError::io("connection reset".into()),
        );
        assert_eq!(classify_stream(&sdk).kind(), ErrorKind::UpstreamProtocol);
    }
}
