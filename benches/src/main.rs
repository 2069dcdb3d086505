//! `aigw-bench`: what aigw adds on top of the model. In one run it starts the Bedrock
//! emulator, calls it directly with the AWS SDK (the floor), then through a real `aigw`
//! process over HTTP and gRPC, unary and streaming, with open-loop load at fixed rates and a
//! closed-loop run at 64 connections. It reports latency percentiles, the latency added over
//! the direct call, errors, the gateway's CPU per 1 000 requests and its memory, as a table
//! and as JSON (`target/aigw-bench/report.json`). With `redis-server` installed, the
//! `limit` phase also measures a second gateway whose route counts tokens in Redis
//! (ai-rate-limiting-advanced, `strategy: redis`): its `http+redis-limit` row against the
//! `http` row at the same rate is the added latency of a Redis-backed limit.
#![forbid(unsafe_code)]

mod load;
mod paths;
mod process;
mod setup;
mod targets;
mod upstream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aigw_emulator::ModelKnobs;
use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{Value, json};

use crate::load::{Sample, closed_loop, open_loop};
use crate::paths::{Caller, Kind};
use crate::process::Gateway;
use crate::upstream::Upstream;

#[derive(Parser)]
#[command(about = "Measure the latency, throughput, CPU and memory aigw adds over a direct call")]
struct Args {
    /// A short run (under a minute) with fewer rates and shorter phases.
    #[arg(long)]
    quick: bool,
    /// Also measure a LiteLLM proxy (`pip install 'litellm[proxy]'`) over the same emulator;
    /// skipped with a message when `litellm` is not on PATH.
    #[arg(long)]
    litellm: bool,
    /// Also measure nginx as a bare reverse proxy between the SDK and the emulator: what any
    /// extra hop costs on this machine. Skipped with a message when nginx is not installed.
    #[arg(long)]
    nginx: bool,
    /// Open-loop rates in requests per second, replacing the mode's default list
    /// (e.g. `--rates 2000` to compare one change at one rate).
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<u32>>,
    /// Streams started per second in the time-to-first-token phases [default: 200].
    #[arg(long)]
    stream_rate: Option<u32>,
    /// Seconds per phase, replacing the mode's default (longer phases steady the high
    /// percentiles).
    #[arg(long)]
    seconds: Option<u64>,
    /// Only these phases (a faster A/B run): `open` (unary at fixed rates), `closed`
    /// (64 connections), `stream` (time to first token), `limit` (a Redis-backed token
    /// limit at the first rate) [default: all].
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Phase>,
    /// Run the emulator inside the benchmark's process instead of its own: the direct path
    /// then shares a runtime with it and gets cheaper than any real model call.
    #[arg(long)]
    in_process_emulator: bool,
    /// An environment variable for the gateway, `KEY=VALUE`, repeatable (e.g.
    /// `AIGW_LOG_LEVEL=info` to measure the access log, `TOKIO_WORKER_THREADS=1`).
    #[arg(long, value_parser = parse_env_pair)]
    gateway_env: Vec<(String, String)>,
    /// Where to write the JSON report [default: target/aigw-bench/report.json].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    Open,
    Closed,
    Stream,
    Limit,
}

struct Plan {
    rates: Vec<u32>,
    phase: Duration,
    closed_connections: usize,
    stream_rate: u32,
    idle_connections: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                rates: vec![500, 2_000],
                phase: Duration::from_secs(2),
                closed_connections: 64,
                stream_rate: 200,
                idle_connections: 1_000,
            }
        } else {
            Plan {
                rates: vec![500, 2_000, 5_000],
                phase: Duration::from_secs(5),
                closed_connections: 64,
                stream_rate: 200,
                idle_connections: 1_000,
            }
        }
    }
}

fn main() -> Result<()> {
    setup::block_on(run(Args::parse()))
}

