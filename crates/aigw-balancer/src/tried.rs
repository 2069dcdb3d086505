/// The targets one request has already tried, so failover goes elsewhere.
///
/// Routes rarely have more than 64 targets, so a bitmask covers those without allocating;
/// targets beyond 64 go to a short list, which only a long failover chain ever fills.
#[derive(Debug, Clone, Default)]
pub struct Tried {
    low: u64,
    high: Vec<usize>,
}

impl Tried {
    /// Marks `target` as tried.
    pub fn insert(&mut self, target: usize) {
        if target < 64 {
            self.low |= 1 << target;
        } else if !self.high.contains(&target) {
            self.high.push(target);
        }
    }

    /// Whether `target` was tried.
    pub fn contains(&self, target: usize) -> bool {
        if target < 64 {
            self.low & (1 << target) != 0
        } else {
            self.high.contains(&target)
        }
    }

    /// How many targets were tried.
    pub fn len(&self) -> usize {
        self.low.count_ones() as usize + self.high.len()
    }

    /// Whether nothing was tried yet.
    pub fn is_empty(&self) -> bool {
        self.low == 0 && self.high.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_targets_past_the_bitmask_once() {
        let mut tried = Tried::default();
        for target in [3, 70, 70, 3, 255] {
            tried.insert(target);
        }
        assert_eq!(tried.len(), 3);
        assert!(tried.contains(70) && tried.contains(255) && !tried.contains(71));
    }
}
