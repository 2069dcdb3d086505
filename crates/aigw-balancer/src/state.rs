//! The live state of a route's targets, shared by its layers and its pick strategy: health,
//! requests in flight, failures by kind, moving latency and time to first token, token
//! usage, and the route's failovers. Every field is an atomic, so
//! recording an outcome and picking a target never wait on each other.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aigw_core::{Error, ErrorKind, Usage};

use crate::{Outcome, TargetInfo};

/// How fast a latency estimate forgets: a sample's weight halves roughly every 7 s
/// (`τ · ln 2`), so a target that answered slowly once is probed again within seconds.
const LATENCY_DECAY_MS: f64 = 10_000.0;

/// Kong's passive health check (`max_fails`, `fail_timeout`): which failures count and
/// how long a target that had too many stays out.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// Failures that take a target out; 0 turns the check off.
    pub max_fails: u32,
    /// How long a tripped target stays out, and how long after its last failure a success
    /// must come to clear the count.
    pub fail_timeout: Duration,
    /// Upstream HTTP statuses that count as failures (those listed in
    /// `failover_criteria`); 403 and 404 never count.
    pub counted_statuses: Vec<u16>,
}

impl Default for HealthPolicy {
    /// Kong's defaults: off, with a 10 s `fail_timeout`.
    fn default() -> Self {
        HealthPolicy {
            max_fails: 0,
            fail_timeout: Duration::from_millis(10_000),
            counted_statuses: Vec::new(),
        }
    }
}

impl HealthPolicy {
    /// Whether this failure counts against the target: connection errors, timeouts and
    /// unreadable answers always do; an HTTP status only when listed, never 403 or 404.
    pub fn counts(&self, error: &Error) -> bool {
        match Outcome::of(error) {
            Some(Outcome::ConnectFailed | Outcome::Error | Outcome::Timeout) => true,
            Some(Outcome::InvalidHeader) => true,
            Some(Outcome::Status(403 | 404)) | None => false,
            Some(Outcome::Status(status)) => self.counted_statuses.contains(&status),
        }
    }
}

/// The shared state of one route's targets, indexed like its target list.
#[derive(Debug)]
pub struct RouteState {
    infos: Box<[TargetInfo]>,
    targets: Box<[TargetState]>,
    extras: Box<[TargetExtra]>,
    health: HealthPolicy,
    epoch: Instant,
    /// Attempts that followed a failed attempt of the same request.
    failovers: AtomicU64,
}

/// Every error kind, in the order of [`kind_index`]: the per-target failure counters are
/// a fixed array indexed by kind, so counting a failure allocates nothing.
const KINDS: [ErrorKind; 19] = [
    ErrorKind::InvalidRequest,
    ErrorKind::RouteNotFound,
    ErrorKind::Unauthorized,
    ErrorKind::Forbidden,
    ErrorKind::Terminated,
    ErrorKind::PayloadTooLarge,
    ErrorKind::MethodNotAllowed,
    ErrorKind::UnsupportedMediaType,
    ErrorKind::RequestTimeout,
    ErrorKind::UpstreamRejected,
    ErrorKind::Throttled,
    ErrorKind::UpstreamError,
    ErrorKind::UpstreamUnreachable,
    ErrorKind::UpstreamTimeout,
    ErrorKind::UpstreamProtocol,
    ErrorKind::NoHealthyTarget,
    ErrorKind::Overloaded,
    ErrorKind::Internal,
    ErrorKind::RateLimited,
];

