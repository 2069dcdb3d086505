//! What the benchmark binaries set up the same way: their runtime and an in-process
//! emulator.

use aigw_emulator::{Emulator, EmulatorHandle};
use anyhow::{Context, Result};

/// Runs `work` to its end on a multi-threaded tokio runtime.
pub fn block_on(work: impl Future<Output = Result<()>>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(work)
}

/// Starts an emulator in this process on a free loopback port, recording nothing:
/// recording every request would make the emulator, not the gateway, the bottleneck.
pub async fn start_unrecorded_emulator() -> Result<EmulatorHandle> {
    let emulator = Emulator::new();
    emulator.set_recording(false);
    emulator
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .context("starting the emulator")
}
