//! Load generators: open loop at a fixed rate (latency counted from when a request was due,
//! so a stalled server cannot hide its queue), and closed loop with N connections.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use crate::paths::{Caller, Kind};

/// How load was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Requests started at this many per second, whatever the answers do.
    Rate(u32),
    /// This many connections, each sending its next request when the last one returned.
    Closed(usize),
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Load::Rate(rate) => write!(f, "{rate}/s"),
            Load::Closed(connections) => write!(f, "{connections} conn"),
        }
    }
}

/// The outcome of one phase.
pub struct Sample {
    pub kind: Kind,
    pub stream: bool,
    pub load: Load,
    pub latency: Histogram<u64>,
    pub errors: u64,
    pub elapsed: Duration,
    /// Gateway CPU seconds spent during the phase (0 for the direct path).
    pub gateway_cpu: f64,
}

impl Sample {
    fn new(kind: Kind, stream: bool, load: Load) -> Sample {
        Sample {
            kind,
            stream,
            load,
            // Up to 60 s in microseconds at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!())),
            errors: 0,
            elapsed: Duration::ZERO,
            gateway_cpu: 0.0,
        }
    }

    fn record(&mut self, outcome: Result<Duration, String>) {
        match outcome {
            Ok(latency) => {
                let _ = self.latency.record((latency.as_micros() as u64).max(1));
            }
            Err(_) => self.errors += 1,
        }
    }

    /// Folds another round of the same path and load into this one.
    pub fn merge(&mut self, round: Sample) {
        // Both histograms share bounds, so adding cannot fail; a failure would only
        // drop the round's latencies, never mix them up.
        let _ = self.latency.add(&round.latency);
        self.errors += round.errors;
        self.elapsed += round.elapsed;
        self.gateway_cpu += round.gateway_cpu;
    }

    pub fn count(&self) -> u64 {
        self.latency.len() + self.errors
    }

    pub fn achieved_rps(&self) -> f64 {
        self.latency.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn percentile_us(&self, quantile: f64) -> u64 {
        self.latency.value_at_quantile(quantile / 100.0)
    }

    pub fn gateway_cpu_per_1k(&self) -> f64 {
        self.gateway_cpu * 1000.0 / (self.count().max(1) as f64)
    }
}

/// Requests one open-loop phase keeps in flight at most, like a load tool's connection
/// pool: beyond it, due requests wait (and their wait counts as latency) instead of opening
/// thousands of sockets when the server falls behind.
const MAX_IN_FLIGHT: usize = 256;

/// Starts `rate` requests a second for `duration`, each on its own task.
///
/// A dedicated thread paces the starts: tokio's timer has a 1 ms resolution, so pacing from
/// the runtime started requests up to 1 ms late, in bursts that queued behind each other in
/// whatever was measured. `std::thread::sleep` wakes within the kernel's timer slack (about
/// 50 µs). Each wake hands every request due by then to the runtime in one spawn, so at high
/// rates the hand-over costs one thread wake-up per batch, not one per request.
pub async fn open_loop(caller: Arc<Caller>, stream: bool, rate: u32, duration: Duration) -> Sample {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let total = (u64::from(rate) * duration.as_millis() as u64 / 1000).max(1);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let runtime = tokio::runtime::Handle::current();
    let kind = caller.kind();
    let start = Instant::now();
    let due_at = move |sent: u64| start + interval.mul_f64(sent as f64);
    let pacer = std::thread::spawn(move || {
        let mut sent = 0u64;
        while sent < total {
            let now = Instant::now();
            let next = due_at(sent);
            if next > now {
                std::thread::sleep(next - now);
            }
            let now = Instant::now();
            let mut batch = Vec::new();
            while sent < total && due_at(sent) <= now {
                batch.push(due_at(sent));
                sent += 1;
            }
            let caller = caller.clone();
            let sender = sender.clone();
            let slots = slots.clone();
            runtime.spawn(async move {
                for due in batch {
                    let caller = caller.clone();
                    let sender = sender.clone();
                    let slots = slots.clone();
                    tokio::spawn(async move {
                        let _slot = slots.acquire().await;
                        // From when the request was due to the answer (unary) or first token
                        // (stream).
                        let outcome = caller.call(stream).await.map(|seen| seen - due);
                        let _ = sender.send(outcome);
                    });
                }
            });
        }
    });
    let mut sample = Sample::new(kind, stream, Load::Rate(rate));
    while let Some(outcome) = receiver.recv().await {
        sample.record(outcome);
    }
    let _ = pacer.join();
    sample.elapsed = start.elapsed();
    sample
}

/// `connections` workers, each looping request after request for `duration`.
pub async fn closed_loop(caller: Arc<Caller>, connections: usize, duration: Duration) -> Sample {
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let caller = caller.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while Instant::now() < deadline {
                    let began = Instant::now();
                    outcomes.push(caller.call(false).await.map(|seen| seen - began));
                }
                outcomes
            })
        })
        .collect();
    let mut sample = Sample::new(caller.kind(), false, Load::Closed(connections));
    for worker in workers {
        if let Ok(outcomes) = worker.await {
            for outcome in outcomes {
                sample.record(outcome);
            }
        }
    }
    sample.elapsed = start.elapsed();
    sample
}