/// `kind`'s slot in [`KINDS`]; exhaustive, so a new kind cannot go uncounted unnoticed.
const fn kind_index(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::InvalidRequest => 0,
        ErrorKind::RouteNotFound => 1,
        ErrorKind::Unauthorized => 2,
        ErrorKind::Forbidden => 3,
        ErrorKind::Terminated => 4,
        ErrorKind::PayloadTooLarge => 5,
        ErrorKind::MethodNotAllowed => 6,
        ErrorKind::UnsupportedMediaType => 7,
        ErrorKind::RequestTimeout => 8,
        ErrorKind::UpstreamRejected => 9,
        ErrorKind::Throttled => 10,
        ErrorKind::UpstreamError => 11,
        ErrorKind::UpstreamUnreachable => 12,
        ErrorKind::UpstreamTimeout => 13,
        ErrorKind::UpstreamProtocol => 14,
        ErrorKind::NoHealthyTarget => 15,
        ErrorKind::Overloaded => 16,
        ErrorKind::Internal => 17,
        ErrorKind::RateLimited => 18,
    }
}

/// One target's live counters, kept apart from its description and unpadded: a pick scans
/// every target's counters, and at 256 targets the whole table (80 bytes each) then stays
/// in L1 cache. Sharing cache lines between targets costs far less, since counters are
/// written a few times per request while picks read them all. The status-only counters
/// (failures by kind, time to first token) live in a second table, [`TargetExtra`], so
/// they do not push the pick's table out of cache.
#[derive(Debug, Default)]
pub(crate) struct TargetState {
    pub(crate) in_flight: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Failures counted by the health check since it last cleared.
    pub(crate) fails: AtomicU32,
    /// Milliseconds since the epoch of the last counted failure, plus one; 0 = never.
    last_failure: AtomicU64,
    pub(crate) e2e: Ewma,
    pub(crate) tpot: Ewma,
    pub(crate) prompt_tokens: AtomicU64,
    pub(crate) completion_tokens: AtomicU64,
    pub(crate) total_tokens: AtomicU64,
    /// Spend in billionths of the currency unit of `input_cost`/`output_cost`.
    pub(crate) cost_nanos: AtomicU64,
}

/// A target's counters that only the status endpoint reads.
#[derive(Debug, Default)]
struct TargetExtra {
    /// Failed attempts, by [`kind_index`].
    failures_by_kind: [AtomicU64; KINDS.len()],
    /// Time to the answer head, or to a stream's first chunk.
    ttft: Ewma,
}

/// A target's state at one moment, for the status endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetStatus {
    /// `provider/model`.
    pub label: String,
    /// Kong's `weight`.
    pub weight: u32,
    /// Whether the target takes traffic (not tripped by the health check).
    pub healthy: bool,
    /// How much longer a tripped target stays out.
    pub out_for: Option<Duration>,
    /// Failures the health check counts right now.
    pub fails: u32,
    /// Attempts running on the target now (streams until their end).
    pub in_flight: u32,
    /// Attempts sent to the target since start.
    pub requests: u64,
    /// Attempts that failed, whether or not the health check counted them.
    pub failures: u64,
    /// Moving average of whole-answer latency, once measured.
    pub latency_e2e: Option<Duration>,
    /// Moving average of time per output token, once measured.
    pub latency_tpot: Option<Duration>,
    /// Token usage since start.
    pub usage: Usage,
    /// Spend since start from `input_cost`/`output_cost` (per million tokens).
    pub cost: f64,
    /// Failed attempts by error kind since start, only kinds that occurred, in a fixed
    /// kind order.
    pub failures_by_kind: Vec<(ErrorKind, u64)>,
    /// Moving average of time to the answer head (or a stream's first chunk), once
    /// measured.
    pub ttft: Option<Duration>,
}

impl RouteState {
    /// Fresh state for these targets, checked for health per `health`.
    pub fn new(targets: Vec<TargetInfo>, health: HealthPolicy) -> Self {
        RouteState {
            targets: targets.iter().map(|_| TargetState::default()).collect(),
            extras: targets.iter().map(|_| TargetExtra::default()).collect(),
            infos: targets.into(),
            health,
            epoch: Instant::now(),
            failovers: AtomicU64::new(0),
        }
    }