async fn run(args: Args) -> Result<()> {
    let mut plan = Plan::new(args.quick);
    if let Some(rates) = args.rates.clone() {
        plan.rates = rates;
    }
    if let Some(rate) = args.stream_rate {
        plan.stream_rate = rate.max(1);
    }
    if let Some(seconds) = args.seconds {
        plan.phase = Duration::from_secs(seconds.max(1));
    }
    let emulator = Upstream::start(args.in_process_emulator).await?;
    let gateway = Gateway::start(&emulator.endpoint_url(), &args.gateway_env).await?;
    let rss_at_start = gateway.rss_kib();
    println!(
        "aigw-bench: emulator {} ({}), gateway pid {} on {} (RSS at start {} KiB)",
        emulator.endpoint_url(),
        emulator.placement(),
        gateway.pid(),
        gateway.url(),
        rss_at_start
    );

    // Idle connections are measured before any load, so their memory is not mixed with
    // what the allocator keeps after a burst.
    let idle = process::hold_idle_connections(&gateway.addr(), plan.idle_connections).await;
    let rss_idle = gateway.rss_kib();
    drop(idle);
    let nginx = if args.nginx {
        let proxy = Gateway::start_nginx(&emulator.endpoint_url()).await?;
        if proxy.is_none() {
            println!(
                "nginx is not installed (apt-get install nginx-light); skipping the bare proxy"
            );
        }
        proxy
    } else {
        None
    };

    let bare = Gateway::start_bare_proxy(&emulator.endpoint_url()).await?;

    let mut callers = vec![
        Arc::new(Caller::direct(&emulator.endpoint_url())),
        Arc::new(Caller::through_proxy(Kind::Bare, &bare.url())),
    ];
    if let Some(proxy) = &nginx {
        callers.push(Arc::new(Caller::through_proxy(Kind::Nginx, &proxy.url())));
    }
    callers.push(Arc::new(Caller::http(&gateway.url())));
    callers.push(Arc::new(Caller::grpc(&gateway.url()).await?));
    // CPU is read from whichever process serves the path.
    let server_of = |caller: &Caller| match (caller.kind(), &nginx) {
        (Kind::Nginx, Some(proxy)) => proxy,
        (Kind::Bare, _) => &bare,
        _ => &gateway,
    };
    let paths: Vec<(Arc<Caller>, &Gateway)> = callers
        .iter()
        .map(|caller| (caller.clone(), server_of(caller)))
        .collect();

    let runs = |phase: Phase| args.only.is_empty() || args.only.contains(&phase);
    let rounds = plan.phase.as_secs().max(1) as u32;
    let round = plan.phase / rounds;
    let mut rows: Vec<Sample> = Vec::new();
    // Unary, zero emulator latency: the gateway's own cost.
    emulator.set_default_knobs(ModelKnobs::default()).await?;
    for caller in &callers {
        warm_up(caller).await;
    }
    for rate in plan.rates.iter().filter(|_| runs(Phase::Open)) {
        let at_rate = |caller, duration| open_loop(caller, false, *rate, duration);
        rows.extend(take_turns(&paths, rounds, round, at_rate).await);
    }
    if runs(Phase::Closed) {
        // Every client pool (the SDK's, reqwest's, the gateway's own upstream pool) opens
        // its extra connections here, not inside a measured round.
        for caller in &callers {
            closed_loop(caller.clone(), plan.closed_connections, CLOSED_LOOP_WARM_UP).await;
        }
        let closed = |caller, duration| closed_loop(caller, plan.closed_connections, duration);
        rows.extend(take_turns(&paths, rounds, round, closed).await);
    }

    if runs(Phase::Limit) {
        rows.extend(
            redis_limit_phase(&args, &plan, &emulator, &callers, &gateway, rounds, round).await?,
        );
    }

    // Streaming with model-like pacing: added time to first token.
    emulator
        .set_default_knobs(ModelKnobs {
            latency: Duration::from_millis(20),
            token_delay: Duration::from_millis(2),
            ..ModelKnobs::default()
        })
        .await?;
    if runs(Phase::Stream) {
        let streams = |caller, duration| open_loop(caller, true, plan.stream_rate, duration);
        rows.extend(take_turns(&paths, rounds, round, streams).await);
    }

    // Started only now and stopped after its phases: an idle Python proxy still wakes up
    // on its own and would disturb the gateway's high percentiles.
    let litellm = if args.litellm {
        let proxy = Gateway::start_litellm(&emulator.endpoint_url()).await?;
        if proxy.is_none() {
            println!("litellm is not on PATH (pip install 'litellm[proxy]'); skipping the peer");
        }
        proxy
    } else {
        None
    };

    if let Some(proxy) = &litellm {
        // A peer in Python saturates far below aigw: one moderate rate and the closed loop,
        // unary only, keep its phases within the run's time budget.
        emulator.set_default_knobs(ModelKnobs::default()).await?;
        let caller = Arc::new(Caller::litellm(&proxy.url(), process::LITELLM_KEY));
        warm_up(&caller).await;
        let cpu = proxy.cpu_seconds();
        let mut sample = open_loop(caller.clone(), false, plan.rates[0], plan.phase).await;
        sample.gateway_cpu = proxy.cpu_seconds() - cpu;
        rows.push(sample);
        let cpu = proxy.cpu_seconds();
        let mut sample = closed_loop(caller, plan.closed_connections, plan.phase).await;
        sample.gateway_cpu = proxy.cpu_seconds() - cpu;
        rows.push(sample);
        println!("litellm RSS: {} KiB (main process)", proxy.rss_kib());
    }
    drop(litellm);
    let peak_rss = gateway.peak_rss_kib();

    let checks = targets::check(
        &rows,
        &targets::Memory {
            at_start_kib: rss_at_start,
            with_idle_kib: rss_idle,
            idle_connections: plan.idle_connections,
        },
    );
    let mut report = report(
        &rows,
        rss_at_start,
        rss_idle,
        plan.idle_connections,
        peak_rss,
    );
    report["targets"] = targets::to_json(&checks);
    print_table(&rows);
    println!(
        "\ngateway RSS: {rss_at_start} KiB at start, {rss_idle} KiB with {} idle keep-alive connections, peak {peak_rss} KiB",
        plan.idle_connections
    );
    targets::print(&checks);
    let out = args.out.unwrap_or_else(default_report_path);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("report: {}", out.display());
    Ok(())
}

