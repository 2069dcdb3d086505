//! Counting a prompt's tokens for a route (Anthropic's `POST /v1/messages/count_tokens`):
//! the route's first target in config order that can count (Bedrock's CountTokens) and is
//! in service counts it, with the next one tried when the route's `failover_criteria`
//! allow. Counting never moves the balancer's turn or a target's health, since no answer
//! is produced: round-robin and the circuit breaker see chat traffic only.

use std::sync::Arc;
use std::time::Duration;

use aigw_balancer::{FailoverPolicy, RouteState};
use aigw_config::RouteConfig;
use aigw_core::{ChatRequest, CountTokensService, Error, ErrorKind};
use tower::ServiceExt;

use crate::drivers::{DriverRegistry, TargetContext};
use crate::side_call::SideTarget;

/// One target that can count.
struct CountingTarget {
    index: usize,
    service: CountTokensService,
    label: String,
    provider: String,
    model: String,
}

/// The token counters of a chat route's targets.
pub struct TokenCounters {
    route: String,
    targets: Vec<CountingTarget>,
    state: Arc<RouteState>,
    policy: FailoverPolicy,
    timeout: Duration,
}

impl TokenCounters {
    /// The counters of `route`'s targets whose providers can count.
    pub(crate) async fn build(
        route: &RouteConfig,
        registry: &DriverRegistry,
        cx: &TargetContext<'_>,
        state: Arc<RouteState>,
        policy: FailoverPolicy,
    ) -> Result<Self, Error> {
        let mut targets = Vec::new();
        for (index, target) in route.ai.targets.iter().enumerate() {
            let counter = registry
                .token_counter(target, cx)
                .await
                .map_err(|e| e.context(format_args!("targets[{index}]")))?;
            if let Some(service) = counter {
                targets.push(CountingTarget {
                    index,
                    service,
                    label: target.label(),
                    provider: target.model.provider.as_str().to_owned(),
                    model: target.model.name.clone(),
                });
            }
        }
        Ok(TokenCounters {
            route: route.name.clone(),
            targets,
            state,
            policy,
            timeout: route.ai.balancer.read_timeout,
        })
    }

    /// The input tokens of `request` as a target of the route counts them.
    pub(crate) async fn count(&self, request: ChatRequest) -> Result<u64, Error> {
        if self.targets.is_empty() {
            return Err(Error::invalid_request(format!(
                "count_tokens is not supported on route {}: none of its targets can count \
                 tokens (Bedrock's CountTokens can)",
                self.route
            )));
        }
        // Targets in service first, in config order; the others still count if need be.
        let now = self.state.now_ms();
        let (up, down): (Vec<&CountingTarget>, Vec<&CountingTarget>) = self
            .targets
            .iter()
            .partition(|t| self.state.is_healthy(t.index, now));
        let attempts = usize::try_from(self.policy.retries)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let mut last = None;
        for (number, target) in up.into_iter().chain(down).take(attempts).enumerate() {
            let side = SideTarget {
                route: &self.route,
                index: target.index,
                label: &target.label,
                provider: &target.provider,
                model: &target.model,
            };
            let call = target.service.clone().oneshot(request.clone());
            let answer = crate::side_call::attempt(
                "count_tokens",
                &side,
                u32::try_from(number + 1).unwrap_or(u32::MAX),
                self.timeout,
                call,
                |tokens: &u64| Some(*tokens),
            )
            .await;
            match answer {
                Ok(tokens) => return Ok(tokens),
                Err(error) => {
                    let move_on = self.policy.allows(&error);
                    last = Some(
                        error.context(format_args!("target {} ({})", target.index, target.label)),
                    );
                    if !move_on {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(
                ErrorKind::NoHealthyTarget,
                format!("route {}: no target could count tokens", self.route),
            )
        }))
    }
}
