//! One try of a request on one target: the unit the layers below a balancer pass down, and
//! what telemetry observes, so both can speak of it without depending on each other.

use crate::ChatRequest;

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