/// The `http` path against the same route with a Redis-backed ai-rate-limiting-advanced
/// plugin, taking turns at the first open-loop rate; only the limited path's sample is
/// new. Skipped, with a message, without `redis-server`.
async fn redis_limit_phase(
    args: &Args,
    plan: &Plan,
    emulator: &Upstream,
    callers: &[Arc<Caller>],
    gateway: &Gateway,
    rounds: u32,
    round: Duration,
) -> Result<Vec<Sample>> {
    let Some((mut redis, port)) = process::start_redis().await? else {
        println!(
            "redis-server is not installed (apt-get install redis-server); skipping the Redis-backed limit"
        );
        return Ok(Vec::new());
    };
    let config = process::seed_with_redis_limit(port)?;
    let limited =
        Gateway::start_with_config(&emulator.endpoint_url(), &config, &args.gateway_env).await?;
    let plain = callers
        .iter()
        .find(|c| c.kind() == Kind::Http)
        .cloned()
        .context("the http path")?;
    let with_limit = Arc::new(Caller::http_redis_limit(&limited.url()));
    warm_up(&with_limit).await;
    let pair = [(plain, gateway), (with_limit, &limited)];
    let rate = plan.rates[0];
    let at_rate = |caller, duration| open_loop(caller, false, rate, duration);
    let samples = take_turns(&pair, rounds, round, at_rate).await;
    drop(limited);
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_file(&config);
    Ok(samples
        .into_iter()
        .filter(|s| s.kind == Kind::HttpRedisLimit)
        .collect())
}

fn parse_env_pair(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{pair:?} is not KEY=VALUE")),
    }
}

/// How long each path runs unmeasured before each of its rounds, under the round's load.
const ROUND_LEAD_IN: Duration = Duration::from_millis(250);

