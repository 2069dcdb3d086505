use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, Pick};

/// `least-connections`: the usable target with the fewest attempts in flight relative to
/// its `weight`, i.e. the lowest `(in_flight + 1) / weight`, so a target of weight 200
/// carries twice the concurrent load of one of weight 100. Ties rotate.
#[derive(Debug)]
pub struct LeastConnections {
    /// `1 / weight` per target: a multiplication per target instead of a division.
    inverse_weights: Box<[f64]>,
    next: AtomicUsize,
}

impl LeastConnections {
    /// Over targets with these weights (index = target).
    pub fn new(weights: &[u32]) -> Self {
        LeastConnections {
            inverse_weights: weights
                .iter()
                .map(|w| 1.0 / f64::from((*w).max(1)))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Pick for LeastConnections {
    fn pick(&self, candidates: &Candidates<'_>) -> Option<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        candidates.scan(start, |target, state| {
            let inverse_weight = self.inverse_weights.get(target).copied().unwrap_or(1.0);
            f64::from(state.in_flight.load(Ordering::Relaxed) + 1) * inverse_weight
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tried;
    use crate::pick::testing::{distribution, state};

    #[test]
    fn fills_targets_in_proportion_to_weight() {
        let weights = [100, 300];
        let lc = LeastConnections::new(&weights);
        let state = state(&weights);
        let tried = Tried::default();
        // Requests that never finish: the picks pile up as in-flight load.
        let mut held = [0; 2];
        for _ in 0..400 {
            let t = lc
                .pick(&Candidates::new(&state, &tried, None))
                .expect("a target");
            state.start_attempt(t);
            held[t] += 1;
        }
        assert_eq!(held, [100, 300]);
    }

    #[test]
    fn idle_targets_share_evenly() {
        let lc = LeastConnections::new(&[100, 100, 100, 100]);
        let counts = distribution(&lc, &state(&[100; 4]), 10_000);
        assert_eq!(counts, [2_500; 4]);
    }

    #[test]
    fn a_finished_request_frees_its_target() {
        let lc = LeastConnections::new(&[100, 100]);
        let state = state(&[100, 100]);
        let tried = Tried::default();
        state.start_attempt(0);
        state.start_attempt(0);
        state.start_attempt(1);
        assert_eq!(lc.pick(&Candidates::new(&state, &tried, None)), Some(1));
        state.end_attempt(0);
        state.end_attempt(0);
        assert_eq!(lc.pick(&Candidates::new(&state, &tried, None)), Some(0));
    }
}
