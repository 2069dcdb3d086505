//! `aigw-soak`: a bounded soak of a real `aigw` process on loopback. It sends a steady rate
//! of chat requests (HTTP unary, HTTP streaming and gRPC) for a fixed time while the
//! emulator injects a fault into a fixed share of them, and checks that every request is
//! answered (a success, or a mapped error: never a dropped connection, a hang or a
//! truncated success), while sampling the gateway's RSS and open file descriptors.
//!
//! Not part of CI: `cargo run --release -p aigw-bench --bin aigw-soak` (2 minutes).
#![forbid(unsafe_code)]

#[allow(dead_code)] // shared with aigw-bench, which uses more of it
mod process;
mod setup;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_emulator::{Fault, ModelKnobs};
use anyhow::{Context, Result};
use clap::Parser;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::process::Gateway;

#[derive(Parser)]
#[command(about = "Soak a real aigw process: steady load with injected upstream faults")]
struct Args {
    /// How long to send requests, in seconds.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Requests started per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Percent of requests that get an injected upstream fault.
    #[arg(long, default_value_t = 5)]
    fault_percent: u32,
    /// Seconds between RSS / file-descriptor samples.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
}

/// How one request ended, from the client's side.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// A complete answer.
    Ok,
    /// An error the gateway mapped: an HTTP status with an OpenAI error body, an SSE error
    /// event, or a gRPC status.
    Mapped(String),
    /// No answer, a broken one, or a success that was cut short.
    Lost(String),
}

/// Faults injected in turn; `Hang` is bounded by the soak config's read_timeout.
fn faults() -> Vec<Fault> {
    vec![
        Fault::internal_error(),
        Fault::throttling(),
        Fault::service_unavailable(),
        Fault::CutStream { after_deltas: 2 },
        Fault::InvalidJson,
        Fault::BadCrc { after_deltas: 2 },
        Fault::StreamException {
            after_deltas: 2,
            exception_type: "modelStreamErrorException".into(),
        },
        Fault::Hang,
    ]
}

fn main() -> Result<()> {
    setup::block_on(run(Args::parse()))
}

async fn run(args: Args) -> Result<()> {
    let emulator = setup::start_unrecorded_emulator().await?;
    // The seed config with a short read_timeout, so an injected hang ends as a 504 within
    // the run instead of Kong's 60 s default.
    let seed = include_str!("../../config/ai-proxy-advanced.yaml");
    let config = std::env::temp_dir().join(format!("aigw-soak-{}.yaml", std::process::id()));
    std::fs::write(
        &config,
        seed.replace(
            "algorithm: round-robin",
            "algorithm: round-robin\n          read_timeout: 2000",
        ),
    )
    .context("writing the soak config")?;
    let gateway = Gateway::start_with_config(&emulator.endpoint_url(), &config, &[]).await?;
    let url = format!("{}/bedrock-route", gateway.url());
    println!(
        "aigw-soak: {} req/s for {} s, {}% injected faults; gateway pid {} on {}",
        args.rate,
        args.seconds,
        args.fault_percent,
        gateway.pid(),
        gateway.addr()
    );

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")?;
    let grpc = aigw_proto::v1::chat_service_client::ChatServiceClient::connect(gateway.url())
        .await
        .context("gRPC client")?;
    let clients = Arc::new((http, grpc, url));

    let total = u64::from(args.rate) * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let faults = faults();
    let (sender, mut receiver) = mpsc::unbounded_channel::<(usize, Outcome)>();
    let mut samples = vec![(0u64, gateway.rss_kib(), gateway.open_fds())];
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0u64;
    let mut next_sample = Duration::from_secs(args.sample_every);
    let mut next_fault_second = 0u64;
    while sent < total {
        ticker.tick().await;
        let elapsed = start.elapsed();
        // Each second, arm exactly fault_percent of that second's requests with the next
        // fault in turn: a steady share, every kind exercised, no randomness to explain.
        if elapsed.as_secs() >= next_fault_second {
            let count = args.rate * args.fault_percent / 100;
            let fault = faults[(next_fault_second as usize) % faults.len()].clone();
            emulator
                .knobs()
                .set_default(ModelKnobs::with_fault(fault, Some(count)));
            next_fault_second += 1;
        }
        if elapsed >= next_sample {
            samples.push((elapsed.as_secs(), gateway.rss_kib(), gateway.open_fds()));
            next_sample += Duration::from_secs(args.sample_every);
        }
        while sent < total && start + interval.mul_f64(sent as f64) <= Instant::now() {
            let clients = clients.clone();
            let sender = sender.clone();
            let kind = (sent % 10) as usize;
            tokio::spawn(async move {
                let outcome = match kind {
                    0..=6 => http_unary(&clients.0, &clients.2).await,
                    7 | 8 => http_stream(&clients.0, &clients.2).await,
                    _ => grpc_unary(clients.1.clone()).await,
                };
                let _ = sender.send((kind, outcome));
            });
            sent += 1;
        }
    }
    drop(sender);
    let mut counts: BTreeMap<Outcome, u64> = BTreeMap::new();
    let mut answered = 0u64;
    while let Some((_, outcome)) = receiver.recv().await {
        answered += 1;
        *counts.entry(outcome).or_default() += 1;
    }
    let wall = start.elapsed();
    // Let idle keep-alive connections and finished streams settle before the last sample.
    tokio::time::sleep(Duration::from_secs(2)).await;
    samples.push((
        start.elapsed().as_secs(),
        gateway.rss_kib(),
        gateway.open_fds(),
    ));

    let lost: u64 = counts
        .iter()
        .filter(|(o, _)| matches!(o, Outcome::Lost(_)))
        .map(|(_, n)| n)
        .sum();
    let ok = counts.get(&Outcome::Ok).copied().unwrap_or(0);
    println!(
        "\nsent {sent}, answered {answered} in {:.1} s: {ok} ok, {} mapped errors, {lost} lost",
        wall.as_secs_f64(),
        answered - ok - lost
    );
    for (outcome, count) in &counts {
        println!("  {count:>7}  {outcome:?}");
    }
    println!("\n   t(s)   RSS (KiB)   open fds");
    for (t, rss, fds) in &samples {
        println!("  {t:>5}  {rss:>10}  {fds:>9}");
    }
    println!("  peak RSS {} KiB", gateway.peak_rss_kib());
    let _ = std::fs::remove_file(&config);
    if lost > 0 || answered != sent {
        anyhow::bail!("{} request(s) lost", lost + (sent - answered));
    }
    Ok(())
}