/// Measures every path under the same load, taking turns: in each of `rounds` rounds each
/// path runs `ROUND_LEAD_IN` unmeasured, then `round` measured. A drift in the machine's
/// speed during the run (a busy neighbour, a host that throttles) then falls on every path
/// alike, not on whichever path ran through it, and the subtraction from direct stays fair;
/// the lead-in gives back what a path loses while idle between its turns (warm caches and
/// threads, a full connection pool), which a busy gateway never loses. One sample per path,
/// its rounds merged.
async fn take_turns<F, Fut>(
    paths: &[(Arc<Caller>, &Gateway)],
    rounds: u32,
    round: Duration,
    measure: F,
) -> Vec<Sample>
where
    F: Fn(Arc<Caller>, Duration) -> Fut,
    Fut: std::future::Future<Output = Sample>,
{
    let mut merged: Vec<Option<Sample>> = paths.iter().map(|_| None).collect();
    for _ in 0..rounds {
        for ((caller, server), slot) in paths.iter().zip(merged.iter_mut()) {
            measure(caller.clone(), ROUND_LEAD_IN).await;
            let cpu = server.cpu_seconds();
            let mut sample = measure(caller.clone(), round).await;
            sample.gateway_cpu = server.cpu_seconds() - cpu;
            match slot {
                Some(so_far) => so_far.merge(sample),
                None => *slot = Some(sample),
            }
        }
    }
    merged.into_iter().flatten().collect()
}

/// How long each closed loop runs unmeasured first, at its full concurrency.
const CLOSED_LOOP_WARM_UP: Duration = Duration::from_millis(500);

/// Opens connections and fills pools so the first phase does not measure set-up.
async fn warm_up(caller: &Arc<Caller>) {
    for _ in 0..200 {
        let _ = caller.call(false).await;
    }
}

fn default_report_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("aigw-bench/report.json")
}

const PERCENTILES: [f64; 4] = [50.0, 90.0, 99.0, 99.9];

/// The direct call's sample in the same mode and load, to subtract from a gateway path.
pub(crate) fn floor<'a>(rows: &'a [Sample], row: &Sample) -> Option<&'a Sample> {
    rows.iter()
        .find(|r| r.kind == Kind::Direct && r.stream == row.stream && r.load == row.load)
}

fn print_table(rows: &[Sample]) {
    println!(
        "\n{:<8} {:<7} {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
        "path",
        "mode",
        "load",
        "req/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "+p50 µs",
        "+p99 µs",
        "errors",
        "cpu s/1k"
    );
    for row in rows {
        let added = |q: f64| match floor(rows, row) {
            Some(direct) if row.kind != Kind::Direct => {
                format!(
                    "{}",
                    row.percentile_us(q) as i64 - direct.percentile_us(q) as i64
                )
            }
            _ => "-".to_owned(),
        };
        let cpu = if row.kind == Kind::Direct {
            "-".to_owned()
        } else {
            format!("{:.3}", row.gateway_cpu_per_1k())
        };
        println!(
            "{:<8} {:<7} {:<10} {:>9.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
            row.kind.as_str(),
            if row.stream { "ttft" } else { "unary" },
            row.load.to_string(),
            row.achieved_rps(),
            row.percentile_us(50.0),
            row.percentile_us(90.0),
            row.percentile_us(99.0),
            row.percentile_us(99.9),
            added(50.0),
            added(99.0),
            row.errors,
            cpu,
        );
    }
}

fn report(rows: &[Sample], rss_start: u64, rss_idle: u64, idle: usize, peak: u64) -> Value {
    let samples: Vec<Value> = rows
        .iter()
        .map(|row| {
            let percentiles: serde_json::Map<String, Value> = PERCENTILES
                .iter()
                .map(|q| (format!("p{q}"), json!(row.percentile_us(*q))))
                .collect();
            let added: Option<serde_json::Map<String, Value>> = floor(rows, row)
                .filter(|_| row.kind != Kind::Direct)
                .map(|direct| {
                    PERCENTILES
                        .iter()
                        .map(|q| {
                            let delta =
                                row.percentile_us(*q) as i64 - direct.percentile_us(*q) as i64;
                            (format!("p{q}"), json!(delta))
                        })
                        .collect()
                });
            json!({
                "path": row.kind.as_str(),
                "mode": if row.stream { "stream_ttft" } else { "unary" },
                "load": row.load.to_string(),
                "requests": row.count(),
                "errors": row.errors,
                "achieved_rps": row.achieved_rps(),
                "latency_us": percentiles,
                "added_latency_us": added,
                "gateway_cpu_seconds_per_1k": (row.kind != Kind::Direct).then(|| row.gateway_cpu_per_1k()),
            })
        })
        .collect();
    json!({
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        },
        "samples": samples,
        "gateway_rss_kib": {
            "at_start": rss_start,
            "idle_connections": idle,
            "with_idle_connections": rss_idle,
            "peak": peak,
        },
    })
}
