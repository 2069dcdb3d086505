use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, Pick};

/// Beyond this many slots the schedule is scaled down; weights keep their proportions to
/// within a fraction of a percent while memory stays bounded.
const MAX_SCHEDULE: u64 = 1 << 16;

/// Smooth weighted round-robin (nginx's algorithm), precomputed into a cyclic schedule so a
/// pick is one atomic increment: equal weights alternate strictly, and a 1:3 ratio gives
/// `b a b b`, never bursts of one target.
#[derive(Debug)]
pub struct RoundRobin {
    schedule: Box<[u32]>,
    next: AtomicUsize,
}

impl RoundRobin {
    /// A schedule over targets with these weights (index = target). Zero weights take no
    /// traffic.
    pub fn new(weights: &[u32]) -> Self {
        RoundRobin {
            schedule: smooth_schedule(weights),
            next: AtomicUsize::new(0),
        }
    }
}

impl Pick for RoundRobin {
    fn pick(&self, candidates: &Candidates<'_>) -> Option<usize> {
        let len = self.schedule.len();
        if len == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // When our slot's target is tried or out, walk on to the next usable one, so the
        // others keep their proportions among themselves.
        (0..len)
            .map(|offset| self.schedule[(start + offset) % len] as usize)
            .find(|target| candidates.is_usable(*target))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn smooth_schedule(weights: &[u32]) -> Box<[u32]> {
    let divisor = weights
        .iter()
        .filter(|w| **w > 0)
        .fold(0u64, |g, w| gcd(g, u64::from(*w)));
    if divisor == 0 {
        return Box::new([]);
    }
    let mut reduced: Vec<u64> = weights.iter().map(|w| u64::from(*w) / divisor).collect();
    let total: u64 = reduced.iter().sum();
    if total > MAX_SCHEDULE {
        for w in reduced.iter_mut().filter(|w| **w > 0) {
            *w = (*w * MAX_SCHEDULE / total).max(1);
        }
    }
    let total: i64 = reduced.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; reduced.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in reduced.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        schedule.push(best as u32);
    }
    schedule.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tried;
    use crate::pick::testing::{distribution, state};

    fn picks(rr: &RoundRobin, n: usize) -> Vec<usize> {
        let state = state(&vec![1; 256]);
        let tried = Tried::default();
        (0..n)
            .filter_map(|_| rr.pick(&Candidates::new(&state, &tried, None)))
            .collect()
    }

    #[test]
    fn equal_weights_alternate_strictly() {
        let rr = RoundRobin::new(&[100, 100]);
        assert_eq!(picks(&rr, 6), vec![0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn weights_are_smooth_and_proportional() {
        let rr = RoundRobin::new(&[100, 300]);
        assert_eq!(picks(&rr, 4), vec![1, 0, 1, 1]);
        let counts = distribution(&rr, &state(&[100, 300]), 10_000);
        assert_eq!(counts, [2_500, 7_500]);
    }

    #[test]
    fn zero_weight_takes_no_traffic() {
        let rr = RoundRobin::new(&[0, 5]);
        assert!(picks(&rr, 10).iter().all(|t| *t == 1));
        assert_eq!(picks(&RoundRobin::new(&[0, 0]), 1), Vec::<usize>::new());
    }

    #[test]
    fn failover_skips_tried_targets_and_none_is_left_after_all() {
        let rr = RoundRobin::new(&[100, 100, 100]);
        let state = state(&[100, 100, 100]);
        let mut tried = Tried::default();
        tried.insert(0);
        tried.insert(1);
        for _ in 0..5 {
            assert_eq!(rr.pick(&Candidates::new(&state, &tried, None)), Some(2));
        }
        tried.insert(2);
        assert_eq!(rr.pick(&Candidates::new(&state, &tried, None)), None);
    }

    #[test]
    fn huge_weights_keep_bounded_schedule_and_proportions() {
        let weights: Vec<u32> = (1..=256).map(|i| 65_535 - i).collect();
        let rr = RoundRobin::new(&weights);
        assert!(rr.schedule.len() as u64 <= MAX_SCHEDULE + 256);
        assert!(rr.schedule.contains(&255));
    }
}
