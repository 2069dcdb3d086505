use std::sync::Arc;
use std::task::{Context, Poll};

use aigw_core::{ChatReply, ChatRequest, Error, ErrorKind};
use futures_util::future::{BoxFuture, FutureExt, TryFutureExt};
use tower::{Layer, Service};

use crate::pick::Candidates;
use crate::{Attempt, Pick, RouteState, Tried};

/// A request on its way to a target, between [`FailoverLayer`](crate::FailoverLayer) and
/// [`PickLayer`]: the request and what its earlier attempts tried.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The client's request.
    pub request: ChatRequest,
    /// The targets earlier attempts of this request went to.
    pub tried: Tried,
    /// 1 for the first attempt, 2 for the first failover, and so on.
    pub number: u32,
}

/// An attempt that produced no answer, and the target it failed on.
#[derive(Debug, Clone)]
pub struct AttemptFailed {
    /// The target that failed; `None` when no target could be picked at all.
    pub target: Option<usize>,
    /// What went wrong.
    pub error: Error,
}

/// Picks the target for each attempt with a [`Pick`] strategy and sends it on as an
/// [`Attempt`].
///
/// An attempt never goes to a target the request already tried unless that target is the
/// only one in service. When the health check has taken every target out, the first
/// attempt fails at once with [`ErrorKind::NoHealthyTarget`], naming each target and when
/// it comes back.
#[derive(Clone)]
pub struct PickLayer {
    shared: Arc<Shared>,
}

struct Shared {
    picker: Box<dyn Pick>,
    state: Arc<RouteState>,
}

impl PickLayer {
    /// Picks with `picker` among the targets of `state` (indexed like the drivers below).
    pub fn new(picker: impl Pick, state: Arc<RouteState>) -> Self {
        PickLayer {
            shared: Arc::new(Shared {
                picker: Box::new(picker),
                state,
            }),
        }
    }
}

impl<S> Layer<S> for PickLayer {
    type Service = PickTarget<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PickTarget {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See [`PickLayer`].
#[derive(Clone)]
pub struct PickTarget<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Routed> for PickTarget<S>
where
    S: Service<Attempt, Response = ChatReply, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = ChatReply;
    type Error = AttemptFailed;
    type Future = BoxFuture<'static, Result<ChatReply, AttemptFailed>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AttemptFailed>> {
        self.inner.poll_ready(cx).map_err(|error| AttemptFailed {
            target: None,
            error,
        })
    }

    fn call(&mut self, routed: Routed) -> Self::Future {
        let state = &self.shared.state;
        let candidates = Candidates::new(state, &routed.tried, routed.request.hash_key.as_deref());
        let picked = self
            .shared
            .picker
            .pick(&candidates)
            .or_else(|| lone_target(&candidates));
        let Some(target) = picked else {
            let error = if routed.tried.is_empty() {
                all_out(state)
            } else {
                Error::new(ErrorKind::NoHealthyTarget, "no other target left to try")
            };
            return futures_util::future::ready(Err(AttemptFailed {
                target: None,
                error,
            }))
            .boxed();
        };
        let attempt = Attempt {
            target,
            number: routed.number,
            request: routed.request,
        };
        self.inner
            .call(attempt)
            .map_err(move |error| AttemptFailed {
                target: Some(target),
                error,
            })
            .boxed()
    }
}

/// When a request has tried every target in service and exactly one is in service, that
/// one may be tried again: a lone target is better than none.
fn lone_target(candidates: &Candidates<'_>) -> Option<usize> {
    let mut healthy = (0..candidates.len()).filter(|t| candidates.is_healthy(*t));
    match (healthy.next(), healthy.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// Every target is out: say which and for how long, so an operator knows what to look at.
fn all_out(state: &RouteState) -> Error {
    if state.is_empty() {
        return Error::new(ErrorKind::NoHealthyTarget, "the route has no targets");
    }
    let now = state.now_ms();
    let targets: Vec<String> = (0..state.len())
        .map(|t| {
            let label = state.info(t).map_or("unknown target", |i| i.label.as_str());
            match state.out_for(t, now) {
                Some(out) => format!("target {t} ({label}) back in {:.1} s", out.as_secs_f64()),
                None => format!("target {t} ({label}) back now"),
            }
        })
        .collect();
    Error::new(
        ErrorKind::NoHealthyTarget,
        format!(
            "every target is out of service after max_fails failures: {}",
            targets.join(", ")
        ),
    )
}
