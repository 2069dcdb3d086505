use aigw_core::ChatRequest;

/// One try of a request on one target: what flows below the balancer.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Index of the chosen target in the route's target list.
    pub target: usize,
    /// 1 for the first try, 2 for the first failover, and so on.
    pub number: u32,
    /// The client's request, shared between attempts.
    pub request: ChatRequest,
}

/// The targets one request has already tried, so failover goes elsewhere.
///
/// Routes rarely have more than 64 targets, so a bitmask covers them without allocating;
/// beyond that, targets past 64 are never marked and may be retried.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tried(u64);

impl Tried {
    /// Marks `target` as tried.
    pub fn insert(&mut self, target: usize) {
        if target < 64 {
            self.0 |= 1 << target;
        }
    }

    /// Whether `target` was tried.
    pub fn contains(&self, target: usize) -> bool {
        target < 64 && self.0 & (1 << target) != 0
    }

    /// How many targets were tried.
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether nothing was tried yet.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}
