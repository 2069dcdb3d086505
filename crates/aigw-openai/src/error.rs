//! The one place where HTTP client failures and upstream error answers become
//! [`aigw_core::Error`]s, classified by cause so the balancer can decide failover and the
//! front ends can pick a status.

use std::time::Duration;

use aigw_core::{Error, ErrorKind, error_chain};
use http::{HeaderMap, StatusCode, header};

use crate::response::ErrorBody;

/// How much of an unreadable error body makes it into the message.
const BODY_EXCERPT: usize = 200;

/// Classifies a failure before the response head arrived.
///
/// The URL is dropped from the client's error first: it may carry an `auth.param_*`
/// credential in its query.
pub(crate) fn classify_send(err: reqwest::Error) -> Error {
    let err = err.without_url();
    let detail = error_chain(&err);
    if err.is_connect() {
        // Refused, unresolvable, or not connected within connect_timeout: nothing was sent.
        return Error::new(
            ErrorKind::UpstreamUnreachable,
            format!("could not reach the openai upstream: {detail}"),
        );
    }
    if err.is_timeout() {
        return Error::new(
            ErrorKind::UpstreamTimeout,
            format!("the openai upstream did not answer in time: {detail}"),
        );
    }
    if err.is_builder() {
        return Error::new(
            ErrorKind::Internal,
            format!("aigw built a request the HTTP client refused: {detail}"),
        );
    }
    // The connection was open and broke (reset, closed early, garbled head) after the
    // request went out: nginx's `error` outcome.
    Error::new(
        ErrorKind::UpstreamError,
        format!("connection to the openai upstream failed after the request was sent: {detail}"),
    )
}

/// Classifies a failure while reading a body whose head already arrived: the answer
/// broke off, which is not an unreachable upstream.
pub(crate) fn classify_body(err: reqwest::Error) -> Error {
    let err = err.without_url();
    let detail = error_chain(&err);
    if err.is_timeout() {
        return Error::new(
            ErrorKind::UpstreamTimeout,
            format!("the openai upstream stopped sending in time: {detail}"),
        );
    }
    Error::new(
        ErrorKind::UpstreamProtocol,
        format!("the openai upstream's answer broke off: {detail}"),
    )
}

/// Classifies a non-success answer by its status, with the upstream's own message.
pub(crate) fn from_status(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    let code = status.as_u16();
    let kind = match code {
        429 => ErrorKind::Throttled,
        400..=499 => ErrorKind::UpstreamRejected,
        500..=599 => ErrorKind::UpstreamError,
        // 1xx and 3xx (the client follows no redirects): not an answer aigw can use.
        _ => ErrorKind::UpstreamProtocol,
    };
    let mut text = format!("openai upstream returned {code}");
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => {
            if let Some(kind) = error.kind {
                text.push(' ');
                text.push_str(&kind);
            }
            if let Some(message) = error.message {
                text.push_str(": ");
                text.push_str(&message);
            }
        }
        Err(_) => {
            let body = String::from_utf8_lossy(body);
            let excerpt: String = body.trim().chars().take(BODY_EXCERPT).collect();
            if !excerpt.is_empty() {
                text.push_str(": ");
                text.push_str(&excerpt);
            }
        }
    }
    let mut error = Error::new(kind, text).with_upstream_status(code);
    if let Some(after) = retry_after(headers) {
        error = error.with_retry_after(after);
    }
    error
}

/// How long the upstream asked us to wait: OpenAI's finer `retry-after-ms` when sent,
/// else `Retry-After` in its delta-seconds form (OpenAI never sends the date form).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    number("retry-after-ms")
        .map(Duration::from_millis)
        .or_else(|| number(header::RETRY_AFTER.as_str()).map(Duration::from_secs))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn statuses_classify_by_what_the_caller_does() {
        let none = HeaderMap::new();
        let cases = [
            (429, ErrorKind::Throttled),
            (400, ErrorKind::UpstreamRejected),
            (401, ErrorKind::UpstreamRejected),
            (404, ErrorKind::UpstreamRejected),
            (500, ErrorKind::UpstreamError),
            (503, ErrorKind::UpstreamError),
            (302, ErrorKind::UpstreamProtocol),
        ];
        for (code, kind) in cases {
            let status = StatusCode::from_u16(code).unwrap();
            let err = from_status(status, &none, b"");
            assert_eq!(err.kind(), kind, "{code}");
            assert_eq!(err.upstream_status(), Some(code));
        }
    }

    #[test]
    fn throttling_keeps_retry_after_and_the_upstream_message() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        let err = from_status(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            br#"{"error":{"message":"Rate limit reached","type":"requests","code":null}}"#,
        );
        assert_eq!(err.kind(), ErrorKind::Throttled);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            err.message(),
            "openai upstream returned 429 requests: Rate limit reached"
        );
    }

    #[test]
    fn retry_after_ms_is_preferred_when_sent() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        let err = from_status(StatusCode::TOO_MANY_REQUESTS, &headers, b"");
        assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn unreadable_error_bodies_are_quoted_briefly() {
        let body = "x".repeat(1000);
        let err = from_status(StatusCode::BAD_GATEWAY, &HeaderMap::new(), body.as_bytes());
        assert!(err.message().len() < 300, "{}", err.message());
    }
}
