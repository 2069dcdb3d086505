use std::sync::Arc;
use std::task::{Context, Poll};

use aigw_core::{ChatReply, DriverFuture, Error};
use tower::{Layer, Service};

use crate::{Attempt, RouteState};

/// Kong's passive health check: records each attempt's outcome against its target, so that
/// after `max_fails` counted failures the balancer leaves the target out for
/// `fail_timeout` (see [`HealthPolicy`](crate::HealthPolicy) for what counts).
///
/// The outcome is the attempt's answer head: a stream that breaks later is the client's
/// error to see, not a reason to take the target out.
#[derive(Debug, Clone)]
pub struct HealthLayer {
    state: Arc<RouteState>,
}

impl HealthLayer {
    /// Records into the route's shared `state`.
    pub fn new(state: Arc<RouteState>) -> Self {
        HealthLayer { state }
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = Health<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Health {
            inner,
            state: self.state.clone(),
        }
    }
}

/// See [`HealthLayer`].
#[derive(Debug, Clone)]
pub struct Health<S> {
    inner: S,
    state: Arc<RouteState>,
}

impl<S> Service<Attempt> for Health<S>
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
        let target = attempt.target;
        let state = self.state.clone();
        let answer = self.inner.call(attempt);
        Box::pin(async move {
            let answer = answer.await;
            match &answer {
                Ok(_) => state.record_success(target),
                Err(error) => state.record_failure(target, error),
            }
            answer
        })
    }
}
