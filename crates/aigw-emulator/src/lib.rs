//! An AWS Bedrock Runtime emulator that speaks the real wire protocol, so the unmodified
//! `aws-sdk-bedrockruntime` client (pointed at it with `endpoint_url`) talks to it. Tests,
//! benchmarks and the gateway's demo use it in place of AWS.
//!
//! It answers `POST /model/{modelId}/converse` with JSON and `/converse-stream` with AWS
//! event-stream frames, with deterministic answers that name the model, and
//! `/count-tokens` (CountTokens) for Claude models. It also speaks
//! OpenAI's `POST /v1/chat/completions` (JSON, or SSE with `"stream": true`), so
//! OpenAI-compatible drivers are tested the same way. [`Knobs`] set latency,
//! token pacing, answer length and injected faults per model (from Rust, or over HTTP at
//! `/_emulator/knobs`), and every request is recorded for inspection.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use aigw_emulator::{Fault, ModelKnobs};
//!
//! let emulator = aigw_emulator::start("127.0.0.1:0".parse().expect("addr")).await?;
//! emulator.knobs().set_model(
//!     "us.amazon.nova-micro-v1:0",
//!     ModelKnobs::with_fault(Fault::throttling(), Some(1)),
//! );
//! // Point the SDK at emulator.endpoint_url() ...
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod answer;
mod auth;
mod count_tokens;
mod embeddings;
mod error;
mod knobs;
mod openai_upstream;
mod record;
mod rich;
mod server;
mod stream;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use knobs::{DEFAULT_ANSWER_WORDS, Fault, KnobSet, Knobs, ModelKnobs};
pub use record::{Operation, RECORD_CAPACITY, SeenRequest};
pub use server::router;

use server::Shared;

/// How long [`EmulatorHandle::shutdown`] lets connections finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The emulator's state: knobs, request log and counters. Cheap to clone; clones share it.
///
/// Serve it with [`Emulator::serve`] (or [`start`]), or mount [`Emulator::router`] in-process.
#[derive(Debug, Clone, Default)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl Emulator {
    /// A fresh emulator: default knobs, recording on.
    pub fn new() -> Self {
        Self::default()
    }

    /// The live knobs.
    pub fn knobs(&self) -> &Knobs {
        &self.shared.knobs
    }

    /// The recorded requests, oldest first (at most [`RECORD_CAPACITY`]).
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.recorder.snapshot()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// Turns request recording on or off (on by default); off saves a lock and the body per
    /// request, for benchmarks.
    pub fn set_recording(&self, on: bool) {
        self.shared.recorder.set_enabled(on);
    }

    /// Streams whose client went away before the stream was complete.
    pub fn cancelled_streams(&self) -> u64 {
        self.shared.cancelled_streams.load(Ordering::Relaxed)
    }

    /// Streams in progress now (waiting to start, or sending).
    pub fn open_streams(&self) -> u64 {
        self.shared.open_streams.load(Ordering::Relaxed)
    }

    /// Bedrock requests received so far, recorded or not.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// The routes, to serve or merge into another router.
    pub fn router(&self) -> axum::Router {
        router(self.clone())
    }

    /// Binds `addr` (port 0 picks one) and serves on a spawned task until the handle is shut
    /// down or dropped. An emulator is meant to be served once: stopping it releases hung
    /// requests for good.
    pub async fn serve(self, addr: SocketAddr) -> io::Result<EmulatorHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Small frames must leave at once: Nagle plus delayed ACKs would hold each stream
        // delta for tens of milliseconds and benchmarks would measure that.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
        });
        let mut stop = self.shared.stop.subscribe();
        let app = self.router();
        let task = tokio::spawn(async move {
            let signal = async move { server::stopped(&mut stop).await };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::warn!("bedrock emulator stopped: {e}");
            }
        });
        Ok(EmulatorHandle {
            emulator: self,
            addr,
            task: Some(task),
        })
    }

    fn stop(&self) {
        self.shared.stop.send_replace(true);
    }
}

/// Starts a fresh emulator on `addr` (port 0 picks a free port).
pub async fn start(addr: SocketAddr) -> io::Result<EmulatorHandle> {
    Emulator::new().serve(addr).await
}

/// A running emulator. Dropping it stops the server (without waiting for it).
#[derive(Debug)]
pub struct EmulatorHandle {
    emulator: Emulator,
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` for the SDK's `endpoint_url`; a wildcard bind is reached on loopback.
    pub fn endpoint_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The emulator being served.
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// The live knobs.
    pub fn knobs(&self) -> &Knobs {
        self.emulator.knobs()
    }

    /// The recorded requests, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.emulator.requests()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.emulator.clear_requests();
    }

    /// Streams whose client went away before the stream was complete.
    pub fn cancelled_streams(&self) -> u64 {
        self.emulator.cancelled_streams()
    }

    /// Streams in progress now.
    pub fn open_streams(&self) -> u64 {
        self.emulator.open_streams()
    }

    /// Stops accepting, ends hung requests and open streams, and waits (a few seconds at
    /// most) for connections to close.
    pub async fn shutdown(mut self) {
        self.emulator.stop();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.emulator.stop();
    }
}
