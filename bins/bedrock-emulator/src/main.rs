//! `bedrock-emulator`: the AWS Bedrock Runtime emulator of `aigw-emulator` as a standalone
//! server, for the demo and for benchmarks run against a separate process. Its behaviour is
//! set over HTTP at `/_emulator/knobs`; requests it saw are at `/_emulator/requests`.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;

/// Serve an AWS Bedrock Runtime emulator (Converse and ConverseStream).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        default_value = "127.0.0.1:9700",
        env = "BEDROCK_EMULATOR_LISTEN"
    )]
    listen: SocketAddr,
    /// Do not record requests for `/_emulator/requests`: recording takes a lock and keeps
    /// each body, which a load benchmark would measure instead of the gateway.
    #[arg(long, env = "BEDROCK_EMULATOR_NO_RECORD")]
    no_record: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let emulator = aigw_emulator::Emulator::new();
    emulator.set_recording(!args.no_record);
    let handle = emulator
        .serve(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;

    // Scripts wait for this line to know the port is open, so it must not sit in a buffer.
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "bedrock-emulator listening on http://{}",
        handle.addr()
    )?;
    stdout.flush()?;
    drop(stdout);

    shutdown_signal().await?;
    handle.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM where there is one (what `docker stop` and process supervisors send).
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        tokio::select! {
            res = tokio::signal::ctrl_c() => res.context("cannot watch Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot watch Ctrl-C")?;
    Ok(())
}