const QUESTION: &str =
    r#"{"messages":[{"role":"user","content":"Who is considered the greatest Polish writer?"}]}"#;
const STREAM_QUESTION: &str = r#"{"stream":true,"messages":[{"role":"user","content":"Who is considered the greatest Polish writer?"}]}"#;

/// POSTs `body` as JSON; no answer at all is a lost request, labelled `label`.
async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &'static str,
    label: &str,
) -> Result<reqwest::Response, Outcome> {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|error| Outcome::Lost(format!("{label}: {}", error_kind(&error))))
}

async fn http_unary(client: &reqwest::Client, url: &str) -> Outcome {
    let response = match post_json(client, url, QUESTION, "http").await {
        Ok(response) => response,
        Err(lost) => return lost,
    };
    let status = response.status().as_u16();
    let Ok(body) = response.json::<serde_json::Value>().await else {
        return Outcome::Lost(format!("http {status}: body not JSON"));
    };
    match status {
        200 if body["choices"][0]["message"]["content"].is_string() => Outcome::Ok,
        200 => Outcome::Lost("http 200 without an answer".into()),
        _ if body["error"]["code"].is_string() => Outcome::Mapped(format!(
            "http {status} {}",
            body["error"]["code"].as_str().unwrap_or_default()
        )),
        _ => Outcome::Lost(format!("http {status} without an error body")),
    }
}

async fn http_stream(client: &reqwest::Client, url: &str) -> Outcome {
    let response = match post_json(client, url, STREAM_QUESTION, "sse").await {
        Ok(response) => response,
        Err(lost) => return lost,
    };
    let status = response.status().as_u16();
    if status != 200 {
        return match response.json::<serde_json::Value>().await {
            Ok(body) if body["error"]["code"].is_string() => Outcome::Mapped(format!(
                "sse head {status} {}",
                body["error"]["code"].as_str().unwrap_or_default()
            )),
            _ => Outcome::Lost(format!("sse {status} without an error body")),
        };
    }
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(error) => return Outcome::Lost(format!("sse body: {}", error_kind(&error))),
        }
    }
    let text = String::from_utf8_lossy(&body);
    if text.trim_end().ends_with("data: [DONE]") {
        Outcome::Ok
    } else if let Some(error) = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find(|v| v["error"]["code"].is_string())
    {
        Outcome::Mapped(format!(
            "sse event {}",
            error["error"]["code"].as_str().unwrap_or_default()
        ))
    } else {
        Outcome::Lost("sse ended without [DONE] or an error event".into())
    }
}

async fn grpc_unary(
    mut client: aigw_proto::v1::chat_service_client::ChatServiceClient<tonic::transport::Channel>,
) -> Outcome {
    let request = aigw_proto::v1::ChatRequest {
        messages: vec![aigw_proto::v1::Message {
            role: "user".into(),
            content: "hi".into(),
            ..aigw_proto::v1::Message::default()
        }],
        ..aigw_proto::v1::ChatRequest::default()
    };
    match client.chat(request).await {
        Ok(answer) if !answer.get_ref().choices.is_empty() => Outcome::Ok,
        Ok(_) => Outcome::Lost("grpc ok without choices".into()),
        // Codes the gateway's error map produces; Unknown or Internal would mean a
        // transport failure or a bug.
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::FailedPrecondition
            ) && !status.message().is_empty() =>
        {
            Outcome::Mapped(format!("grpc {:?}", status.code()))
        }
        Err(status) => Outcome::Lost(format!("grpc {:?}: {}", status.code(), status.message())),
    }
}

fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "request"
    }
}