    /// How many targets the route has.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the route has no targets.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The target's static description.
    pub fn info(&self, target: usize) -> Option<&TargetInfo> {
        self.infos.get(target)
    }

    /// The health policy in force.
    pub fn health(&self) -> &HealthPolicy {
        &self.health
    }

    pub(crate) fn target(&self, target: usize) -> Option<&TargetState> {
        self.targets.get(target)
    }

    pub(crate) fn targets(&self) -> &[TargetState] {
        &self.targets
    }

    /// Milliseconds since the route was built: the clock every timestamp here uses.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How much longer `target` stays out of service at `now_ms`; `None` if it is in.
    pub fn out_for(&self, target: usize, now_ms: u64) -> Option<Duration> {
        let state = self.targets.get(target)?;
        let max_fails = self.health.max_fails;
        if max_fails == 0 || state.fails.load(Ordering::Relaxed) < max_fails {
            return None;
        }
        let last = state.last_failure.load(Ordering::Relaxed).checked_sub(1)?;
        let back_at = last.saturating_add(duration_ms(self.health.fail_timeout));
        (now_ms < back_at).then(|| Duration::from_millis(back_at - now_ms))
    }

    /// Whether `target` takes traffic at `now_ms`.
    pub fn is_healthy(&self, target: usize, now_ms: u64) -> bool {
        self.out_for(target, now_ms).is_none()
    }

    /// Attempts running on `target` now (streams until their end); 0 for an unknown index.
    pub fn in_flight(&self, target: usize) -> u32 {
        self.targets
            .get(target)
            .map_or(0, |t| t.in_flight.load(Ordering::Relaxed))
    }

    /// Records that an attempt on `target` failed with `error`.
    pub fn record_failure(&self, target: usize, error: &Error) {
        let Some(state) = self.targets.get(target) else {
            return;
        };
        state.failures.fetch_add(1, Ordering::Relaxed);
        if let Some(extra) = self.extras.get(target) {
            extra.failures_by_kind[kind_index(error.kind())].fetch_add(1, Ordering::Relaxed);
        }
        if self.health.max_fails == 0 || !self.health.counts(error) {
            return;
        }
        let now = self.now_ms();
        state.last_failure.store(now + 1, Ordering::Relaxed);
        let fails = state.fails.fetch_add(1, Ordering::Relaxed) + 1;
        // At or past the limit: a target that came back after fail_timeout and failed again
        // is out again, and says so again.
        if fails >= self.health.max_fails {
            tracing::warn!(
                target_index = target,
                label = %self.infos[target].label,
                fails,
                fail_timeout_ms = duration_ms(self.health.fail_timeout),
                "target out of service after too many failures"
            );
        }
    }

    /// Records that an attempt on `target` succeeded: Kong (like nginx) clears the failure
    /// count only once `fail_timeout` has passed since the last failure, so failures are
    /// counted in total, not only in a row.
    pub fn record_success(&self, target: usize) {
        let Some(state) = self.targets.get(target) else {
            return;
        };
        if state.fails.load(Ordering::Relaxed) == 0 {
            return;
        }
        let last = state.last_failure.load(Ordering::Relaxed).saturating_sub(1);
        if self.now_ms().saturating_sub(last) >= duration_ms(self.health.fail_timeout) {
            state.fails.store(0, Ordering::Relaxed);
        }
    }

