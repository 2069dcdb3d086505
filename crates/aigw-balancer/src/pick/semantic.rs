use super::{Candidates, Pick, RoundRobin};

/// Kong's `semantic` algorithm, the pick half: the route's stack embeds the prompt before
/// the balancer and names the nearest target (else the `CATCHALL` one) in the request's
/// pick key, as a target index. That target is picked while it is usable; once it is
/// tried or out of rotation, and for requests whose prompt named none, the others are
/// picked by weighted round-robin, so failover works as for every algorithm.
///
/// ```
/// use aigw_balancer::pick::{Candidates, Pick, Semantic};
/// use aigw_balancer::{HealthPolicy, RouteState, TargetInfo, Tried};
///
/// let state = RouteState::new(
///     vec![TargetInfo::new("bedrock/a", 100), TargetInfo::new("bedrock/b", 100)],
///     HealthPolicy::default(),
/// );
/// let semantic = Semantic::new(&[100, 100]);
/// let mut tried = Tried::default();
/// assert_eq!(semantic.pick(&Candidates::new(&state, &tried, Some("1"))), Some(1));
/// tried.insert(1);
/// assert_eq!(semantic.pick(&Candidates::new(&state, &tried, Some("1"))), Some(0));
/// ```
#[derive(Debug)]
pub struct Semantic {
    rest: RoundRobin,
}

impl Semantic {
    /// Over targets with these weights (index = target), for the fallback.
    pub fn new(weights: &[u32]) -> Self {
        Semantic {
            rest: RoundRobin::new(weights),
        }
    }
}

impl Pick for Semantic {
    fn pick(&self, candidates: &Candidates<'_>) -> Option<usize> {
        let chosen = candidates
            .key()
            .and_then(|key| key.parse::<usize>().ok())
            .filter(|target| *target < candidates.len() && candidates.is_usable(*target));
        chosen.or_else(|| self.rest.pick(candidates))
    }
}
