//! `aigw-bench`: what aigw adds on top of the model. In one run it starts the Bedrock
//! emulator, calls it directly with the AWS SDK (the floor), then through a real `aigw`
//! process over HTTP and gRPC, unary and streaming, with open-loop load at fixed rates and a
//! closed-loop run at 64 connections. It reports latency percentiles, the latency added over
//! the direct call, errors, the gateway's CPU per 1 000 requests and its memory, as a table
//! and as JSON (`target/aigw-bench/report.json`). Peer gateways (TensorZero, Portkey,
//! LiteLLM) can run in the same phases over the same emulator, with aigw's figures as ratios
//! of theirs. With `redis-server` installed, the `limit` phase also measures a second
//! gateway whose route counts tokens in Redis (ai-rate-limiting-advanced, `strategy: redis`):
//! its `http+redis-limit` row against the `http` row at the same rate is the added latency
//! of a Redis-backed limit.
#![forbid(unsafe_code)]

mod load;
mod paths;
mod peers;
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
    /// Also measure TensorZero's gateway (PyPI `tensorzero`, installed on first use into
    /// target/aigw-bench/peers) over the same emulator, in every phase beside aigw; skipped
    /// with a message when it cannot be installed.
    #[arg(long)]
    tensorzero: bool,
    /// Also measure Portkey's gateway (npm `@portkey-ai/gateway` under Node, installed on
    /// first use into target/aigw-bench/peers) over the same emulator, in every phase beside
    /// aigw; skipped with a message when it cannot be installed.
    #[arg(long)]
    portkey: bool,
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
    let tensorzero = if args.tensorzero {
        peers::start_tensorzero(&emulator.endpoint_url()).await?
    } else {
        None
    };
    let portkey = if args.portkey {
        peers::start_portkey().await?
    } else {
        None
    };

    let mut paths: Vec<(Arc<Caller>, &Gateway)> = vec![
        (Arc::new(Caller::direct(&emulator.endpoint_url())), &gateway),
        (
            Arc::new(Caller::through_proxy(Kind::Bare, &bare.url())),
            &bare,
        ),
    ];
    if let Some(proxy) = &nginx {
        paths.push((
            Arc::new(Caller::through_proxy(Kind::Nginx, &proxy.url())),
            proxy,
        ));
    }
    paths.push((Arc::new(Caller::http(&gateway.url())), &gateway));
    paths.push((Arc::new(Caller::grpc(&gateway.url()).await?), &gateway));
    let mut peer_memory = Vec::new();
    let peer_callers = [
        tensorzero
            .as_ref()
            .map(|peer| (Caller::tensorzero(&peer.url()), peer)),
        portkey.as_ref().map(|peer| {
            let config = peers::portkey_config(&emulator.endpoint_url());
            (Caller::portkey(&peer.url(), config), peer)
        }),
    ];
    for (caller, peer) in peer_callers.into_iter().flatten() {
        // A peer that does not answer through the emulator would only fill its rows
        // with errors: one unary and one streamed request first, or it is left out.
        let unary = caller.call(false).await;
        let streamed = match &unary {
            Ok(_) => caller.call(true).await,
            Err(_) => Ok(std::time::Instant::now()),
        };
        if let Err(err) = unary.and(streamed) {
            println!(
                "{} (pid {}) did not answer through the emulator ({err}); skipping the peer",
                caller.kind().as_str(),
                peer.pid()
            );
            continue;
        }
        println!(
            "{} (pid {}) on {} answers through the emulator (RSS {} KiB)",
            caller.kind().as_str(),
            peer.pid(),
            peer.url(),
            peer.rss_kib()
        );
        peer_memory.push((caller.kind(), peer, peer.rss_kib()));
        paths.push((Arc::new(caller), peer));
    }
    let callers: Vec<Arc<Caller>> = paths.iter().map(|(caller, _)| caller.clone()).collect();

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
    let litellm_rss = litellm.as_ref().map(|proxy| proxy.rss_kib());
    drop(litellm);
    let peak_rss = gateway.peak_rss_kib();
    let mut peer_rss: Vec<PeerMemory> = peer_memory
        .iter()
        .map(|(kind, peer, at_start)| PeerMemory {
            kind: *kind,
            at_start_kib: Some(*at_start),
            peak_kib: peer.peak_rss_kib(),
        })
        .collect();
    if let Some(rss) = litellm_rss {
        peer_rss.push(PeerMemory {
            kind: Kind::LiteLlm,
            at_start_kib: None,
            peak_kib: rss,
        });
    }
    let ratios = ratios(&rows);

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
    report["ratios"] = ratios_json(&ratios);
    report["peer_rss_kib"] = peer_rss
        .iter()
        .map(|peer| {
            (
                peer.kind.as_str().to_owned(),
                json!({"after_first_requests": peer.at_start_kib, "peak": peer.peak_kib}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    print_table(&rows);
    println!(
        "\ngateway RSS: {rss_at_start} KiB at start, {rss_idle} KiB with {} idle keep-alive connections, peak {peak_rss} KiB",
        plan.idle_connections
    );
    for peer in &peer_rss {
        match peer.at_start_kib {
            Some(start) => println!(
                "{} RSS: {start} KiB after its first requests, peak {} KiB",
                peer.kind.as_str(),
                peer.peak_kib
            ),
            None => println!(
                "{} RSS: {} KiB at the end (main process)",
                peer.kind.as_str(),
                peer.peak_kib
            ),
        }
    }
    print_ratios(&ratios);
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

/// The workspace's target directory, where the report and the peers' installs go.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn default_report_path() -> PathBuf {
    target_dir().join("aigw-bench/report.json")
}

const PERCENTILES: [f64; 4] = [50.0, 90.0, 99.0, 99.9];

/// The direct call's sample in the same mode and load, to subtract from a gateway path.
pub(crate) fn floor<'a>(rows: &'a [Sample], row: &Sample) -> Option<&'a Sample> {
    rows.iter()
        .find(|r| r.kind == Kind::Direct && r.stream == row.stream && r.load == row.load)
}

fn print_table(rows: &[Sample]) {
    println!(
        "\n{:<10} {:<7} {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
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
            "{:<10} {:<7} {:<10} {:>9.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
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

/// A peer gateway's memory, read from its main process.
struct PeerMemory {
    kind: Kind,
    /// After its first two requests, before any load (not read for LiteLLM, started late).
    at_start_kib: Option<u64>,
    peak_kib: u64,
}

/// aigw over one protocol against one peer under the same load: each figure aigw's divided
/// by the peer's, so below 1 means aigw is ahead on CPU and latency, above 1 on req/s.
struct Ratio {
    aigw: Kind,
    peer: Kind,
    stream: bool,
    load: load::Load,
    throughput: f64,
    cpu_per_request: Option<f64>,
    added_p50: Option<f64>,
    added_p99: Option<f64>,
}

fn ratios(rows: &[Sample]) -> Vec<Ratio> {
    let added = |row: &Sample, quantile: f64| {
        floor(rows, row).map(|direct| {
            row.percentile_us(quantile) as f64 - direct.percentile_us(quantile) as f64
        })
    };
    // A peer that added nothing measurable has no ratio; aigw adding less than nothing
    // (noise below the direct call) counts as zero.
    let divide = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => Some(ours.max(0.0) / theirs),
        _ => None,
    };
    let mut ratios = Vec::new();
    for peer in rows.iter().filter(|row| row.kind.is_peer()) {
        let ours = rows.iter().filter(|row| {
            matches!(row.kind, Kind::Http | Kind::Grpc)
                && row.stream == peer.stream
                && row.load == peer.load
        });
        for aigw in ours {
            ratios.push(Ratio {
                aigw: aigw.kind,
                peer: peer.kind,
                stream: peer.stream,
                load: peer.load,
                throughput: aigw.achieved_rps() / peer.achieved_rps().max(f64::EPSILON),
                cpu_per_request: divide(
                    Some(aigw.gateway_cpu_per_1k()),
                    Some(peer.gateway_cpu_per_1k()),
                ),
                added_p50: divide(added(aigw, 50.0), added(peer, 50.0)),
                added_p99: divide(added(aigw, 99.0), added(peer, 99.0)),
            });
        }
    }
    ratios
}

fn print_ratios(ratios: &[Ratio]) {
    if ratios.is_empty() {
        return;
    }
    println!("\naigw / peer (below 1: aigw ahead on CPU and latency; above 1: on req/s):");
    let times = |ratio: Option<f64>| ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}×"));
    for ratio in ratios {
        println!(
            "  {:<18} {:<5} {:<10} req/s {:>7}  cpu/req {:>7}  +p50 {:>7}  +p99 {:>7}",
            format!("{} / {}", ratio.aigw.as_str(), ratio.peer.as_str()),
            if ratio.stream { "ttft" } else { "unary" },
            ratio.load.to_string(),
            times(Some(ratio.throughput)),
            times(ratio.cpu_per_request),
            times(ratio.added_p50),
            times(ratio.added_p99),
        );
    }
}

fn ratios_json(ratios: &[Ratio]) -> Value {
    Value::Array(
        ratios
            .iter()
            .map(|ratio| {
                json!({
                    "aigw": ratio.aigw.as_str(),
                    "peer": ratio.peer.as_str(),
                    "mode": if ratio.stream { "stream_ttft" } else { "unary" },
                    "load": ratio.load.to_string(),
                    "throughput": ratio.throughput,
                    "cpu_per_request": ratio.cpu_per_request,
                    "added_p50": ratio.added_p50,
                    "added_p99": ratio.added_p99,
                })
            })
            .collect(),
    )
}
