//! Pick strategies, one file each: every one chooses a target for the next attempt from
//! the [`Candidates`] a request has left, reading the route's live state (in flight,
//! latency, usage) that the layers below the balancer record.

mod consistent_hashing;
mod least_connections;
mod lowest_latency;
mod lowest_usage;
mod priority;
mod round_robin;
mod semantic;

use std::sync::atomic::Ordering;

pub use consistent_hashing::ConsistentHashing;
pub use least_connections::LeastConnections;
pub use lowest_latency::{LatencyStrategy, LowestLatency};
pub use lowest_usage::{LowestUsage, UsageMeasure};
pub use priority::Priority;
pub use round_robin::RoundRobin;
pub use semantic::Semantic;

use crate::state::TargetState;
use crate::{RouteState, Tried};

/// Chooses the target for an attempt. Implementations are shared by every request of a
/// route, so they keep their state in atomics rather than behind a lock; what they learn
/// from answers (latency, usage, load) they read from the route's shared state through
/// [`Candidates`], which the layers below the balancer keep up to date.
///
/// ```
/// use aigw_balancer::pick::{Candidates, Pick, RoundRobin};
/// use aigw_balancer::{HealthPolicy, RouteState, TargetInfo, Tried};
///
/// let state = RouteState::new(
///     vec![TargetInfo::new("bedrock/a", 100), TargetInfo::new("bedrock/b", 100)],
///     HealthPolicy::default(),
/// );
/// let rr = RoundRobin::new(&[100, 100]);
/// let tried = Tried::default();
/// let first = rr.pick(&Candidates::new(&state, &tried, None));
/// let second = rr.pick(&Candidates::new(&state, &tried, None));
/// assert_ne!(first, second);
/// ```
pub trait Pick: Send + Sync + 'static {
    /// A usable target (healthy and not yet tried by this request), or `None` when there
    /// is none; the balancer then decides between repeating a lone target and giving up.
    fn pick(&self, candidates: &Candidates<'_>) -> Option<usize>;
}

impl<P: Pick + ?Sized> Pick for Box<P> {
    fn pick(&self, candidates: &Candidates<'_>) -> Option<usize> {
        (**self).pick(candidates)
    }
}

/// What one pick may choose from: the route's targets and live state, less those this
/// request already tried and those the health check took out.
#[derive(Debug)]
pub struct Candidates<'a> {
    state: &'a RouteState,
    tried: &'a Tried,
    key: Option<&'a str>,
    now_ms: u64,
}

impl<'a> Candidates<'a> {
    /// The candidates for a request that tried `tried` and hashes on `key`.
    pub fn new(state: &'a RouteState, tried: &'a Tried, key: Option<&'a str>) -> Self {
        Candidates {
            state,
            tried,
            key,
            now_ms: state.now_ms(),
        }
    }

    /// How many targets the route has (usable or not); targets are `0..len()`.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether the route has no targets.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Whether `target` may take this attempt: healthy and not yet tried.
    pub fn is_usable(&self, target: usize) -> bool {
        !self.tried.contains(target) && self.state.is_healthy(target, self.now_ms)
    }

    /// Whether `target` is in service (not taken out by the health check), tried or not.
    pub fn is_healthy(&self, target: usize) -> bool {
        self.state.is_healthy(target, self.now_ms)
    }

    /// The request's hash key (the `hash_on_header` value), if it has one.
    pub fn key(&self) -> Option<&str> {
        self.key
    }

    /// Attempts running on `target` now.
    pub fn in_flight(&self, target: usize) -> u32 {
        self.state
            .target(target)
            .map_or(0, |t| t.in_flight.load(Ordering::Relaxed))
    }

    /// The moving latency of `target` in nanoseconds, `None` until it answered once.
    pub fn latency(&self, target: usize, strategy: LatencyStrategy) -> Option<f64> {
        self.latency_ratio(target, strategy).map(|r| r.num / r.den)
    }