    /// Records a finished answer's latency and usage on `target`.
    pub fn record_answer(&self, target: usize, elapsed: Duration, usage: Option<Usage>) {
        let Some(state) = self.targets.get(target) else {
            return;
        };
        let now = self.now_ms();
        let nanos = elapsed.as_nanos() as f64;
        state.e2e.observe(nanos, now);
        let Some(usage) = usage else {
            // Without token counts there is no time per token to learn.
            return;
        };
        let per_token = nanos / f64::from(usage.completion_tokens.max(1));
        state.tpot.observe(per_token, now);
        state
            .prompt_tokens
            .fetch_add(usage.prompt_tokens.into(), Ordering::Relaxed);
        state
            .completion_tokens
            .fetch_add(usage.completion_tokens.into(), Ordering::Relaxed);
        state
            .total_tokens
            .fetch_add(usage.total_tokens.into(), Ordering::Relaxed);
        let info = &self.infos[target];
        let cost = f64::from(usage.prompt_tokens) * info.input_cost
            + f64::from(usage.completion_tokens) * info.output_cost;
        // Costs are per million tokens: tokens × cost is millionths, × 1000 billionths.
        state
            .cost_nanos
            .fetch_add((cost * 1_000.0).round() as u64, Ordering::Relaxed);
    }

    /// Records how long `target` took to the answer head, or to a stream's first chunk.
    pub fn record_first_token(&self, target: usize, elapsed: Duration) {
        if let Some(extra) = self.extras.get(target) {
            extra.ttft.observe(elapsed.as_nanos() as f64, self.now_ms());
        }
    }

    /// Records that a request tried another attempt after a failed one.
    pub fn record_failover(&self) {
        self.failovers.fetch_add(1, Ordering::Relaxed);
    }

