//! Pick strategies: each chooses a target index for the next attempt.

mod round_robin;

pub use round_robin::RoundRobin;

use crate::Tried;

/// Chooses the target for an attempt. Implementations are shared by every request of a
/// route, so they keep their state in atomics rather than behind a lock.
///
/// ```
/// use aigw_balancer::{pick::{Pick, RoundRobin}, Tried};
/// let rr = RoundRobin::new(&[1, 1]);
/// assert_ne!(rr.pick(&Tried::default()), rr.pick(&Tried::default()));
/// ```
pub trait Pick: Send + Sync + 'static {
    /// The target for the next attempt, preferring ones not in `tried`; `None` only when
    /// there are no targets at all.
    fn pick(&self, tried: &Tried) -> Option<usize>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_is_object_safe() {
        fn _assert(_: &dyn Pick) {}
    }
}
