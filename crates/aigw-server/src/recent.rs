//! The last errors the gateway answered to clients, newest first, for the status
//! listener's `/status/overview`: when, which route and target, the status and code the
//! client saw, and the message.
//!
//! Recorded only on the error path, where an error becomes a client's answer (both front
//! ends, and a stream that breaks off). A short lock guards a bounded ring: the entry is
//! built before the lock is taken, so the lock covers one push and at most one pop.
//!
//! What is kept is what the client was told, never more: no prompt, no key, no
//! credential. Auth refusals never quote a presented key or token; an invalid request's
//! message may quote what the client sent (a value of the wrong type), so its quoted
//! values are elided here.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aigw_core::{Error, ErrorKind, ServedBy};

use crate::{Route, SharedRoutes};

/// How many errors the ring keeps.
pub(crate) const RECENT_ERRORS: usize = 50;

/// The longest message kept, in bytes; an upstream's message can be long.
const MESSAGE_CAP: usize = 512;

/// How the client saw the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answered {
    /// An HTTP error answer.
    Http,
    /// An SSE error event after a 200 head: the stream broke off.
    HttpStream,
    /// A gRPC status, before any message.
    Grpc,
    /// A gRPC status ending a stream that had sent messages.
    GrpcStream,
}

/// One error a client was answered with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecentError {
    /// Unix time, in milliseconds.
    pub(crate) at_ms: u64,
    /// The route, once the request was routed.
    pub(crate) route: Option<String>,
    /// The target (`provider/model`) whose failure the client saw, when one did.
    pub(crate) target: Option<String>,
    /// The HTTP status the client saw: 200 for a stream that broke off after its head;
    /// for gRPC the status the error table gives the error over HTTP.
    pub(crate) status: u16,
    /// The gRPC status code, for a gRPC client.
    pub(crate) grpc_code: Option<i32>,
    /// The error code (`ErrorKind::as_str`).
    pub(crate) code: &'static str,
    /// The message the client read, with an invalid request's quoted values elided.
    pub(crate) message: String,
    /// Whether the error ended a stream that had already sent part of an answer.
    pub(crate) mid_stream: bool,
}

/// Whether `error` answered an HTTP request for a path no route serves (or with a method no
/// endpoint takes). Scanners probe such paths by the thousand, and their 404s would push
/// the errors an operator looks for out of a ring this small; a gRPC call naming an unknown
/// route is a real client's mistake and is kept.
fn is_probe(error: &Error, route: Option<&Route>, answered: Answered) -> bool {
    route.is_none()
        && answered == Answered::Http
        && matches!(
            error.kind(),
            ErrorKind::RouteNotFound | ErrorKind::MethodNotAllowed
        )
}

/// The ring of recent errors of one gateway.
#[derive(Debug, Default)]
pub(crate) struct RecentErrors {
    ring: Mutex<VecDeque<RecentError>>,
}

impl RecentErrors {
    /// Records that a client was answered with `error`, on `route` when it was routed.
    pub(crate) fn record(&self, error: &Error, route: Option<&Route>, answered: Answered) {
        self.record_from(error, route, None, answered);
    }

    /// [`record`](Self::record), the failed target named by the caller rather than found
    /// in the message.
    fn record_from(
        &self,
        error: &Error,
        route: Option<&Route>,
        target: Option<String>,
        answered: Answered,
    ) {
        if is_probe(error, route, answered) {
            return;
        }
        let wire = crate::error::wire_status(error);
        let mid_stream = matches!(answered, Answered::HttpStream | Answered::GrpcStream);
        let entry = RecentError {
            at_ms: unix_ms(),
            route: route.map(|r| r.name.clone()),
            target: target.or_else(|| route.and_then(|r| failed_target(r, error.message()))),
            status: if answered == Answered::HttpStream {
                200
            } else {
                wire.0
            },
            grpc_code: matches!(answered, Answered::Grpc | Answered::GrpcStream)
                .then_some(wire.1 as i32),
            code: error.kind().as_str(),
            message: safe_message(error),
            mid_stream,
        };
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == RECENT_ERRORS {
            ring.pop_back();
        }
        ring.push_front(entry);
    }

    /// The errors kept, newest first.
    pub(crate) fn newest_first(&self) -> Vec<RecentError> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter().cloned().collect()
    }
}

