use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, Pick, Ratio};

/// Which latency `lowest-latency` compares (Kong's `latency_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyStrategy {
    /// Time per output token: a whole answer's time over its completion tokens, so long
    /// and short answers compare fairly (Kong's default).
    Tpot,
    /// The whole answer's time, end to end.
    E2e,
}

/// `lowest-latency`: the usable target with the lowest peak-EWMA latency, weighted by its
/// load as in Finagle and tower: the score is `latency × (in_flight + 1)`, so a fast target
/// is not flooded past the point where it stops being fast.
///
/// A target with no measurement yet is probed first, one request at a time; estimates
/// decay while a target gets no traffic, so a target that was slow once is tried again
/// later rather than pinned out forever.
#[derive(Debug)]
pub struct LowestLatency {
    strategy: LatencyStrategy,
    next: AtomicUsize,
}

impl LowestLatency {
    /// Compares latency per `strategy`.
    pub fn new(strategy: LatencyStrategy) -> Self {
        LowestLatency {
            strategy,
            next: AtomicUsize::new(0),
        }
    }
}

impl Pick for LowestLatency {
    fn pick(&self, candidates: &Candidates<'_>) -> Option<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = candidates.now_ms();
        candidates.scan(start, |_, state| {
            let in_flight = state.in_flight.load(Ordering::Relaxed);
            let latency = match self.strategy {
                LatencyStrategy::Tpot => &state.tpot,
                LatencyStrategy::E2e => &state.e2e,
            };
            match latency.estimate_ratio(now) {
                Some((estimate, divisor)) => Ratio {
                    num: estimate * f64::from(in_flight + 1),
                    den: divisor,
                },
                // Unmeasured: probe it now if nobody else is, else wait for that probe.
                None if in_flight == 0 => Ratio {
                    num: -1.0,
                    den: 1.0,
                },
                None => Ratio {
                    num: f64::INFINITY,
                    den: 1.0,
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aigw_core::Usage;

    use super::*;
    use crate::Tried;
    use crate::pick::testing::{distribution, state};

    fn usage(completion_tokens: u32) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: 1,
            completion_tokens,
            total_tokens: completion_tokens + 1,
            ..Usage::default()
        })
    }

    #[test]
    fn unmeasured_targets_are_probed_then_the_fastest_wins() {
        let state = state(&[100, 100, 100]);
        let ll = LowestLatency::new(LatencyStrategy::E2e);
        let tried = Tried::default();
        let mut probed = Vec::new();
        for _ in 0..3 {
            let t = ll
                .pick(&Candidates::new(&state, &tried, None))
                .expect("a target");
            probed.push(t);
            let millis = [300, 20, 90][t];
            state.record_answer(t, Duration::from_millis(millis), usage(10));
        }
        probed.sort_unstable();
        assert_eq!(probed, [0, 1, 2], "each unmeasured target is probed once");
        assert_eq!(distribution(&ll, &state, 10_000), [0, 10_000, 0]);
    }

    #[test]
    fn tpot_compares_time_per_token_not_per_answer() {
        let state = state(&[100, 100]);
        // Target 0 answers long texts slowly but is faster per token.
        state.record_answer(0, Duration::from_millis(1_000), usage(500));
        state.record_answer(1, Duration::from_millis(200), usage(20));
        let tpot = LowestLatency::new(LatencyStrategy::Tpot);
        let e2e = LowestLatency::new(LatencyStrategy::E2e);
        assert_eq!(distribution(&tpot, &state, 100), [100, 0]);
        assert_eq!(distribution(&e2e, &state, 100), [0, 100]);
    }

    #[test]
    fn load_spreads_over_targets_before_the_fast_one_is_swamped() {
        let state = state(&[100, 100]);
        state.record_answer(0, Duration::from_millis(10), usage(10));
        state.record_answer(1, Duration::from_millis(30), usage(10));
        let ll = LowestLatency::new(LatencyStrategy::E2e);
        let tried = Tried::default();
        let mut held = [0; 2];
        for _ in 0..8 {
            let t = ll
                .pick(&Candidates::new(&state, &tried, None))
                .expect("a target");
            state.start_attempt(t);
            held[t] += 1;
        }
        assert_eq!(held, [6, 2], "10 ms × 6 in flight ties 30 ms × 2");
    }
}
