//! The cost of one pick, per algorithm, at 2, 16 and 256 targets, in steady state: every
//! target measured, some load in flight, the health check on.
//!
//! `cargo bench -p aigw-balancer --bench pick`
// criterion's macros generate the undocumented `benches` and `main`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use aigw_balancer::pick::{
    Candidates, ConsistentHashing, LatencyStrategy, LeastConnections, LowestLatency, LowestUsage,
    Pick, Priority, RoundRobin, UsageMeasure,
};
use aigw_balancer::{HealthPolicy, RouteState, TargetInfo, Tried};
use aigw_core::Usage;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn route(n: usize) -> (Vec<TargetInfo>, RouteState) {
    let infos: Vec<TargetInfo> = (0..n)
        .map(|i| {
            let mut info = TargetInfo::new(format!("bedrock/model-{i}"), 100 * (1 + i as u32 % 4));
            info.input_cost = 0.5 + i as f64;
            info.output_cost = 2.0 + i as f64;
            info
        })
        .collect();
    let health = HealthPolicy {
        max_fails: 3,
        ..HealthPolicy::default()
    };
    let state = RouteState::new(infos.clone(), health);
    for t in 0..n {
        let usage = Usage {
            prompt_tokens: 100 + t as u32,
            completion_tokens: 50 + (t as u32 * 7) % 31,
            total_tokens: 150 + t as u32 * 2,
            ..Usage::default()
        };
        state.record_answer(
            t,
            Duration::from_millis(20 + (t as u64 * 13) % 97),
            Some(usage),
        );
    }
    (infos, state)
}

fn pickers(infos: &[TargetInfo]) -> Vec<(&'static str, Box<dyn Pick>)> {
    let weights: Vec<u32> = infos.iter().map(|t| t.weight).collect();
    vec![
        ("round-robin", Box::new(RoundRobin::new(&weights))),
        ("priority", Box::new(Priority::new(&weights))),
        (
            "lowest-latency",
            Box::new(LowestLatency::new(LatencyStrategy::Tpot)),
        ),
        (
            "lowest-usage",
            Box::new(LowestUsage::new(UsageMeasure::Cost, &weights)),
        ),
        (
            "least-connections",
            Box::new(LeastConnections::new(&weights)),
        ),
        (
            "consistent-hashing",
            Box::new(ConsistentHashing::new(infos, 10_000)),
        ),
    ]
}

fn one_pick(c: &mut Criterion) {
    let keys: Vec<String> = (0..1024).map(|i| format!("request-{i:08x}")).collect();
    let tried = Tried::default();
    for n in [2, 16, 256] {
        let (infos, state) = route(n);
        for (name, picker) in pickers(&infos) {
            let mut group = c.benchmark_group(name);
            let mut i = 0usize;
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    let key = keys[i % keys.len()].as_str();
                    black_box(picker.pick(&Candidates::new(&state, &tried, Some(key))))
                })
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = one_pick
}
criterion_main!(benches);