/// Records the error that breaks off a stream already under way: the gateway's ring, the
/// route and the target serving the stream, which the error's message does not name.
pub(crate) struct StreamBreak {
    routes: SharedRoutes,
    route: Arc<Route>,
    served_by: ServedBy,
    answered: Answered,
}

impl StreamBreak {
    /// A stream of `route`, served by `served_by`, answered as `answered`. Costs no
    /// allocation, since most streams end cleanly.
    pub(crate) fn new(
        routes: &SharedRoutes,
        route: Arc<Route>,
        served_by: ServedBy,
        answered: Answered,
    ) -> Self {
        StreamBreak {
            routes: routes.clone(),
            route,
            served_by,
            answered,
        }
    }

    /// Records that `error` ended the stream.
    pub(crate) fn record(&self, error: &Error) {
        self.routes.recent_errors().record_from(
            error,
            Some(&self.route),
            Some(self.served_by.to_string()),
            self.answered,
        );
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The target whose failure decided `message`: failover names each attempt as `target
/// <index> (<label>): `, the deciding one last, after `; then: `. Only a label of the
/// route's own targets is taken, so an upstream's text cannot name one.
fn failed_target(route: &Route, message: &str) -> Option<String> {
    let last = message
        .rsplit_once("; then: ")
        .map_or(message, |(_, last)| last);
    let state = &route.balancer;
    (0..state.len()).find_map(|index| {
        let label = &state.info(index)?.label;
        let named = last
            .strip_prefix("target ")?
            .strip_prefix(index.to_string().as_str())?
            .strip_prefix(" (")?
            .strip_prefix(label.as_str())?
            .starts_with("): ");
        named.then(|| label.clone())
    })
}

/// What of `error`'s message may be kept: capped, and for an invalid request (whose
/// message may quote the request body) with every quoted value elided.
fn safe_message(error: &Error) -> String {
    let message = error.message();
    let mut kept = if error.kind() == ErrorKind::InvalidRequest {
        elide_quoted(message)
    } else {
        message.to_owned()
    };
    if kept.len() > MESSAGE_CAP {
        let mut end = MESSAGE_CAP;
        while !kept.is_char_boundary(end) {
            end -= 1;
        }
        kept.truncate(end);
        kept.push('…');
    }
    kept
}

/// `text` with the inside of every `"…"` pair replaced by `…`.
fn elide_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let mut inside = true;
    for part in parts {
        out.push('"');
        out.push_str(if inside { "…" } else { part });
        inside = !inside;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_of_invalid_requests_are_elided() {
        let error = Error::invalid_request(
            "invalid JSON body at messages[0].content: invalid type: string \"my secret plan\", expected a sequence",
        );
        let kept = safe_message(&error);
        assert!(!kept.contains("secret"), "{kept}");
        assert!(
            kept.starts_with("invalid JSON body at messages[0].content"),
            "{kept}"
        );
        let upstream = Error::new(ErrorKind::UpstreamError, "x".repeat(2_000));
        assert!(safe_message(&upstream).len() <= MESSAGE_CAP + '…'.len_utf8());
    }

    #[test]
    fn unrouted_http_probes_are_not_kept_but_grpc_unknown_routes_are() {
        let ring = RecentErrors::default();
        let unknown = Error::new(ErrorKind::RouteNotFound, "no route for path /wp-login.php");
        ring.record(&unknown, None, Answered::Http);
        let method = Error::new(ErrorKind::MethodNotAllowed, "method GET is not allowed");
        ring.record(&method, None, Answered::Http);
        assert!(ring.newest_first().is_empty());
        ring.record(&unknown, None, Answered::Grpc);
        assert_eq!(ring.newest_first().len(), 1);
    }

    #[test]
    fn the_ring_keeps_the_newest_fifty() {
        let ring = RecentErrors::default();
        for n in 0..60 {
            ring.record(
                &Error::new(ErrorKind::Overloaded, format!("busy {n}")),
                None,
                Answered::Http,
            );
        }
        let kept = ring.newest_first();
        assert_eq!(kept.len(), RECENT_ERRORS);
        assert_eq!(kept[0].message, "busy 59");
        assert_eq!(kept[49].message, "busy 10");
        assert_eq!(kept[0].status, 503);
        assert_eq!(kept[0].code, "overloaded");
    }
}
