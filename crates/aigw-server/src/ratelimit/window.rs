//! Window arithmetic shared by every store: which window a moment falls in, and what a
//! window's counts leave of a limit, fixed or sliding (Kong's weighting of the previous
//! window by how much of it still overlaps).

use aigw_config::WindowType;

/// A counter's amounts in the window `now` falls in and the one before it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Counts {
    pub(crate) current: f64,
    pub(crate) previous: f64,
}

/// What a window's counts leave of a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WindowUse {
    /// What is left, never below zero.
    pub(crate) remaining: f64,
    /// Whether the window is spent: nothing is left.
    pub(crate) spent: bool,
    /// Whole seconds until the current window ends.
    pub(crate) reset: u64,
    /// Whole seconds until a request would be let in again (0 when it would be now).
    pub(crate) retry_after: u64,
}

/// The index of the `window`-second window `now` (Unix seconds) falls in.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // now is positive and far below 2^53
pub(crate) fn index(now: f64, window: u64) -> u64 {
    (now as u64) / window.max(1)
}

/// What `counts` leave of `limit` at `now`.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub(crate) fn usage(
    kind: WindowType,
    counts: &Counts,
    window: u64,
    limit: f64,
    now: f64,
) -> WindowUse {
    let size = window.max(1) as f64;
    let start = index(now, window) as f64 * size;
    let elapsed = (now - start).clamp(0.0, size);
    let reset = (size - elapsed).ceil() as u64;
    let used = match kind {
        WindowType::Fixed => counts.current,
        WindowType::Sliding => counts.current + counts.previous * (size - elapsed) / size,
    };
    let remaining = (limit - used).max(0.0);
    let spent = remaining <= 0.0;
    let retry_after = if !spent {
        0
    } else {
        match kind {
            WindowType::Fixed => reset,
            // The previous window's weight falls as time passes: wait until it has fallen
            // enough, or, when the current window alone spends the limit, until the current
            // window, become the previous one, weighs little enough.
            WindowType::Sliding if counts.current < limit && counts.previous > 0.0 => {
                let wait = (used - limit) * size / counts.previous;
                (wait.ceil() as u64).clamp(1, reset)
            }
            WindowType::Sliding => {
                let later = size * (1.0 - limit / counts.current.max(limit));
                reset + later.ceil() as u64
            }
        }
    };
    WindowUse {
        remaining,
        spent,
        reset,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_windows_reset_at_the_boundary() {
        let counts = Counts {
            current: 100.0,
            previous: 500.0,
        };
        let at = usage(WindowType::Fixed, &counts, 60, 100.0, 6_000.0 + 15.0);
        assert!(at.spent);
        assert_eq!(at.remaining, 0.0);
        assert_eq!((at.reset, at.retry_after), (45, 45));
        let fresh = usage(WindowType::Fixed, &Counts::default(), 60, 100.0, 6_015.0);
        assert_eq!(
            (fresh.remaining, fresh.spent, fresh.retry_after),
            (100.0, false, 0)
        );
    }

    #[test]
    fn sliding_windows_weigh_the_previous_one_by_its_overlap() {
        // A quarter into the window, three quarters of the previous one still count.
        let counts = Counts {
            current: 20.0,
            previous: 80.0,
        };
        let at = usage(WindowType::Sliding, &counts, 60, 100.0, 6_015.0);
        assert_eq!(at.remaining, 20.0);
        assert!(!at.spent);
        let spent = usage(
            WindowType::Sliding,
            &Counts {
                current: 50.0,
                previous: 80.0,
            },
            60,
            100.0,
            6_015.0,
        );
        assert!(spent.spent);
        // 50 + 80 × (45 − t)/60 < 100 once t > 7.5.
        assert_eq!(spent.retry_after, 8);
        let alone = usage(
            WindowType::Sliding,
            &Counts {
                current: 200.0,
                previous: 0.0,
            },
            60,
            100.0,
            6_015.0,
        );
        assert_eq!(alone.retry_after, 45 + 30);
    }
}
