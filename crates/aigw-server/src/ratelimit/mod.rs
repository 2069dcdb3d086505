//! Kong's `ai-rate-limiting-advanced` in admission: before a request goes to its route's
//! stack, every policy that matches it is checked against its windows' counters, and a
//! spent window refuses it (429, gRPC `RESOURCE_EXHAUSTED`); when the answer (or the
//! stream) ends, the provider's usage is added to the counters of the policies matching
//! the target that served it. As in Kong, a request is never cut short: the answer that
//! overspends a window is delivered, and the next request is refused.
//!
//! Choices where Kong is vague:
//! - The target is picked after admission, so a `provider` or `model` condition matches a
//!   request when any of the route's targets matches it; the check covers the counters of
//!   every target the request may land on, and the charge goes to the serving target's.
//! - `identifier: consumer` falls back to the client's address without a consumer, as
//!   Kong's does; `credential` counts per consumer (aigw names credentials by consumer).
//! - Headers name each policy by its provider (`llm_providers`), or by the one provider or
//!   model its `match` names, else `policy<N>` (1-based).
//!
//! Counters live in [`local`] (this process) or, with `strategy: redis`, in [`redis`].

mod local;
mod redis;
pub(crate) mod window;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aigw_config::{
    AiRateLimitConfig, ConsumerConfig, Identifier, IpNet, MatchKind, PolicyMatch, RouteConfig,
    Strategy, TokenCount,
};
use aigw_core::{ChatReply, Error, ErrorKind, ErrorReply, ReplyBody, ServedBy, Usage};
use http::{HeaderMap, HeaderName, HeaderValue};

pub use redis::redis_errors_total;

use self::window::{Counts, WindowUse};

/// What a policy decides on, read from the request's head.
pub(crate) struct Facts<'a> {
    pub(crate) consumer: Option<&'a ConsumerConfig>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) peer: Option<IpAddr>,
    pub(crate) path: &'a str,
}

/// A target of the route, as policies see it.
#[derive(Debug, Clone)]
struct TargetFacts {
    provider: &'static str,
    model: String,
    input_cost: f64,
    output_cost: f64,
}

/// One counter: a policy's window for one partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CounterKey {
    /// Namespace, policy, partition and window, `|`-separated.
    pub(crate) name: String,
    pub(crate) window: u64,
}

/// A route's ai-rate-limiting-advanced plugin.
pub struct AiRateLimiter {
    config: AiRateLimitConfig,
    service: Option<String>,
    targets: Vec<TargetFacts>,
    store: Store,
}

impl std::fmt::Debug for AiRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiRateLimiter")
            .field("policies", &self.config.policies.len())
            .finish_non_exhaustive()
    }
}

/// Where counters are kept.
enum Store {
    Local(local::LocalCounters),
    Redis(Arc<redis::RedisCounters>),
}

/// Counters a request was admitted under, to charge when its answer ends.
pub(crate) struct Grant {
    limiter: Arc<AiRateLimiter>,
    /// The partition of each policy, by policy index, for the serving target's charge.
    facts_key: Vec<Option<String>>,
    /// The figures to send back with the answer.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl AiRateLimiter {
    /// The limiter of `route`'s plugin, when it has one. A Redis store connects lazily:
    /// building never waits on Redis.
    pub fn new(route: &RouteConfig) -> Option<Arc<Self>> {
        let config = route.ai_rate_limit.clone()?;
        let targets = route
            .ai
            .targets
            .iter()
            .map(|t| TargetFacts {
                provider: t.model.provider.as_str(),
                model: t.model.name.clone(),
                input_cost: t.model.options.input_cost.unwrap_or(0.0),
                output_cost: t.model.options.output_cost.unwrap_or(0.0),
            })
            .collect();
        let store = match &config.strategy {
            Strategy::Local => Store::Local(local::LocalCounters::default()),
            Strategy::Redis(redis) => {
                Store::Redis(redis::RedisCounters::new(redis.clone(), config.sync_rate))
            }
        };
        Some(Arc::new(AiRateLimiter {
            config,
            service: route.service.clone(),
            targets,
            store,
        }))
    }

