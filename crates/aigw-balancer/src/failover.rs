use std::sync::Arc;
use std::task::{Context, Poll};

use aigw_core::{ChatReply, ChatRequest, DriverFuture, Error};
use tower::{Layer, Service, ServiceExt};

use crate::{AttemptFailed, FailoverPolicy, RouteState, Routed, Tried};

/// Retries a failed attempt on another target per Kong's `retries` and
/// `failover_criteria` (see [`FailoverPolicy`]); the layer below ([`PickLayer`]) chooses
/// the target for each attempt, away from those this request already tried.
///
/// The client sees the first success, or one error naming every attempt, whose kind is
/// the last attempt's.
///
/// [`PickLayer`]: crate::PickLayer
#[derive(Clone)]
pub struct FailoverLayer {
    shared: Arc<Shared>,
}

struct Shared {
    policy: FailoverPolicy,
    state: Arc<RouteState>,
}

impl FailoverLayer {
    /// Fails over per `policy`, naming targets in errors by their labels in `state`.
    pub fn new(policy: FailoverPolicy, state: Arc<RouteState>) -> Self {
        FailoverLayer {
            shared: Arc::new(Shared { policy, state }),
        }
    }
}

impl<S> Layer<S> for FailoverLayer {
    type Service = Failover<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Failover {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See [`FailoverLayer`].
#[derive(Clone)]
pub struct Failover<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<ChatRequest> for Failover<S>
where
    S: Service<Routed, Response = ChatReply, Error = AttemptFailed> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatReply;
    type Error = Error;
    type Future = DriverFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(|failed| failed.error)
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        // The ready clone serves the first attempt; failovers wait for readiness again.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let shared = self.shared.clone();
        Box::pin(async move {
            let mut tried = Tried::default();
            let mut earlier: Vec<String> = Vec::new();
            let mut last: Option<(Error, usize)> = None;
            for number in 1..=shared.policy.retries.saturating_add(1) {
                let routed = Routed {
                    request: request.clone(),
                    tried: tried.clone(),
                    number,
                };
                let answer = if number == 1 {
                    inner.call(routed).await
                } else {
                    match inner.ready().await {
                        Ok(ready) => ready.call(routed).await,
                        Err(failed) => Err(failed),
                    }
                };
                // An attempt after a failed one that reached a target is a failover; one
                // that found nothing left to try is not.
                let attempted = !matches!(answer, Err(AttemptFailed { target: None, .. }));
                if number > 1 && attempted {
                    shared.state.record_failover();
                }
                let (target, error) = match answer {
                    Ok(reply) => return Ok(reply),
                    Err(AttemptFailed {
                        target: Some(target),
                        error,
                    }) => (target, error),
                    // Nothing left to try: the previous attempt's error is the answer, or
                    // on the first attempt the reason nothing could be tried.
                    Err(AttemptFailed {
                        target: None,
                        error,
                    }) => match last {
                        Some(_) => break,
                        None => return Err(error),
                    },
                };
                if let Some((error, previous)) = last.take() {
                    earlier.push(format!(
                        "target {previous} ({}): {error}",
                        label(&shared.state, previous)
                    ));
                }
                tried.insert(target);
                let move_on = shared.policy.allows(&error);
                if move_on {
                    tracing::debug!(target_index = target, %error, "attempt failed, failing over");
                }
                last = Some((error, target));
                if !move_on {
                    break;
                }
            }
            match last {
                Some((error, target)) => Err(name_attempts(
                    error,
                    &earlier,
                    target,
                    label(&shared.state, target),
                )),
                None => Err(Error::new(
                    aigw_core::ErrorKind::Internal,
                    "failover made no attempt",
                )),
            }
        })
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aigw_core::{ChatCompletion, ErrorKind, FinishReason, ReplyBody, ServedBy, Usage};
    use tower::ServiceBuilder;

    use super::*;
    use crate::pick::RoundRobin;
    use crate::{Attempt, HealthPolicy, PickLayer, TargetInfo};

    fn answer(target: usize) -> ChatReply {
        let model: Arc<str> = Arc::from(format!("m{target}"));
        ChatReply {
            served_by: ServedBy {
                provider: "test",
                model: model.clone(),
            },
            body: ReplyBody::Complete(ChatCompletion {
                id: "chatcmpl-test".into(),
                created: 0,
                model,
                content: String::new(),
                tool_calls: Vec::new(),
                reasoning: None,
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
            .layer(FailoverLayer::new(policy, state.clone()))
            .layer(PickLayer::new(RoundRobin::new(&vec![1; n]), state))
            .service(targets);
        (service, calls)
    }

    /// One default request through a ready `service`.
    async fn send<S>(service: &mut S) -> Result<ChatReply, Error>
    where
        S: Service<ChatRequest, Response = ChatReply, Error = Error>,
    {
        service.ready().await?.call(ChatRequest::default()).await
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
            let reply = send(&mut service)
                .await
                .expect("the healthy target answers");
            assert_eq!(served_model(&reply), "m1");
        }
        assert_eq!(calls[1].load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn failovers_are_counted_per_route() {
        let calls = Arc::new((0..2).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
        let counted = calls.clone();
        let targets = tower::service_fn(move |attempt: Attempt| {
            counted[attempt.target].fetch_add(1, Ordering::Relaxed);
            let outcome = if attempt.target == 0 {
                Err(Error::new(ErrorKind::UpstreamUnreachable, "refused"))
            } else {
                Ok(answer(attempt.target))
            };
            async move { outcome }
        });
        let infos = vec![TargetInfo::new("test/a", 1), TargetInfo::new("test/b", 1)];
        let state = Arc::new(RouteState::new(infos, HealthPolicy::default()));
        let mut service = ServiceBuilder::new()
            .layer(FailoverLayer::new(FailoverPolicy::default(), state.clone()))
            .layer(PickLayer::new(RoundRobin::new(&[1, 1]), state.clone()))
            .service(targets);
        for _ in 0..4 {
            send(&mut service).await.expect("the second target answers");
        }
        // Round robin starts two of the four requests on the refusing target.
        assert_eq!(state.failovers(), calls[0].load(Ordering::Relaxed) as u64);
        assert!(state.failovers() >= 1);
    }

    #[tokio::test]
    async fn unlisted_outcome_reaches_the_client_without_failover() {
        let (mut service, calls) = route(2, FailoverPolicy::default(), |_| {
            Some(Error::new(ErrorKind::UpstreamError, "boom").with_upstream_status(500))
        });
        let error = send(&mut service)
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
        let error = send(&mut service)
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
        let error = send(&mut service).await.expect_err("all unreachable");
        assert!(
            error.message().starts_with("all 2 attempts failed"),
            "{error}"
        );
        let total: usize = calls.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 2);
    }

    #[tokio::test]
    async fn a_tripped_target_is_skipped_and_all_out_answers_at_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let targets = tower::service_fn(move |_: Attempt| {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Err::<ChatReply, _>(Error::new(ErrorKind::UpstreamUnreachable, "refused")) }
        });
        let health = HealthPolicy {
            max_fails: 1,
            fail_timeout: std::time::Duration::from_secs(60),
            counted_statuses: Vec::new(),
        };
        let infos = vec![TargetInfo::new("test/a", 1), TargetInfo::new("test/b", 1)];
        let state = Arc::new(RouteState::new(infos, health));
        let mut service = ServiceBuilder::new()
            .layer(FailoverLayer::new(FailoverPolicy::default(), state.clone()))
            .layer(PickLayer::new(RoundRobin::new(&[1, 1]), state.clone()))
            .layer(crate::Record::layer(state.clone()))
            .service(targets);
        let first = send(&mut service).await.expect_err("both refuse");
        assert!(
            first.message().starts_with("all 2 attempts failed"),
            "{first}"
        );
        let second = send(&mut service).await.expect_err("both are out");
        assert_eq!(second.kind(), ErrorKind::NoHealthyTarget);
        assert!(
            second.message().contains("target 1 (test/b) back in 6"),
            "{second}"
        );
        assert_eq!(
            calls.load(Ordering::Relaxed),
            2,
            "the second request sent nothing"
        );
    }

    #[tokio::test]
    async fn a_lone_target_in_service_is_tried_again() {
        let policy = FailoverPolicy {
            retries: 3,
            ..FailoverPolicy::default()
        };
        let (mut service, calls) = route(1, policy, |_| {
            Some(Error::new(ErrorKind::UpstreamUnreachable, "refused"))
        });
        let error = send(&mut service).await.expect_err("always refused");
        assert!(
            error.message().starts_with("all 4 attempts failed"),
            "{error}"
        );
        assert_eq!(calls[0].load(Ordering::Relaxed), 4);
    }
}
