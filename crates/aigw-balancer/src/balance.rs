use std::sync::Arc;
use std::task::{Context, Poll};

use aigw_core::{ChatReply, ChatRequest, DriverFuture, Error, ErrorKind};
use tower::{Layer, Service, ServiceExt};

use crate::pick::Candidates;
use crate::{Attempt, FailoverPolicy, Pick, RouteState, Tried};

/// Picks a target for each request and fails over to others per the policy.
///
/// A request never tries the same target twice unless it is the only one in service; the
/// client sees the first success, or one error naming every attempt. When the health check
/// has taken every target out, the request fails at once with
/// [`ErrorKind::NoHealthyTarget`], naming each target and when it comes back.
#[derive(Clone)]
pub struct BalanceLayer {
    shared: Arc<Shared>,
}

struct Shared {
    picker: Box<dyn Pick>,
    policy: FailoverPolicy,
    state: Arc<RouteState>,
}

impl BalanceLayer {
    /// Balances over the targets of `state` (in the order their drivers are indexed
    /// below) with `picker`, failing over per `policy`.
    pub fn new(picker: impl Pick, policy: FailoverPolicy, state: Arc<RouteState>) -> Self {
        BalanceLayer {
            shared: Arc::new(Shared {
                picker: Box::new(picker),
                policy,
                state,
            }),
        }
    }
}

impl<S> Layer<S> for BalanceLayer {
    type Service = Balance<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Balance {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See [`BalanceLayer`].
#[derive(Clone)]
pub struct Balance<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<ChatRequest> for Balance<S>
where
    S: Service<Attempt, Response = ChatReply, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatReply;
    type Error = Error;
    type Future = DriverFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        // The ready clone serves the first attempt; failovers wait for readiness again.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let shared = self.shared.clone();
        Box::pin(async move {
            let state = &shared.state;
            let mut tried = Tried::default();
            let mut earlier: Vec<String> = Vec::new();
            let mut last: Option<(Error, usize)> = None;
            for number in 1..=shared.policy.retries.saturating_add(1) {
                let candidates = Candidates::new(state, &tried, request.hash_key.as_deref());
                let Some(target) = shared
                    .picker
                    .pick(&candidates)
                    .or_else(|| lone_target(&candidates))
                else {
                    break;
                };
                if let Some((error, previous)) = last.take() {
                    earlier.push(format!(
                        "target {previous} ({}): {error}",
                        label(state, previous)
                    ));
                    tracing::debug!(target_index = previous, %error, "attempt failed, failing over");
                }
                tried.insert(target);
                let attempt = Attempt {
                    target,
                    number,
                    request: request.clone(),
                };
                let answer = if number == 1 {
                    inner.call(attempt).await
                } else {
                    inner.ready().await?.call(attempt).await
                };
                match answer {
                    Ok(reply) => return Ok(reply),
                    Err(error) => {
                        let move_on = shared.policy.allows(&error);
                        last = Some((error, target));
                        if !move_on {
                            break;
                        }
                    }
                }
            }
            Err(match last {
                Some((error, target)) => {
                    name_attempts(error, &earlier, target, label(state, target))
                }
                None => all_out(state),
            })
        })
    }
}

