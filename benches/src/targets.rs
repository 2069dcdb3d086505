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
