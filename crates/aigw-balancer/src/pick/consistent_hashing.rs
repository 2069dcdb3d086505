use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, Pick};
use crate::TargetInfo;

/// Ring points per 100 of `weight`: enough that each target's share of keys stays within a
/// few percent of its weight's share.
const POINTS_PER_100_WEIGHT: u64 = 160;

/// Upper bound on one target's ring points, so a weight of 65535 does not build a ring of
/// hundreds of thousands of points.
const MAX_POINTS: u64 = 4_096;

/// `consistent-hashing`: requests with the same key (the `hash_on_header` value) go to the
/// same target while it is usable.
///
/// Each target owns points on a 64-bit hash ring, placed by hashing its label (not its
/// position in the list), more points for more weight. The ring is cut into Kong's `slots`
/// equal slots, each resolved at start to the first point at or after it, so a pick is one
/// hash and one table lookup. Adding a target moves only the keys its points claim;
/// removing one moves only its own keys. When the key's target is tried or out, the pick
/// walks on clockwise to the next usable target, so those keys come back once it recovers.
/// Requests without a key are spread round-robin.
#[derive(Debug)]
pub struct ConsistentHashing {
    /// Ring points: (position, target), sorted by position.
    points: Box<[(u64, u32)]>,
    /// Per slot, the index in `points` of the first point at or after the slot's start.
    slots: Box<[u32]>,
    next: AtomicUsize,
}

impl ConsistentHashing {
    /// A ring of `slots` slots over these targets (index = target).
    pub fn new(targets: &[TargetInfo], slots: u32) -> Self {
        let mut seen: HashMap<&str, u32> = HashMap::new();
        let mut points = Vec::new();
        for (target, info) in targets.iter().enumerate() {
            // Two targets with one label (the same model in two regions, say) still need
            // distinct points; the n-th duplicate is told apart by n.
            let duplicate = seen.entry(info.label.as_str()).or_insert(0);
            let count = (u64::from(info.weight) * POINTS_PER_100_WEIGHT / 100).clamp(1, MAX_POINTS);
            for point in 0..count {
                let position = hash(&[
                    info.label.as_bytes(),
                    &duplicate.to_le_bytes(),
                    &point.to_le_bytes(),
                ]);
                points.push((position, target as u32));
            }
            *duplicate += 1;
        }
        points.sort_unstable();
        let slot_count = u64::from(slots.max(1));
        let mut table = Vec::with_capacity(slot_count as usize);
        let mut index = 0usize;
        for slot in 0..slot_count {
            let start = slot_start(slot, slot_count);
            while index < points.len() && points[index].0 < start {
                index += 1;
            }
            // Past the last point the ring wraps to the first.
            table.push(if index < points.len() {
                index as u32
            } else {
                0
            });
        }
        ConsistentHashing {
            points: points.into(),
            slots: table.into(),
            next: AtomicUsize::new(0),
        }
    }

    fn first_point(&self, key: &str) -> usize {
        let h = hash(&[key.as_bytes()]);
        let slot = ((u128::from(h) * self.slots.len() as u128) >> 64) as usize;
        self.slots.get(slot).map_or(0, |i| *i as usize)
    }
}

impl Pick for ConsistentHashing {
    fn pick(&self, candidates: &Candidates<'_>) -> Option<usize> {
        let Some(key) = candidates.key() else {
            let len = candidates.len();
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            return (0..len)
                .map(|offset| (start + offset) % len)
                .find(|t| candidates.is_usable(*t));
        };
        let len = self.points.len();
        let first = self.first_point(key);
        (0..len)
            .map(|offset| self.points[(first + offset) % len].1 as usize)
            .find(|t| candidates.is_usable(*t))
    }
}

/// The ring position where `slot` of `count` begins: `ceil(slot · 2⁶⁴ / count)`.
fn slot_start(slot: u64, count: u64) -> u64 {
    let start = (u128::from(slot) << 64).div_ceil(u128::from(count));
    u64::try_from(start).unwrap_or(u64::MAX)
}

