use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, Pick};

/// What `lowest-usage` counts (Kong's `tokens_count_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageMeasure {
    /// Prompt plus completion tokens (Kong's default).
    TotalTokens,
    /// Prompt tokens only.
    PromptTokens,
    /// Completion tokens only.
    CompletionTokens,
    /// Spend: prompt tokens × `input_cost` + completion tokens × `output_cost`.
    Cost,
}

/// `lowest-usage`: the usable target that has used the least since start by its
/// [`UsageMeasure`], relative to its `weight` (a target of weight 200 may use twice as
/// much). Among equals, the one with fewer requests in flight wins, so a burst before the
/// first answers come back is spread rather than piled on one target.
#[derive(Debug)]
pub struct LowestUsage {
    measure: UsageMeasure,
    /// `1 / weight` per target: a multiplication per target instead of a division.
    inverse_weights: Box<[f64]>,
    next: AtomicUsize,
}

impl LowestUsage {
    /// Counts by `measure` over targets with these weights (index = target).
    pub fn new(measure: UsageMeasure, weights: &[u32]) -> Self {
        LowestUsage {
            measure,
            inverse_weights: weights
                .iter()
                .map(|w| 1.0 / f64::from((*w).max(1)))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Pick for LowestUsage {
    fn pick(&self, candidates: &Candidates<'_>) -> Option<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        candidates.scan(start, |target, state| {
            let inverse_weight = self.inverse_weights.get(target).copied().unwrap_or(1.0);
            let counter = match self.measure {
                UsageMeasure::TotalTokens => &state.total_tokens,
                UsageMeasure::PromptTokens => &state.prompt_tokens,
                UsageMeasure::CompletionTokens => &state.completion_tokens,
                UsageMeasure::Cost => &state.cost_nanos,
            };
            let used = counter.load(Ordering::Relaxed) as f64 * inverse_weight;
            (used, state.in_flight.load(Ordering::Relaxed))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aigw_core::Usage;

    use super::*;
    use crate::pick::testing::state;
    use crate::{HealthPolicy, RouteState, TargetInfo, Tried};

    fn answer(state: &RouteState, target: usize, prompt_tokens: u32, completion_tokens: u32) {
        let usage = Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Usage::default()
        };
        state.record_answer(target, Duration::from_millis(1), Some(usage));
    }

    #[test]
    fn picks_the_target_with_fewest_tokens_by_strategy() {
        let state = state(&[100, 100]);
        answer(&state, 0, 1_000, 10);
        answer(&state, 1, 10, 500);
        let pick = |measure| {
            LowestUsage::new(measure, &[100, 100]).pick(&Candidates::new(
                &state,
                &Tried::default(),
                None,
            ))
        };
        assert_eq!(pick(UsageMeasure::TotalTokens), Some(1));
        assert_eq!(pick(UsageMeasure::PromptTokens), Some(1));
        assert_eq!(pick(UsageMeasure::CompletionTokens), Some(0));
    }

    #[test]
    fn cost_weighs_tokens_by_price() {
        let mut cheap = TargetInfo::new("t/cheap", 100);
        cheap.input_cost = 0.1;
        cheap.output_cost = 0.4;
        let mut dear = TargetInfo::new("t/dear", 100);
        dear.input_cost = 3.0;
        dear.output_cost = 15.0;
        let state = RouteState::new(vec![cheap, dear], HealthPolicy::default());
        answer(&state, 0, 1_000, 1_000);
        answer(&state, 1, 100, 100);
        let lu = LowestUsage::new(UsageMeasure::Cost, &[100, 100]);
        let tried = Tried::default();
        assert_eq!(lu.pick(&Candidates::new(&state, &tried, None)), Some(0));
        let tokens = LowestUsage::new(UsageMeasure::TotalTokens, &[100, 100]);
        assert_eq!(tokens.pick(&Candidates::new(&state, &tried, None)), Some(1));
    }

    #[test]
    fn usage_evens_out_in_proportion_to_weight() {
        let weights = [100, 300];
        let state = state(&weights);
        let lu = LowestUsage::new(UsageMeasure::TotalTokens, &weights);
        let tried = Tried::default();
        let mut counts = [0; 2];
        for _ in 0..10_000 {
            let t = lu
                .pick(&Candidates::new(&state, &tried, None))
                .expect("a target");
            counts[t] += 1;
            answer(&state, t, 10, 20);
        }
        assert!((2_450..=2_550).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn a_burst_before_any_answer_is_spread() {
        let state = state(&[100, 100, 100]);
        let lu = LowestUsage::new(UsageMeasure::TotalTokens, &[100, 100, 100]);
        let tried = Tried::default();
        for _ in 0..9 {
            let t = lu
                .pick(&Candidates::new(&state, &tried, None))
                .expect("a target");
            state.start_attempt(t);
        }
        let in_flight: Vec<u32> = (0..3)
            .map(|t| Candidates::new(&state, &tried, None).in_flight(t))
            .collect();
        assert_eq!(in_flight, [3, 3, 3]);
    }
}
