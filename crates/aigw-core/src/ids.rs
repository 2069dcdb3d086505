//! Answer ids and timestamps, the same for every driver.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh `chatcmpl-…` id, unique within the process and unlikely to repeat across runs.
pub fn completion_id() -> String {
    static RUN: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // The run prefix separates restarts; the counter separates answers within a run.
    let run = *RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(std::process::id()) << 32)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("chatcmpl-{run:016x}{n:08x}")
}

/// Seconds since the Unix epoch, for an answer's `created`.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_openai_shaped() {
        let (a, b) = (completion_id(), completion_id());
        assert_ne!(a, b);
        assert!(a.starts_with("chatcmpl-"));
    }
}