/// FNV-1a over the parts, then a SplitMix64 finisher to spread FNV's weak low bits across
/// the ring. Stable across builds and platforms, unlike std's `DefaultHasher`, so a key
/// keeps its target across restarts and upgrades.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            h ^= u64::from(*byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aigw_core::{Error, ErrorKind};

    use super::*;
    use crate::{HealthPolicy, RouteState, Tried};

    fn infos(labels: &[&str]) -> Vec<TargetInfo> {
        labels.iter().map(|l| TargetInfo::new(*l, 100)).collect()
    }

    fn keys() -> Vec<String> {
        (0..10_000).map(|i| format!("request-{i}")).collect()
    }

    /// The label each key lands on.
    fn owners(labels: &[&str], keys: &[String]) -> Vec<String> {
        let targets = infos(labels);
        let ring = ConsistentHashing::new(&targets, 10_000);
        let state = RouteState::new(targets, HealthPolicy::default());
        let tried = Tried::default();
        keys.iter()
            .map(|k| {
                let t = ring
                    .pick(&Candidates::new(&state, &tried, Some(k)))
                    .expect("a target");
                labels[t].to_owned()
            })
            .collect()
    }

    #[test]
    fn adding_a_target_keeps_every_other_key_in_place() {
        let keys = keys();
        let before = owners(&["b/a", "b/b", "b/c"], &keys);
        // The new target goes first, shifting every index: placement must not care.
        let after = owners(&["b/new", "b/a", "b/b", "b/c"], &keys);
        let stayed = before.iter().zip(&after).filter(|(b, a)| b == a).count();
        let to_new = after.iter().filter(|a| *a == "b/new").count();
        assert_eq!(
            stayed + to_new,
            keys.len(),
            "keys move only to the new target"
        );
        assert!(stayed * 100 >= (keys.len() - to_new) * 99);
        assert!(
            (1_800..=3_200).contains(&to_new),
            "new target's share {to_new}"
        );
    }

    #[test]
    fn removing_a_target_moves_only_its_keys() {
        let keys = keys();
        let before = owners(&["b/a", "b/b", "b/c", "b/d"], &keys);
        let after = owners(&["b/a", "b/c", "b/d"], &keys);
        for (b, a) in before.iter().zip(&after) {
            if b != "b/b" {
                assert_eq!(b, a);
            }
        }
    }

    #[test]
    fn every_target_gets_a_fair_share_of_keys() {
        let labels = ["b/a", "b/b", "b/c", "b/d"];
        let owners = owners(&labels, &keys());
        for label in labels {
            let share = owners.iter().filter(|o| *o == label).count();
            assert!((2_000..=3_000).contains(&share), "{label}: {share}");
        }
    }

    #[test]
    fn a_key_sticks_leaves_a_tripped_target_and_comes_back() {
        let targets = infos(&["b/a", "b/b", "b/c"]);
        let ring = ConsistentHashing::new(&targets, 10_000);
        let health = HealthPolicy {
            max_fails: 1,
            fail_timeout: Duration::from_millis(50),
            counted_statuses: Vec::new(),
        };
        let state = RouteState::new(targets, health);
        let tried = Tried::default();
        let pick = || ring.pick(&Candidates::new(&state, &tried, Some("user-42")));
        let home = pick().expect("a target");
        assert!((0..100).all(|_| pick() == Some(home)));
        state.record_failure(home, &Error::new(ErrorKind::UpstreamTimeout, "slow"));
        let away = pick().expect("another target");
        assert_ne!(away, home);
        assert!(
            (0..100).all(|_| pick() == Some(away)),
            "the detour is sticky too"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(pick(), Some(home));
    }

    #[test]
    fn keyless_requests_are_spread() {
        let targets = infos(&["b/a", "b/b"]);
        let ring = ConsistentHashing::new(&targets, 100);
        let state = RouteState::new(targets, HealthPolicy::default());
        let counts = crate::pick::testing::distribution(&ring, &state, 1_000);
        assert_eq!(counts, [500, 500]);
    }
}
