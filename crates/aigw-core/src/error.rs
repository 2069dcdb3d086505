use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// What went wrong, by what a caller does about it. Front ends map each kind to one HTTP
/// status and one gRPC code; the balancer decides failover by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The client's request is malformed or invalid.
    InvalidRequest,
    /// No route matches what the client asked for.
    RouteNotFound,
    /// The client is not allowed in.
    Unauthorized,
    /// The client is known (or its address is) but may not use this route: Kong's
    /// ip-restriction.
    Forbidden,
    /// The route answers every request itself, without calling upstream: Kong's
    /// request-termination.
    Terminated,
    /// The request body is over the size limit.
    PayloadTooLarge,
    /// The endpoint exists but not for this method (an HTTP GET on a chat path, a gRPC
    /// method the gateway does not serve).
    MethodNotAllowed,
    /// The request body is labelled as a media type the endpoint does not read.
    UnsupportedMediaType,
    /// The client stopped sending its request body for longer than the body read timeout.
    RequestTimeout,
    /// The upstream refused the request as invalid (its 4xx other than throttling).
    UpstreamRejected,
    /// The upstream throttled us (HTTP 429 or a throttling exception).
    Throttled,
    /// The caller spent a window of the route's own token limit (Kong's
    /// ai-rate-limiting-advanced); no target was called.
    RateLimited,
    /// The upstream answered with a server error (5xx).
    UpstreamError,
    /// The upstream could not be reached; nothing was sent.
    UpstreamUnreachable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The upstream answered something we could not understand.
    UpstreamProtocol,
    /// Every target is out of service.
    NoHealthyTarget,
    /// The route is already working on as many requests as it may; try again shortly.
    Overloaded,
    /// A bug or misconfiguration inside the gateway.
    Internal,
}

impl ErrorKind {
    /// A short stable label, for logs, metrics and the error body's `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::RouteNotFound => "route_not_found",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Terminated => "terminated",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::UpstreamRejected => "upstream_rejected",
            ErrorKind::Throttled => "rate_limited",
            ErrorKind::RateLimited => "rate_limit_exceeded",
            ErrorKind::UpstreamError => "upstream_error",
            ErrorKind::UpstreamUnreachable => "upstream_unreachable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::UpstreamProtocol => "upstream_protocol_error",
            ErrorKind::NoHealthyTarget => "no_healthy_target",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Internal => "internal_error",
        }
    }

    /// Whether the error is the upstream's doing rather than the client's or ours.
    pub fn is_upstream(self) -> bool {
        matches!(
            self,
            ErrorKind::UpstreamRejected
                | ErrorKind::Throttled
                | ErrorKind::UpstreamError
                | ErrorKind::UpstreamUnreachable
                | ErrorKind::UpstreamTimeout
                | ErrorKind::UpstreamProtocol
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gateway's one error: a kind to act on, a message for the client, and what the
/// upstream said when it was the upstream's doing.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    upstream_status: Option<u16>,
    retry_after: Option<Duration>,
    reply: Option<Box<ErrorReply>>,
}

/// How a route's configuration shapes the answer to an error instead of the kind's
/// default: Kong plugins let a file choose the status (ip-restriction's `status`,
/// request-termination's `status_code`), the body (request-termination's `body`), and an
/// auth plugin names its scheme in `WWW-Authenticate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorReply {
    /// The HTTP status to answer with; the gRPC code follows from it.
    pub status: Option<u16>,
    /// A raw body and its content type, sent as is in place of the error body.
    pub body: Option<(String, String)>,
    /// The `WWW-Authenticate` challenge of a 401.
    pub challenge: Option<String>,
    /// More response headers (gRPC: metadata), such as a rate limit's figures; names
    /// lower-case.
    pub headers: Vec<(String, String)>,
}

impl Error {
    /// An error of `kind` with a message the client will read.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            upstream_status: None,
            retry_after: None,
            reply: None,
        }
    }

    /// Shapes the answer as the route's configuration says (see [`ErrorReply`]).
    pub fn with_reply(mut self, reply: ErrorReply) -> Self {
        self.reply = Some(Box::new(reply));
        self
    }

    /// How the route's configuration shapes the answer, when it does.
    pub fn reply(&self) -> Option<&ErrorReply> {
        self.reply.as_deref()
    }

    /// Shorthand for a client mistake.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidRequest, message)
    }

    /// Records the HTTP status the upstream answered with.
    pub fn with_upstream_status(mut self, status: u16) -> Self {
        self.upstream_status = Some(status);
        self
    }

    /// Records how long the upstream asked us to wait.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Prefixes the message with context, keeping kind and upstream details.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message for the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The upstream's HTTP status, when the upstream answered.
    pub fn upstream_status(&self) -> Option<u16> {
        self.upstream_status
    }

    /// The upstream's `Retry-After`, when it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// An error and its sources, `: `-joined, for a message a client may read.
///
/// Drivers use it for what their HTTP or SDK client reports: unlike a `Debug` dump, it
/// shows no more of the upstream's answer than each error's own text, and a source whose
/// text its parent already repeats is said once.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(source) = next {
        let part = source.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = source.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1
                .as_deref()
                .map(|layer| layer as &(dyn StdError + 'static))
        }
    }

    #[test]
    fn chain_joins_sources_and_says_repeats_once() {
        let err = Layer(
            "client error (Connect): connection refused",
            Some(Box::new(Layer(
                "connection refused",
                Some(Box::new(Layer("os error 111", None))),
            ))),
        );
        assert_eq!(
            error_chain(&err),
            "client error (Connect): connection refused: os error 111"
        );
    }

    #[test]
    fn context_keeps_kind_and_status() {
        let err = Error::new(ErrorKind::Throttled, "slow down")
            .with_upstream_status(429)
            .context("target 1 (bedrock/m)");
        assert_eq!(err.kind(), ErrorKind::Throttled);
        assert_eq!(err.upstream_status(), Some(429));
        assert_eq!(err.to_string(), "target 1 (bedrock/m): slow down");
    }
}
