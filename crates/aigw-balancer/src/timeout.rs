use std::task::{Context, Poll};
use std::time::Duration;

use aigw_core::{ChatReply, DriverFuture, Error, ErrorKind};
use tower::{Layer, Service};

use crate::Attempt;

/// Bounds each attempt (until the answer, or a stream's first piece) by Kong's
/// `read_timeout`, so a hung target becomes a timeout the balancer can fail over from.
#[derive(Debug, Clone, Copy)]
pub struct AttemptTimeoutLayer {
    limit: Duration,
}

impl AttemptTimeoutLayer {
    /// Each attempt gets at most `limit`.
    pub fn new(limit: Duration) -> Self {
        AttemptTimeoutLayer { limit }
    }
}

impl<S> Layer<S> for AttemptTimeoutLayer {
    type Service = AttemptTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttemptTimeout {
            inner,
            limit: self.limit,
        }
    }
}

/// See [`AttemptTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct AttemptTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Attempt> for AttemptTimeout<S>
where
    S: Service<Attempt, Response = ChatReply, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = ChatReply;
    type Error = Error;
    type Future = DriverFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        let limit = self.limit;
        let answer = self.inner.call(attempt);
        Box::pin(async move {
            tokio::time::timeout(limit, answer)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::UpstreamTimeout,
                        format!("no answer within {} ms", limit.as_millis()),
                    ))
                })
        })
    }
}
