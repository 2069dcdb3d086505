//! The shape most of aigw's layers share: pass readiness through, and do something around
//! each call (time it, bound it, record its outcome, refuse it).
//!
//! A layer of that kind implements [`Around`] for its settings and is applied with
//! [`AroundLayer`]; the tower plumbing ([`Layer`], [`Service`], readiness) is written once,
//! here. A layer that changes the request or the error type (failover, pick) is a plain
//! tower layer instead.

use std::future::Future;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::{ChatReply, DriverFuture, Error};

/// Work done around each call of the service below: before it (reading the request), and
/// around its answer's future.
///
/// ```
/// use aigw_core::{Around, ChatReply, DriverFuture, Error};
///
/// /// Logs how each call ended.
/// #[derive(Clone)]
/// struct LogOutcome;
///
/// impl<Req: Send + 'static> Around<Req> for LogOutcome {
///     fn around<F>(&self, request: Req, call: impl FnOnce(Req) -> F) -> DriverFuture
///     where
///         F: Future<Output = Result<ChatReply, Error>> + Send + 'static,
///     {
///         let answer = call(request);
///         Box::pin(async move {
///             let answer = answer.await;
///             tracing::debug!(ok = answer.is_ok(), "call ended");
///             answer
///         })
///     }
/// }
/// ```
pub trait Around<Req> {
    /// Answers `request`; `call` hands it to the service below (not calling it refuses the
    /// request without reaching that service).
    fn around<F>(&self, request: Req, call: impl FnOnce(Req) -> F) -> DriverFuture
    where
        F: Future<Output = Result<ChatReply, Error>> + Send + 'static;
}

/// Applies an [`Around`] to the service below.
#[derive(Debug, Clone)]
pub struct AroundLayer<A> {
    around: A,
}

impl<A> AroundLayer<A> {
    /// A layer doing `around` around every call.
    pub fn new(around: A) -> Self {
        AroundLayer { around }
    }
}

impl<S, A: Clone> Layer<S> for AroundLayer<A> {
    type Service = AroundService<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        AroundService {
            inner,
            around: self.around.clone(),
        }
    }
}

/// See [`AroundLayer`]: ready when the service below is.
#[derive(Debug, Clone)]
pub struct AroundService<S, A> {
    inner: S,
    around: A,
}

impl<Req, S, A> Service<Req> for AroundService<S, A>
where
    S: Service<Req, Response = ChatReply, Error = Error>,
    S::Future: Send + 'static,
    A: Around<Req>,
{
    type Response = ChatReply;
    type Error = Error;
    type Future = DriverFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> DriverFuture {
        let inner = &mut self.inner;
        self.around.around(request, |request| inner.call(request))
    }
}