    /// Attempts since start that followed a failed attempt of the same request.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    pub(crate) fn start_attempt(&self, target: usize) {
        if let Some(state) = self.targets.get(target) {
            state.requests.fetch_add(1, Ordering::Relaxed);
            state.in_flight.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn end_attempt(&self, target: usize) {
        if let Some(state) = self.targets.get(target) {
            state.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Every target's state now, in target order.
    pub fn snapshot(&self) -> Vec<TargetStatus> {
        let now = self.now_ms();
        self.targets
            .iter()
            .zip(self.infos.iter())
            .zip(self.extras.iter())
            .enumerate()
            .map(|(index, ((t, info), extra))| {
                let out_for = self.out_for(index, now);
                TargetStatus {
                    label: info.label.clone(),
                    weight: info.weight,
                    healthy: out_for.is_none(),
                    out_for,
                    fails: t.fails.load(Ordering::Relaxed),
                    in_flight: t.in_flight.load(Ordering::Relaxed),
                    requests: t.requests.load(Ordering::Relaxed),
                    failures: t.failures.load(Ordering::Relaxed),
                    latency_e2e: t.e2e.estimate(now).map(nanos_duration),
                    latency_tpot: t.tpot.estimate(now).map(nanos_duration),
                    usage: Usage {
                        prompt_tokens: saturate(t.prompt_tokens.load(Ordering::Relaxed)),
                        completion_tokens: saturate(t.completion_tokens.load(Ordering::Relaxed)),
                        total_tokens: saturate(t.total_tokens.load(Ordering::Relaxed)),
                        ..Usage::default()
                    },
                    cost: t.cost_nanos.load(Ordering::Relaxed) as f64 / 1e9,
                    failures_by_kind: KINDS
                        .iter()
                        .zip(extra.failures_by_kind.iter())
                        .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
                        .filter(|(_, count)| *count > 0)
                        .collect(),
                    ttft: extra.ttft.estimate(now).map(nanos_duration),
                }
            })
            .collect()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn nanos_duration(nanos: f64) -> Duration {
    Duration::from_nanos(nanos as u64)
}

fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A peak-sensitive, time-decaying moving average (Finagle's and tower's peak-EWMA): a
/// sample above the estimate replaces it at once, a lower one blends in by how long ago the
/// last sample was, and between samples the estimate decays toward zero, so a target that
/// stopped getting traffic after a slow answer is eventually probed again.
///
/// The estimate (nanoseconds, as `f32`) and the time of the last sample (milliseconds since
/// the route's epoch, as `u32`, wrapping after 49 days) share one atomic word, so an update
/// is one compare-and-swap and a read is one load.
#[derive(Debug, Default)]
pub(crate) struct Ewma(AtomicU64);

impl Ewma {
    fn pack(estimate: f64, at_ms: u64) -> u64 {
        // A zero word means "never measured", so a measured estimate is at least 1 ns.
        let estimate = (estimate.max(1.0) as f32).to_bits();
        (u64::from(estimate) << 32) | (at_ms & 0xffff_ffff)
    }

    fn unpack(word: u64, now_ms: u64) -> (f64, f64) {
        let estimate = f64::from(f32::from_bits((word >> 32) as u32));
        let elapsed = (now_ms as u32).wrapping_sub(word as u32);
        (estimate, f64::from(elapsed))
    }

    /// Folds in one sample.
    pub(crate) fn observe(&self, sample: f64, now_ms: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                if word == 0 {
                    return Some(Self::pack(sample, now_ms));
                }
                let (estimate, elapsed) = Self::unpack(word, now_ms);
                let next = if sample > estimate {
                    sample
                } else {
                    let keep = 1.0 / decay_divisor(elapsed);
                    estimate * keep + sample * (1.0 - keep)
                };
                Some(Self::pack(next, now_ms))
            });
    }

    /// The estimate at `now_ms`, decayed since the last sample; `None` if never measured.
    pub(crate) fn estimate(&self, now_ms: u64) -> Option<f64> {
        self.estimate_ratio(now_ms).map(|(num, den)| num / den)
    }

    /// The decayed estimate as `(last estimate, divisor)`, for ranking without dividing.
    pub(crate) fn estimate_ratio(&self, now_ms: u64) -> Option<(f64, f64)> {
        let word = self.0.load(Ordering::Relaxed);
        if word == 0 {
            return None;
        }
        let (estimate, elapsed) = Self::unpack(word, now_ms);
        Some((estimate, decay_divisor(elapsed)))
    }
}

/// `exp(elapsed / τ)`, the divisor that decays an estimate, approximated by its
/// third-order Taylor series: a pick evaluates this for every target, and `exp` would
/// dominate its cost at 256 targets. Monotone, 1 at zero and within 2 % up to one τ; that
/// is plenty for ranking.
fn decay_divisor(elapsed_ms: f64) -> f64 {
    let x = elapsed_ms * (1.0 / LATENCY_DECAY_MS);
    1.0 + x * (1.0 + x * (0.5 + x * (1.0 / 6.0)))
}

#[cfg(test)]
mod tests {
    use aigw_core::ErrorKind;

    use super::*;

    fn state(max_fails: u32, fail_timeout_ms: u64) -> RouteState {
        RouteState::new(
            vec![TargetInfo::new("t/a", 1), TargetInfo::new("t/b", 1)],
            HealthPolicy {
                max_fails,
                fail_timeout: Duration::from_millis(fail_timeout_ms),
                counted_statuses: vec![500],
            },
        )
    }

    fn refused() -> Error {
        Error::new(ErrorKind::UpstreamUnreachable, "refused")
    }

    #[test]
    fn trips_after_max_fails_in_total_not_in_a_row() {
        let s = state(3, 60_000);
        s.record_failure(0, &refused());
        s.record_success(0);
        s.record_failure(0, &refused());
        s.record_success(0);
        assert!(s.is_healthy(0, s.now_ms()));
        s.record_failure(0, &refused());
        let out = s.out_for(0, s.now_ms()).expect("tripped");
        assert!(out > Duration::from_secs(59), "{out:?}");
        assert!(s.is_healthy(1, s.now_ms()));
        assert!(
            s.is_healthy(0, s.now_ms() + 60_001),
            "back after fail_timeout"
        );
    }

    #[test]
    fn only_listed_statuses_count_and_never_403_or_404() {
        let s = state(1, 60_000);
        let status = |code| Error::new(ErrorKind::UpstreamError, "x").with_upstream_status(code);
        s.record_failure(0, &status(503));
        s.record_failure(0, &status(404));
        s.record_failure(0, &Error::invalid_request("client's fault"));
        assert!(s.is_healthy(0, s.now_ms()));
        s.record_failure(0, &status(500));
        assert!(!s.is_healthy(0, s.now_ms()));
    }

    #[test]
    fn off_when_max_fails_is_zero() {
        let s = state(0, 60_000);
        for _ in 0..100 {
            s.record_failure(0, &refused());
        }
        assert!(s.is_healthy(0, s.now_ms()));
        assert_eq!(s.snapshot()[0].failures, 100);
    }

    #[test]
    fn success_after_fail_timeout_clears_the_count() {
        let s = state(2, 0);
        s.record_failure(0, &refused());
        s.record_success(0);
        s.record_failure(0, &refused());
        assert_eq!(
            s.snapshot()[0].fails,
            1,
            "a zero fail_timeout clears at once"
        );
    }

    #[test]
    fn ewma_takes_peaks_at_once_and_forgets_them_over_time() {
        let e = Ewma::default();
        assert_eq!(e.estimate(0), None);
        e.observe(10.0, 0);
        e.observe(1_000.0, 0);
        assert_eq!(e.estimate(0), Some(1_000.0));
        e.observe(10.0, 5_000);
        let blended = e.estimate(5_000).expect("measured");
        assert!(10.0 < blended && blended < 1_000.0, "{blended}");
        let later = e.estimate(60_000).expect("measured");
        assert!(later < blended / 10.0, "idle estimates decay: {later}");
    }

    #[test]
    fn failures_are_counted_by_kind_and_every_kind_has_its_own_slot() {
        for (index, kind) in KINDS.iter().enumerate() {
            assert_eq!(kind_index(*kind), index, "{kind}");
        }
        let s = state(0, 60_000);
        s.record_failure(0, &refused());
        s.record_failure(0, &refused());
        s.record_failure(0, &Error::new(ErrorKind::Throttled, "slow down"));
        s.record_failure(1, &Error::new(ErrorKind::UpstreamTimeout, "late"));
        let snapshot = s.snapshot();
        assert_eq!(
            snapshot[0].failures_by_kind,
            vec![
                (ErrorKind::Throttled, 1),
                (ErrorKind::UpstreamUnreachable, 2)
            ]
        );
        assert_eq!(
            snapshot[1].failures_by_kind,
            vec![(ErrorKind::UpstreamTimeout, 1)]
        );
    }

    #[test]
    fn time_to_first_token_is_unmeasured_until_recorded() {
        let s = state(0, 60_000);
        assert_eq!(s.snapshot()[0].ttft, None);
        s.record_first_token(0, Duration::from_millis(40));
        let ttft = s.snapshot()[0].ttft.expect("measured");
        // The estimate decays a little between recording and reading.
        assert!(
            ttft > Duration::from_millis(39) && ttft <= Duration::from_millis(40),
            "{ttft:?}"
        );
        assert_eq!(s.snapshot()[1].ttft, None);
    }

    #[test]
    fn usage_and_cost_accumulate() {
        let mut info = TargetInfo::new("t/a", 1);
        info.input_cost = 3.0;
        info.output_cost = 15.0;
        let s = RouteState::new(vec![info], HealthPolicy::default());
        let usage = Usage {
            prompt_tokens: 1_000,
            completion_tokens: 100,
            total_tokens: 1_100,
            ..Usage::default()
        };
        s.record_answer(0, Duration::from_millis(200), Some(usage));
        s.record_answer(0, Duration::from_millis(200), Some(usage));
        let status = &s.snapshot()[0];
        assert_eq!(status.usage.total_tokens, 2_200);
        // 2 × (1000 × 3 + 100 × 15) / 1e6
        assert!((status.cost - 0.009).abs() < 1e-9, "{}", status.cost);
        assert_eq!(status.latency_tpot, Some(Duration::from_millis(2)));
    }
}
