use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, Pick};

/// Kong's `priority`: targets with the same `weight` form a group, a higher weight is a
/// higher priority, and all traffic goes to the highest group that still has a usable
/// target, round-robin inside it. A lower group takes traffic only while every target
/// above it is out of service or already tried by the request.
#[derive(Debug)]
pub struct Priority {
    /// Highest weight first; each group's targets in config order.
    groups: Box<[Group]>,
}

#[derive(Debug)]
struct Group {
    targets: Box<[usize]>,
    next: AtomicUsize,
}

impl Priority {
    /// Groups targets (index = target) by these weights.
    pub fn new(weights: &[u32]) -> Self {
        let mut levels: Vec<u32> = weights.to_vec();
        levels.sort_unstable_by(|a, b| b.cmp(a));
        levels.dedup();
        let groups = levels
            .into_iter()
            .map(|level| Group {
                targets: (0..weights.len())
                    .filter(|t| weights[*t] == level)
                    .collect(),
                next: AtomicUsize::new(0),
            })
            .collect();
        Priority { groups }
    }
}

impl Pick for Priority {
    fn pick(&self, candidates: &Candidates<'_>) -> Option<usize> {
        self.groups.iter().find_map(|group| {
            let len = group.targets.len();
            let start = group.next.fetch_add(1, Ordering::Relaxed);
            (0..len)
                .map(|offset| group.targets[(start + offset) % len])
                .find(|target| candidates.is_usable(*target))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aigw_core::{Error, ErrorKind};

    use super::*;
    use crate::pick::testing::{distribution, state};
    use crate::{HealthPolicy, RouteState, TargetInfo, Tried};

    #[test]
    fn only_the_top_group_takes_traffic_round_robin_inside() {
        let weights = [10, 100, 100, 50];
        let p = Priority::new(&weights);
        assert_eq!(
            distribution(&p, &state(&weights), 10_000),
            [0, 5_000, 5_000, 0]
        );
    }

    #[test]
    fn lower_groups_only_when_every_higher_target_is_tried() {
        let weights = [10, 100, 100, 50];
        let p = Priority::new(&weights);
        let state = state(&weights);
        let mut tried = Tried::default();
        let mut order = Vec::new();
        while let Some(t) = p.pick(&Candidates::new(&state, &tried, None)) {
            order.push(t);
            tried.insert(t);
        }
        assert_eq!(&order[2..], [3, 0]);
        assert_eq!(order.len(), 4);
    }

    #[test]
    fn a_tripped_top_group_hands_over_until_it_recovers() {
        let targets = vec![TargetInfo::new("t/hi", 200), TargetInfo::new("t/lo", 100)];
        let health = HealthPolicy {
            max_fails: 1,
            fail_timeout: Duration::from_secs(60),
            counted_statuses: Vec::new(),
        };
        let state = RouteState::new(targets, health);
        let p = Priority::new(&[200, 100]);
        assert_eq!(distribution(&p, &state, 100), [100, 0]);
        state.record_failure(0, &Error::new(ErrorKind::UpstreamTimeout, "slow"));
        assert_eq!(distribution(&p, &state, 100), [0, 100]);
    }
}
