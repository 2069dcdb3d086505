//! Counters in this process: `strategy: local`, and the fallback of `strategy: redis` while
//! Redis is unreachable.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::CounterKey;
use super::window::{Counts, index};

/// Charges between sweeps of windows that ended.
const SWEEP_EVERY: u64 = 1024;

/// One counter's two latest windows.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    index: u64,
    current: f64,
    previous: f64,
}

impl Slot {
    /// The counts as seen from window `now_index`.
    fn at(self, now_index: u64) -> Counts {
        match now_index.checked_sub(self.index) {
            Some(0) => Counts {
                current: self.current,
                previous: self.previous,
            },
            Some(1) => Counts {
                current: 0.0,
                previous: self.current,
            },
            _ => Counts::default(),
        }
    }
}

/// Counters by name. One lock, held for a few map operations and never across an await.
#[derive(Debug, Default)]
pub(crate) struct LocalCounters {
    slots: Mutex<HashMap<String, Slot>>,
    charges: AtomicU64,
}

impl LocalCounters {
    /// The counts of `keys` at `now`.
    pub(crate) fn read(&self, keys: &[CounterKey], now: f64) -> Vec<Counts> {
        let slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.iter()
            .map(|key| {
                slots
                    .get(&key.name)
                    .map_or_else(Counts::default, |slot| slot.at(index(now, key.window)))
            })
            .collect()
    }

    /// Adds `amount` to each of `keys` at `now`.
    pub(crate) fn add(&self, keys: &[CounterKey], amount: f64, now: f64) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in keys {
            let now_index = index(now, key.window);
            let slot = slots.entry(key.name.clone()).or_default();
            let counts = slot.at(now_index);
            *slot = Slot {
                index: now_index,
                current: counts.current + amount,
                previous: counts.previous,
            };
        }
        // Counters of identities gone quiet would pile up; drop those whose windows ended.
        if self.charges.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let now_secs = now as u64;
            slots.retain(|name, slot| {
                let window = name
                    .rsplit('|')
                    .next()
                    .and_then(|w| w.parse::<u64>().ok())
                    .unwrap_or(1);
                now_secs / window.max(1) <= slot.index + 1
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_move_to_previous_then_go() {
        let counters = LocalCounters::default();
        let key = CounterKey {
            name: "ns|0|c|p|60".into(),
            window: 60,
        };
        counters.add(std::slice::from_ref(&key), 10.0, 600.0);
        counters.add(std::slice::from_ref(&key), 5.0, 659.0);
        assert_eq!(
            counters.read(std::slice::from_ref(&key), 659.0)[0],
            Counts {
                current: 15.0,
                previous: 0.0
            }
        );
        assert_eq!(
            counters.read(std::slice::from_ref(&key), 660.0)[0],
            Counts {
                current: 0.0,
                previous: 15.0
            }
        );
        assert_eq!(
            counters.read(std::slice::from_ref(&key), 720.0)[0],
            Counts::default()
        );
    }
}