    /// The identifier's value for this request: whose counters.
    fn identity(&self, facts: &Facts<'_>) -> String {
        let ip = || {
            facts
                .peer
                .map_or_else(|| "unknown".to_owned(), |ip| ip.to_canonical().to_string())
        };
        match self.config.identifier {
            Identifier::Consumer | Identifier::Credential => facts.consumer.map_or_else(
                || format!("ip:{}", ip()),
                |c| format!("consumer:{}", c.name),
            ),
            Identifier::Ip => format!("ip:{}", ip()),
            Identifier::Service => format!("service:{}", self.service.as_deref().unwrap_or("")),
            Identifier::Path => format!("path:{}", facts.path),
            Identifier::ConsumerGroup => format!(
                "group:{}",
                facts
                    .consumer
                    .and_then(|c| c.consumer_groups.first())
                    .map_or("", |g| g.name.as_str())
            ),
            Identifier::Header => {
                let name = self.config.header_name.as_deref().unwrap_or_default();
                let value = facts
                    .headers
                    .get(name)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                format!("header:{value}")
            }
        }
    }

    /// Whether `policy` applies to this request served by `target`, and the partition
    /// (its `partition_by` values) when it does.
    fn partition(
        &self,
        policy: &[PolicyMatch],
        facts: &Facts<'_>,
        target: &TargetFacts,
    ) -> Option<String> {
        let mut partition = String::new();
        for condition in policy {
            let value = matched_value(condition, facts, target)?;
            if condition.partition_by {
                partition.push_str(condition.kind.as_str());
                partition.push('=');
                partition.push_str(&value);
                partition.push(';');
            }
        }
        Some(partition)
    }

    /// Every counter the request may be charged to, by policy and target.
    fn keys(&self, facts: &Facts<'_>, identity: &str) -> Vec<(usize, usize, CounterKey)> {
        let mut keys = Vec::new();
        for (pi, policy) in self.config.policies.iter().enumerate() {
            for target in &self.targets {
                let Some(partition) = self.partition(&policy.matches, facts, target) else {
                    continue;
                };
                for (li, limit) in policy.limits.iter().enumerate() {
                    let key = CounterKey {
                        name: format!(
                            "{}|{pi}|{identity}|{partition}|{}",
                            self.config.namespace, limit.window
                        ),
                        window: limit.window,
                    };
                    if !keys.iter().any(|(_, _, k)| *k == key) {
                        keys.push((pi, li, key));
                    }
                }
            }
        }
        keys
    }