    /// [`latency`](Self::latency) as a [`Ratio`], which ranks without dividing.
    pub fn latency_ratio(&self, target: usize, strategy: LatencyStrategy) -> Option<Ratio> {
        let t = self.state.target(target)?;
        let (estimate, decay) = match strategy {
            LatencyStrategy::Tpot => t.tpot.estimate_ratio(self.now_ms),
            LatencyStrategy::E2e => t.e2e.estimate_ratio(self.now_ms),
        }?;
        Some(Ratio {
            num: estimate,
            den: decay,
        })
    }

    /// What `target` has used so far by `measure`: tokens, or cost in billionths.
    pub fn usage(&self, target: usize, measure: UsageMeasure) -> u64 {
        let Some(t) = self.state.target(target) else {
            return 0;
        };
        let counter = match measure {
            UsageMeasure::TotalTokens => &t.total_tokens,
            UsageMeasure::PromptTokens => &t.prompt_tokens,
            UsageMeasure::CompletionTokens => &t.completion_tokens,
            UsageMeasure::Cost => &t.cost_nanos,
        };
        counter.load(Ordering::Relaxed)
    }

    /// The usable target with the lowest `score`, scanning from `start` (mod `len()`) so
    /// that ties rotate instead of always landing on the first target.
    pub fn lowest<S: PartialOrd>(
        &self,
        start: usize,
        mut score: impl FnMut(usize) -> S,
    ) -> Option<usize> {
        self.scan(start, |target, _| score(target))
    }

    /// [`lowest`](Self::lowest) with each target's live state at hand. This loop is most
    /// of a pick's cost at hundreds of targets, so it walks the state table in place:
    /// two slices instead of an index taken modulo the length, no bounds checks, and the
    /// health check reduced to one comparison while a target has too few failures.
    pub(crate) fn scan<S: PartialOrd>(
        &self,
        start: usize,
        mut score: impl FnMut(usize, &TargetState) -> S,
    ) -> Option<usize> {
        let targets = self.state.targets();
        if targets.is_empty() {
            return None;
        }
        let start = start % targets.len();
        // Hoisted: most picks are first attempts, and most targets have no failures.
        let check_tried = !self.tried.is_empty();
        let max_fails = self.state.health().max_fails;
        let mut best: Option<(usize, S)> = None;
        let mut visit = |target: usize, state: &TargetState| {
            if check_tried && self.tried.contains(target) {
                return;
            }
            if max_fails != 0
                && state.fails.load(Ordering::Relaxed) >= max_fails
                && !self.state.is_healthy(target, self.now_ms)
            {
                return;
            }
            let s = score(target, state);
            if best.as_ref().is_none_or(|(_, b)| s < *b) {
                best = Some((target, s));
            }
        };
        let (before, after) = targets.split_at(start);
        for (offset, state) in after.iter().enumerate() {
            visit(start + offset, state);
        }
        for (target, state) in before.iter().enumerate() {
            visit(target, state);
        }
        best.map(|(target, _)| target)
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }
}

/// A score `num / den` compared by cross-multiplication, so that scanning hundreds of
/// targets for the lowest costs no division per target. `den` must be positive.
#[derive(Debug, Clone, Copy)]
pub struct Ratio {
    /// The numerator.
    pub num: f64,
    /// The denominator, positive.
    pub den: f64,
}

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.num * other.den == other.num * self.den
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (self.num * other.den).partial_cmp(&(other.num * self.den))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the strategies' unit tests.

    use super::*;
    use crate::{HealthPolicy, TargetInfo};

    /// A route state over targets with these weights and no health check.
    pub(crate) fn state(weights: &[u32]) -> RouteState {
        RouteState::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| TargetInfo::new(format!("test/m{i}"), *w))
                .collect(),
            HealthPolicy::default(),
        )
    }

    /// Counts how often each target is picked over `n` fresh requests.
    pub(crate) fn distribution(picker: &dyn Pick, state: &RouteState, n: usize) -> Vec<usize> {
        let mut counts = vec![0; state.len()];
        let tried = Tried::default();
        for _ in 0..n {
            if let Some(t) = picker.pick(&Candidates::new(state, &tried, None)) {
                counts[t] += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_is_object_safe() {
        fn _assert(_: &dyn Pick) {}
    }
}
