//! Per-route concurrency limit with load shedding: past the limit a request is refused at
//! once with 503 instead of queueing, so a burst cannot pile up memory and sockets in front
//! of a slow model, and one busy route never makes another wait.
//!
//! This is tower's `ConcurrencyLimit` + `LoadShed` pair folded into one service for one
//! reason: a streamed answer must hold its slot until the stream ends, not only until its
//! first event, or a route full of long streams would count as idle. The permit rides on
//! the reply with [`ChatReply::hold_until_done`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aigw_core::{Around, AroundLayer, ChatReply, ChatRequest, DriverFuture, Error, ErrorKind};
use tokio::sync::Semaphore;

/// Requests one route works on at once when the settings say nothing.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1024;

/// Limits applied to every route's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimits {
    /// Requests (unary or streaming, until the answer's last byte) one route works on at
    /// once; at least 1.
    pub max_concurrent_requests: usize,
}

impl Default for RouteLimits {
    fn default() -> Self {
        RouteLimits {
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }
}

/// Puts a route's stack behind one concurrency limit that sheds what is over it. Clones
/// share `permits`, so the limit is the route's, whichever clone a request uses.
#[derive(Clone)]
pub(crate) struct ShedOverLimit {
    permits: Arc<Semaphore>,
    max: usize,
}

impl ShedOverLimit {
    /// The limit `limits` set (at least 1), with permits of its own: one layer per route.
    pub(crate) fn layer(limits: RouteLimits) -> AroundLayer<ShedOverLimit> {
        let max = limits.max_concurrent_requests.max(1);
        AroundLayer::new(ShedOverLimit {
            permits: Arc::new(Semaphore::new(max)),
            max,
        })
    }
}

impl Around<ChatRequest> for ShedOverLimit {
    fn around<F>(&self, request: ChatRequest, call: impl FnOnce(ChatRequest) -> F) -> DriverFuture
    where
        F: Future<Output = Result<ChatReply, Error>> + Send + 'static,
    {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            let max = self.max;
            return Box::pin(async move { Err(overloaded(max)) });
        };
        let reply = call(request);
        Box::pin(async move { Ok(reply.await?.hold_until_done(permit)) })
    }
}

/// The refusal of a request over a route's limit of `max`.
pub(crate) fn overloaded(max: usize) -> Error {
    Error::new(
        ErrorKind::Overloaded,
        format!(
            "this route is already serving its limit of {max} concurrent requests; retry shortly"
        ),
    )
    .with_retry_after(Duration::from_secs(1))
}