    /// Admits a request or refuses it as the limits say; the grant charges the answer.
    pub(crate) async fn check(self: &Arc<Self>, facts: &Facts<'_>) -> Result<Grant, Error> {
        let identity = self.identity(facts);
        let keys = self.keys(facts, &identity);
        let now = now_secs_f64();
        let names: Vec<CounterKey> = keys.iter().map(|(_, _, k)| k.clone()).collect();
        let counts: Vec<Counts> = match &self.store {
            Store::Local(local) => local.read(&names, now),
            Store::Redis(redis) => redis.read(&names, now).await,
        };
        // Per (policy, limit): the tightest figures over the counters it may land on.
        let mut figures: BTreeMap<(usize, usize), WindowUse> = BTreeMap::new();
        for ((pi, li, key), counts) in keys.iter().zip(&counts) {
            let limit = self.config.policies[*pi].limits[*li];
            let used = window::usage(
                self.config.window_type,
                counts,
                key.window,
                limit.limit,
                now,
            );
            figures
                .entry((*pi, *li))
                .and_modify(|f| {
                    if used.remaining < f.remaining {
                        *f = used;
                    }
                })
                .or_insert(used);
        }
        let mut headers = Vec::new();
        let mut spent: Vec<&str> = Vec::new();
        let mut retry_after = 0u64;
        let mut reset = u64::MAX;
        for ((pi, li), used) in &figures {
            let policy = &self.config.policies[*pi];
            let window = policy.limits[*li].window;
            let suffix = format!("{window}-{}", policy.name);
            if !self.config.hide_client_headers {
                push(
                    &mut headers,
                    &format!("x-ai-ratelimit-limit-{suffix}"),
                    fmt_amount(policy.limits[*li].limit),
                );
                push(
                    &mut headers,
                    &format!("x-ai-ratelimit-remaining-{suffix}"),
                    fmt_amount(used.remaining),
                );
            }
            reset = reset.min(used.reset);
            if used.spent {
                if !spent.contains(&policy.name.as_str()) {
                    spent.push(&policy.name);
                }
                retry_after = retry_after.max(used.retry_after);
                push(
                    &mut headers,
                    &format!("x-ai-ratelimit-retry-after-{suffix}"),
                    used.retry_after.to_string(),
                );
                push(
                    &mut headers,
                    &format!("x-ai-ratelimit-reset-{suffix}"),
                    used.retry_after.to_string(),
                );
            }
        }
        if reset != u64::MAX {
            push(
                &mut headers,
                "x-ai-ratelimit-reset",
                if spent.is_empty() { reset } else { retry_after }.to_string(),
            );
        }
        if !spent.is_empty() {
            push(
                &mut headers,
                "x-ai-ratelimit-retry-after",
                retry_after.to_string(),
            );
            push(&mut headers, "retry-after", retry_after.max(1).to_string());
            let message = self.config.error_message.clone().unwrap_or_else(|| {
                format!("API rate limit exceeded for provider {}", spent.join(", "))
            });
            return Err(
                Error::new(ErrorKind::RateLimited, message).with_reply(ErrorReply {
                    status: Some(self.config.error_code),
                    headers: headers
                        .iter()
                        .map(|(n, v)| {
                            (
                                n.as_str().to_owned(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    ..ErrorReply::default()
                }),
            );
        }
        let facts_key = self
            .config
            .policies
            .iter()
            .map(|_| Some(identity.clone()))
            .collect();
        Ok(Grant {
            limiter: self.clone(),
            facts_key,
            headers,
        })
    }

    /// How much `usage` on `target` counts, by `tokens_count_strategy`.
    fn amount(&self, usage: Usage, target: &TargetFacts) -> f64 {
        let prompt = f64::from(usage.prompt_tokens);
        let completion = f64::from(usage.completion_tokens);
        match self.config.tokens_count_strategy {
            TokenCount::TotalTokens => f64::from(
                usage
                    .total_tokens
                    .max(usage.prompt_tokens + usage.completion_tokens),
            ),
            TokenCount::PromptTokens => prompt,
            TokenCount::CompletionTokens => completion,
            // Costs are per million tokens, as ai-proxy-advanced's options are written.
            TokenCount::Cost => {
                (prompt * target.input_cost + completion * target.output_cost) / 1e6
            }
        }
    }
}

fn push(headers: &mut Vec<(HeaderName, HeaderValue)>, name: &str, value: String) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        headers.push((name, value));
    }
}

/// Whole amounts as integers, fractions (costs) with up to six decimals.
fn fmt_amount(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// The value of `condition` in this request on `target`, if the condition holds.
fn matched_value(
    condition: &PolicyMatch,
    facts: &Facts<'_>,
    target: &TargetFacts,
) -> Option<String> {
    let any_or = |value: &str| -> Option<String> {
        (condition.values.is_empty() || condition.values.iter().any(|v| v == value))
            .then(|| value.to_owned())
    };
    match condition.kind {
        MatchKind::Provider => any_or(target.provider),
        MatchKind::Model => any_or(&target.model),
        MatchKind::Path => any_or(facts.path),
        MatchKind::Header => {
            let name = condition.key.as_deref()?;
            let value = facts.headers.get(name)?.to_str().ok()?;
            any_or(value)
        }
        MatchKind::Ip => {
            let ip = facts.peer?;
            let hit = condition.values.is_empty()
                || condition
                    .values
                    .iter()
                    .filter_map(|v| IpNet::parse(v))
                    .any(|net| net.contains(ip));
            hit.then(|| ip.to_canonical().to_string())
        }
        MatchKind::Consumer => {
            let consumer = facts.consumer?;
            let value = match condition.key.as_deref() {
                Some("id") => consumer.id.as_deref(),
                Some("custom_id") => consumer.custom_id.as_deref(),
                _ => consumer.username.as_deref(),
            }?;
            any_or(value)
        }
        MatchKind::ConsumerGroup => {
            let consumer = facts.consumer?;
            consumer.consumer_groups.iter().find_map(|group| {
                let value = match condition.key.as_deref() {
                    Some("id") => group.id.as_deref(),
                    _ => Some(group.name.as_str()),
                }?;
                any_or(value)
            })
        }
    }
}

impl Grant {
    /// Charges the answer's usage once it is known: at once for a whole answer, when the
    /// stream ends (or is dropped) for a stream. Facts are re-read from the grant, since
    /// the request's head is gone by then.
    pub(crate) async fn charge_on_end(self, reply: ChatReply, facts: OwnedFacts) -> ChatReply {
        match reply.body {
            ReplyBody::Complete(answer) => {
                self.charge_now(&reply.served_by, answer.usage, facts).await;
                ChatReply {
                    served_by: reply.served_by,
                    body: ReplyBody::Complete(answer),
                }
            }
            ReplyBody::Stream(chunks) => {
                use futures_util::StreamExt;
                let charge = std::sync::Mutex::new(self.charge(&reply.served_by, facts));
                // The closure owns the charge, so it is made when the stream is dropped.
                let chunks = chunks.map(move |chunk| {
                    if let Some(usage) = chunk.as_ref().ok().and_then(|piece| piece.usage) {
                        charge
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .usage = Some(usage);
                    }
                    chunk
                });
                ChatReply {
                    served_by: reply.served_by,
                    body: ReplyBody::Stream(Box::pin(chunks)),
                }
            }
        }
    }

    /// Charges `usage` of an answer `served_by` a target, before the answer is released.
    pub(crate) async fn charge_now(self, served_by: &ServedBy, usage: Usage, facts: OwnedFacts) {
        let mut charge = self.charge(served_by, facts);
        charge.usage = Some(usage);
        // Kong's sync_rate 0 is synchronous: the shared counters hold this answer before
        // the client sees it, so its next request (to any replica) counts it.
        if let Some((limiter, keys, amount)) = charge.settle() {
            match &limiter.store {
                Store::Redis(redis) if redis.is_synchronous() => {
                    redis.add_now(keys, amount, now_secs_f64()).await;
                }
                _ => limiter.store_add(keys, amount),
            }
        }
    }

    /// A charge, usage still unknown, against the target that served.
    fn charge(self, served_by: &ServedBy, facts: OwnedFacts) -> Charge {
        let target = self
            .limiter
            .targets
            .iter()
            .find(|t| t.provider == served_by.provider && *t.model == *served_by.model)
            .cloned();
        Charge {
            grant: Some(self),
            facts,
            target,
            usage: None,
        }
    }
}

/// The request facts a charge needs after the request's head is gone.
pub(crate) struct OwnedFacts {
    pub(crate) consumer: Option<Arc<ConsumerConfig>>,
    pub(crate) headers: HeaderMap,
    pub(crate) peer: Option<IpAddr>,
    pub(crate) path: String,
}

/// Adds an answer's usage to its counters when dropped.
struct Charge {
    grant: Option<Grant>,
    facts: OwnedFacts,
    target: Option<TargetFacts>,
    usage: Option<Usage>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some((limiter, keys, amount)) = self.settle() {
            limiter.store_add(keys, amount);
        }
    }
}

impl AiRateLimiter {
    /// Adds `amount` to `keys` now; a Redis write goes from a task.
    fn store_add(&self, keys: Vec<CounterKey>, amount: f64) {
        let now = now_secs_f64();
        match &self.store {
            Store::Local(local) => local.add(&keys, amount, now),
            Store::Redis(redis) => redis.add(keys, amount, now),
        }
    }
}

impl Charge {
    /// What this charge adds and where, once: `None` when there is nothing to charge
    /// (no usage, an unknown target, or already settled).
    fn settle(&mut self) -> Option<(Arc<AiRateLimiter>, Vec<CounterKey>, f64)> {
        let (Some(grant), Some(target), Some(usage)) =
            (self.grant.take(), &self.target, self.usage)
        else {
            return None;
        };
        let limiter = &grant.limiter;
        let amount = limiter.amount(usage, target);
        if amount <= 0.0 {
            return None;
        }
        let facts = Facts {
            consumer: self.facts.consumer.as_deref(),
            headers: &self.facts.headers,
            peer: self.facts.peer,
            path: &self.facts.path,
        };
        let mut keys = Vec::new();
        for (pi, policy) in limiter.config.policies.iter().enumerate() {
            let Some(partition) = limiter.partition(&policy.matches, &facts, target) else {
                continue;
            };
            let Some(identity) = grant.facts_key.get(pi).cloned().flatten() else {
                continue;
            };
            for limit in &policy.limits {
                keys.push(CounterKey {
                    name: format!(
                        "{}|{pi}|{identity}|{partition}|{}",
                        limiter.config.namespace, limit.window
                    ),
                    window: limit.window,
                });
            }
        }
        Some((grant.limiter.clone(), keys, amount))
    }
}

/// Kong's defaults for a plugin config built in code (tests).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_as_kong_prints_them() {
        assert_eq!(fmt_amount(1000.0), "1000");
        assert_eq!(fmt_amount(0.25), "0.25");
        assert_eq!(fmt_amount(0.0), "0");
    }
}
