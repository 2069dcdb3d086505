//! The emulated model the benchmark measures against: by default the `bedrock-emulator`
//! binary in a process of its own, as a real model is never inside its caller; optionally
//! in the benchmark's own process (cheaper to reach for the direct path, which shares a
//! runtime with it, so the gateway's added latency reads higher).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aigw_emulator::{EmulatorHandle, KnobSet, ModelKnobs};
use anyhow::{Context, Result, bail};

use crate::process::{free_port, sibling_binary, spawn_quiet};

pub enum Upstream {
    InProcess(EmulatorHandle),
    Process {
        child: Child,
        url: String,
        control: reqwest::Client,
    },
}

impl Upstream {
    pub async fn start(in_process: bool) -> Result<Upstream> {
        if in_process {
            let handle = crate::setup::start_unrecorded_emulator().await?;
            return Ok(Upstream::InProcess(handle));
        }
        let binary = sibling_binary("bedrock-emulator", "bedrock-emulator")?;
        let addr = free_port()?;
        let mut command = Command::new(&binary);
        command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--no-record")
            .env_remove("RUST_LOG");
        let child = spawn_quiet(&mut command, &binary)?;
        let upstream = Upstream::Process {
            child,
            url: format!("http://{addr}"),
            control: reqwest::Client::new(),
        };
        upstream.wait_ready().await?;
        Ok(upstream)
    }

    async fn wait_ready(&self) -> Result<()> {
        let Upstream::Process { url, control, .. } = self else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let health = control.get(format!("{url}/_emulator/health")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the emulator at {url} did not become ready within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn endpoint_url(&self) -> String {
        match self {
            Upstream::InProcess(handle) => handle.endpoint_url(),
            Upstream::Process { url, .. } => url.clone(),
        }
    }

    pub fn placement(&self) -> &'static str {
        match self {
            Upstream::InProcess(_) => "in-process",
            Upstream::Process { .. } => "own process",
        }
    }

    /// How every model answers from now on.
    pub async fn set_default_knobs(&self, knobs: ModelKnobs) -> Result<()> {
        match self {
            Upstream::InProcess(handle) => {
                handle.knobs().set_default(knobs);
                Ok(())
            }
            Upstream::Process { url, control, .. } => {
                let set = KnobSet {
                    default: Some(knobs),
                    ..KnobSet::default()
                };
                let response = control
                    .put(format!("{url}/_emulator/knobs"))
                    .json(&set)
                    .send()
                    .await
                    .context("setting the emulator's knobs")?;
                if !response.status().is_success() {
                    bail!("the emulator refused its knobs: HTTP {}", response.status());
                }
                Ok(())
            }
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Upstream::Process { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
