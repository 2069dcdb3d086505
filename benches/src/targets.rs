//! The targets aigw's overhead is judged by, checked against one run: printed after the
//! table and kept in the JSON report, so a run says by itself what it met.

use serde_json::{Value, json};

use crate::floor;
use crate::load::{Load, Sample};
use crate::paths::Kind;

/// The rate the latency targets are set at.
const TARGET_RATE: u32 = 2_000;
const ADDED_P50_LIMIT_US: i64 = 100;
const ADDED_P99_LIMIT_US: i64 = 1_000;
const ADDED_TTFT_P99_LIMIT_US: i64 = 1_000;
const MIN_THROUGHPUT_SHARE: f64 = 0.60;
const RSS_AT_START_LIMIT_KIB: u64 = 20 * 1024;
const RSS_IDLE_LIMIT_KIB: u64 = 50 * 1024;
/// Against the fastest peer of the same run (issue 22).
const PEER_THROUGHPUT_MIN: f64 = 1.5;
const PEER_CPU_MAX: f64 = 0.6;
const PEER_ADDED_LATENCY_MAX: f64 = 0.5;
/// aigw's added p50 against what the bare tokio/hyper hop adds in the same run.
const BARE_ADDED_P50_MAX: f64 = 2.0;

/// One target on one path, as this run measured it.
pub struct Check {
    pub path: &'static str,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// The gateway's memory, as the run read it.
pub struct Memory {
    pub at_start_kib: u64,
    pub with_idle_kib: u64,
    pub idle_connections: usize,
}

/// Every target this run has the phases for; a target whose phase did not run (say
/// `--rates 500`) is left out rather than reported as met.
pub fn check(rows: &[Sample], memory: &Memory) -> Vec<Check> {
    let mut checks = Vec::new();
    let added_on = |kind: Kind, stream: bool, load: Load, quantile: f64| {
        let row = rows
            .iter()
            .find(|r| r.kind == kind && r.stream == stream && r.load == load)?;
        let direct = floor(rows, row)?;
        Some(row.percentile_us(quantile) as i64 - direct.percentile_us(quantile) as i64)
    };
    let at_rate = Load::Rate(TARGET_RATE);
    // What one hop through tokio and hyper alone added in the same run: the part of the
    // gateway's number no gateway on this stack and machine can go below.
    let with_floor = |us: i64, quantile: f64| match added_on(Kind::Bare, false, at_rate, quantile) {
        Some(bare) => format!("{us:+} µs (bare hop {bare:+} µs)"),
        None => format!("{us:+} µs"),
    };
    for kind in [Kind::Http, Kind::Grpc] {
        let path = kind.as_str();
        let added =
            |stream: bool, load: Load, quantile: f64| added_on(kind, stream, load, quantile);
        for (quantile, limit) in [(50.0, ADDED_P50_LIMIT_US), (99.0, ADDED_P99_LIMIT_US)] {
            if let Some(us) = added(false, at_rate, quantile) {
                checks.push(Check {
                    path,
                    target: format!("added p{quantile} at {TARGET_RATE} req/s ≤ {limit} µs"),
                    measured: with_floor(us, quantile),
                    met: us <= limit,
                });
            }
        }
        let closed = rows
            .iter()
            .find(|r| r.kind == kind && !r.stream && matches!(r.load, Load::Closed(_)));
        if let Some((row, direct)) = closed.and_then(|row| Some((row, floor(rows, row)?))) {
            let share = row.achieved_rps() / direct.achieved_rps().max(f64::EPSILON);
            checks.push(Check {
                path,
                target: format!(
                    "throughput at {} ≥ {:.0} % of direct",
                    row.load,
                    MIN_THROUGHPUT_SHARE * 100.0
                ),
                measured: format!("{:.0} %", share * 100.0),
                met: share >= MIN_THROUGHPUT_SHARE,
            });
        }
        let streamed = rows.iter().find(|r| r.kind == kind && r.stream);
        if let Some(row) = streamed {
            if let Some(us) = added(true, row.load, 99.0) {
                checks.push(Check {
                    path,
                    target: format!(
                        "added time to first token p99 at {} ≤ {ADDED_TTFT_P99_LIMIT_US} µs",
                        row.load
                    ),
                    measured: format!("{us:+} µs"),
                    met: us <= ADDED_TTFT_P99_LIMIT_US,
                });
            }
        }
    }
    checks.extend(against_peers(rows));
    checks.push(Check {
        path: "gateway",
        target: format!("RSS at start ≤ {} MiB", RSS_AT_START_LIMIT_KIB / 1024),
        measured: format!("{:.1} MiB", memory.at_start_kib as f64 / 1024.0),
        met: memory.at_start_kib <= RSS_AT_START_LIMIT_KIB,
    });
    checks.push(Check {
        path: "gateway",
        target: format!(
            "RSS with {} idle connections ≤ {} MiB",
            memory.idle_connections,
            RSS_IDLE_LIMIT_KIB / 1024
        ),
        measured: format!("{:.1} MiB", memory.with_idle_kib as f64 / 1024.0),
        met: memory.with_idle_kib <= RSS_IDLE_LIMIT_KIB,
    });
    checks
}

/// The targets against the fastest peer measured in this run (the one with the most req/s
/// in the closed loop) and against the bare hop; none when no peer ran.
fn against_peers(rows: &[Sample]) -> Vec<Check> {
    let mut checks = Vec::new();
    let added = |row: &Sample, quantile: f64| {
        let direct = floor(rows, row)?;
        Some(row.percentile_us(quantile) as i64 - direct.percentile_us(quantile) as i64)
    };
    let find = |kind: Kind, stream: bool, closed: bool, load: Option<Load>| {
        rows.iter().find(|r| {
            r.kind == kind
                && r.stream == stream
                && matches!(r.load, Load::Closed(_)) == closed
                && load.is_none_or(|load| r.load == load)
        })
    };
    let fastest = rows
        .iter()
        .filter(|r| r.kind.is_peer() && !r.stream && matches!(r.load, Load::Closed(_)))
        .max_by(|a, b| a.achieved_rps().total_cmp(&b.achieved_rps()));
    let at_rate = Some(Load::Rate(TARGET_RATE));
    for kind in [Kind::Http, Kind::Grpc] {
        let path = kind.as_str();
        if let (Some(ours), Some(bare)) = (
            find(kind, false, false, at_rate).and_then(|r| added(r, 50.0)),
            find(Kind::Bare, false, false, at_rate).and_then(|r| added(r, 50.0)),
        ) {
            checks.push(Check {
                path,
                target: format!(
                    "added p50 at {TARGET_RATE} req/s ≤ {BARE_ADDED_P50_MAX}× the bare hop's"
                ),
                measured: format!("{ours:+} µs against {bare:+} µs"),
                met: bare > 0 && ours as f64 <= BARE_ADDED_P50_MAX * bare as f64,
            });
        }
        let Some(peer) = fastest else { continue };
        let name = peer.kind.as_str();
        if let Some(ours) = find(kind, false, true, Some(peer.load)) {
            let ratio = ours.achieved_rps() / peer.achieved_rps().max(f64::EPSILON);
            checks.push(Check {
                path,
                target: format!("req/s at {} ≥ {PEER_THROUGHPUT_MIN}× {name}'s", peer.load),
                measured: format!("{ratio:.2}×"),
                met: ratio >= PEER_THROUGHPUT_MIN,
            });
            let ratio = ours.gateway_cpu_per_1k() / peer.gateway_cpu_per_1k().max(f64::EPSILON);
            checks.push(Check {
                path,
                target: format!(
                    "CPU per request at {} ≤ {PEER_CPU_MAX}× {name}'s",
                    peer.load
                ),
                measured: format!("{ratio:.2}×"),
                met: ratio <= PEER_CPU_MAX,
            });
        }
        let (Some(ours), Some(theirs)) = (
            find(kind, false, false, at_rate),
            find(peer.kind, false, false, at_rate),
        ) else {
            continue;
        };
        for quantile in [50.0, 99.0] {
            if let (Some(a), Some(b)) = (added(ours, quantile), added(theirs, quantile)) {
                checks.push(Check {
                    path,
                    target: format!(
                        "added p{quantile} at {TARGET_RATE} req/s ≤ {PEER_ADDED_LATENCY_MAX}× {name}'s"
                    ),
                    measured: format!("{a:+} µs against {b:+} µs"),
                    met: b > 0 && a as f64 <= PEER_ADDED_LATENCY_MAX * b as f64,
                });
            }
        }
        let (Some(ours), Some(theirs)) = (
            find(kind, true, false, None),
            find(peer.kind, true, false, None),
        ) else {
            continue;
        };
        let ratio = ours.gateway_cpu_per_1k() / theirs.gateway_cpu_per_1k().max(f64::EPSILON);
        checks.push(Check {
            path,
            target: format!("CPU per stream at {} ≤ {PEER_CPU_MAX}× {name}'s", ours.load),
            measured: format!("{ratio:.2}×"),
            met: ratio <= PEER_CPU_MAX,
        });
        if let (Some(a), Some(b)) = (added(ours, 50.0), added(theirs, 50.0)) {
            checks.push(Check {
                path,
                target: format!("added time to first token p50 ≤ {name}'s"),
                measured: format!("{a:+} µs against {b:+} µs"),
                met: a <= b.max(0),
            });
        }
    }
    checks
}

pub fn print(checks: &[Check]) {
    println!("\ntargets:");
    for check in checks {
        println!(
            "  {} {:<8} {:<55} {}",
            if check.met { "met    " } else { "NOT MET" },
            check.path,
            check.target,
            check.measured
        );
    }
}

pub fn to_json(checks: &[Check]) -> Value {
    Value::Array(
        checks
            .iter()
            .map(|check| {
                json!({
                    "path": check.path,
                    "target": check.target,
                    "measured": check.measured,
                    "met": check.met,
                })
            })
            .collect(),
    )
}