/// When a failed-over request has tried every target in service and exactly one is in
/// service, that one may be tried again: a lone target is better than none.
fn lone_target(candidates: &Candidates<'_>) -> Option<usize> {
    let mut healthy = (0..candidates.len()).filter(|t| candidates.is_healthy(*t));
    match (healthy.next(), healthy.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

fn label(state: &RouteState, target: usize) -> &str {
    state
        .info(target)
        .map_or("unknown target", |t| t.label.as_str())
}

/// The error the client sees names every attempt, the last one deciding the kind.
fn name_attempts(last: Error, earlier: &[String], target: usize, label: &str) -> Error {
    let last = last.context(format_args!("target {target} ({label})"));
    if earlier.is_empty() {
        return last;
    }
    let count = earlier.len() + 1;
    last.context(format_args!(
        "all {count} attempts failed: {}; then",
        earlier.join("; ")
    ))
}

/// Every target is out: say which and for how long, so an operator knows what to look at.
fn all_out(state: &RouteState) -> Error {
    if state.is_empty() {
        return Error::new(ErrorKind::NoHealthyTarget, "the route has no targets");
    }
    let now = state.now_ms();
    let targets: Vec<String> = (0..state.len())
        .map(|t| match state.out_for(t, now) {
            Some(out) => format!(
                "target {t} ({}) back in {:.1} s",
                label(state, t),
                out.as_secs_f64()
            ),
            None => format!("target {t} ({}) back now", label(state, t)),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aigw_core::{ChatResponse, FinishReason, ReplyBody, ServedBy, Usage};
    use tower::ServiceBuilder;

    use super::*;
    use crate::pick::RoundRobin;
    use crate::{HealthPolicy, TargetInfo};

    fn answer(target: usize) -> ChatReply {
        let model: Arc<str> = Arc::from(format!("m{target}"));
        ChatReply {
            served_by: ServedBy {
                provider: "test",
                model: model.clone(),
            },
            body: ReplyBody::Complete(ChatResponse {
                id: "chatcmpl-test".into(),
                created: 0,
                model,
                content: String::new(),
                finish_reason: FinishReason::Stop,
                usage: Usage::default(),
            }),
        }
    }

    /// A route over `n` targets where `failing(target)` says which attempts fail and how;
    /// counts calls per target.
    fn route(
        n: usize,
        policy: FailoverPolicy,
        failing: impl Fn(usize) -> Option<Error> + Send + Sync + 'static,
    ) -> (
        impl Service<ChatRequest, Response = ChatReply, Error = Error>,
        Arc<Vec<AtomicUsize>>,
    ) {
        let calls = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
        let counted = calls.clone();
        let failing = Arc::new(failing);
        let targets = tower::service_fn(move |attempt: Attempt| {
            counted[attempt.target].fetch_add(1, Ordering::Relaxed);
            let outcome = failing(attempt.target).map_or(Ok(answer(attempt.target)), Err);
            async move { outcome }
        });
        let infos = (0..n)
            .map(|i| TargetInfo::new(format!("test/m{i}"), 1))
            .collect();
        let state = Arc::new(RouteState::new(infos, HealthPolicy::default()));
        let service = ServiceBuilder::new()
            .layer(BalanceLayer::new(
                RoundRobin::new(&vec![1; n]),
                policy,
                state,
            ))
            .service(targets);
        (service, calls)
    }

    fn served_model(reply: &ChatReply) -> &str {
        &reply.served_by.model
    }

    #[tokio::test]
    async fn unreachable_target_fails_over_to_the_next() {
        let (mut service, calls) = route(2, FailoverPolicy::default(), |t| {
            (t == 0).then(|| Error::new(ErrorKind::UpstreamUnreachable, "refused"))
        });
        for _ in 0..4 {
            let reply = service
                .ready()
                .await
                .expect("ready")
                .call(ChatRequest::default())
                .await
                .expect("the healthy target answers");
            assert_eq!(served_model(&reply), "m1");
        }
        assert_eq!(calls[1].load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn unlisted_outcome_reaches_the_client_without_failover() {
        let (mut service, calls) = route(2, FailoverPolicy::default(), |_| {
            Some(Error::new(ErrorKind::UpstreamError, "boom").with_upstream_status(500))
        });
        let error = service
            .ready()
            .await
            .expect("ready")
            .call(ChatRequest::default())
            .await
            .expect_err("500 is not in the default criteria");
        assert_eq!(error.kind(), ErrorKind::UpstreamError);
        assert_eq!(error.upstream_status(), Some(500));
        assert!(
            error.message().starts_with("target 0 (test/m0): boom"),
            "{error}"
        );
        let total: usize = calls.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 1);
    }

    #[tokio::test]
    async fn exhausted_targets_name_every_attempt_once() {
        let policy = FailoverPolicy {
            on_status: vec![429],
            non_idempotent: true,
            ..FailoverPolicy::default()
        };
        let (mut service, calls) = route(3, policy, |t| {
            Some(
                Error::new(ErrorKind::Throttled, format!("slow down {t}"))
                    .with_upstream_status(429),
            )
        });
        let error = service
            .ready()
            .await
            .expect("ready")
            .call(ChatRequest::default())
            .await
            .expect_err("every target throttles");
        assert_eq!(error.kind(), ErrorKind::Throttled);
        assert!(
            error.message().starts_with("all 3 attempts failed"),
            "{error}"
        );
        for (target, count) in calls.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "target {target} tried once"
            );
        }
    }

    #[tokio::test]
    async fn retries_bound_the_number_of_failovers() {
        let policy = FailoverPolicy {
            retries: 1,
            ..FailoverPolicy::default()
        };
        let (mut service, calls) = route(4, policy, |_| {
            Some(Error::new(ErrorKind::UpstreamUnreachable, "refused"))
        });
        let error = service
            .ready()
            .await
            .expect("ready")
            .call(ChatRequest::default())
            .await
            .expect_err("all unreachable");
        assert!(
            error.message().starts_with("all 2 attempts failed"),
            "{error}"
        );
        let total: usize = calls.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 2);
    }
}
