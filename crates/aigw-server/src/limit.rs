//! Per-route concurrency limit with load shedding: past the limit a request is refused at
//! once with 503 instead of queueing, so a burst cannot pile up memory and sockets in front
//! of a slow model, and one busy route never makes another wait.
//!
//! This is tower's `ConcurrencyLimit` + `LoadShed` pair folded into one service for one
//! reason: a streamed answer must hold its slot until the stream ends, not only until its
//! first event, or a route full of long streams would count as idle. The permit rides on
//! the reply with [`ChatReply::hold_until_done`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aigw_core::{ChatReply, ChatRequest, Error, ErrorKind};
use tokio::sync::Semaphore;
use tower::Service;
use tower::util::BoxCloneSyncService;

/// A route's stack, as the front ends call it.
pub(crate) type RouteService = BoxCloneSyncService<ChatRequest, ChatReply, Error>;

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

/// `service` behind a shared concurrency limit that sheds what is over it.
pub(crate) fn shed_over_limit(service: RouteService, limits: RouteLimits) -> RouteService {
    let max = limits.max_concurrent_requests.max(1);
    BoxCloneSyncService::new(ShedOverLimit {
        inner: service,
        permits: Arc::new(Semaphore::new(max)),
        max,
    })
}

/// Clones share `permits`, so the limit is the route's, whichever clone a request uses.
#[derive(Clone)]
struct ShedOverLimit {
    inner: RouteService,
    permits: Arc<Semaphore>,
    max: usize,
}

type ReplyFuture = Pin<Box<dyn Future<Output = Result<ChatReply, Error>> + Send>>;

impl Service<ChatRequest> for ShedOverLimit {
    type Response = ChatReply;
    type Error = Error;
    type Future = ReplyFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ChatRequest) -> ReplyFuture {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            let max = self.max;
            return Box::pin(async move { Err(overloaded(max)) });
        };
        let reply = self.inner.call(request);
        Box::pin(async move { Ok(reply.await?.hold_until_done(permit)) })
    }
}

fn overloaded(max: usize) -> Error {
    Error::new(
        ErrorKind::Overloaded,
        format!(
            "this route is already serving its limit of {max} concurrent requests; retry shortly"
        ),
    )
    .with_retry_after(Duration::from_secs(1))
}
