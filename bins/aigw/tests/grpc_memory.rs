//! Large gRPC messages cost the gateway nothing before they are let in: a flood of ~3.9 MB
//! calls without a key (refused from the call's head), or with a key on a route that
//! allows 8 KiB (refused from the message's length prefix), leaves the gateway's peak
//! resident memory within a few MB of idle, and the gateway serving.
//!
//! The gateway runs as its own process so that only its memory is measured, not the
//! clients'. Linux only: it reads `/proc/PID/status`.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message as _;
use prost::bytes::Bytes;

const AIGW: &str = env!("CARGO_BIN_EXE_aigw");
const KEY: &str = "grpc-memory-key-8d21";
/// Concurrent calls per flood, spread over this many connections.
const CALLS: usize = 100;
const CONNECTIONS: usize = 4;
/// How much the peak may rise over idle. What bounds it is not the messages but HTTP/2 flow
/// control: a connection's client may have up to one window (1 MiB, hyper's default) in
/// flight before the gateway refuses its calls. Plus allocator slack: jemalloc (the
/// gateway's allocator) keeps freed pages in per-thread arenas for seconds, so a buffer
/// freed on one worker is not at once reused by the other; 8 MiB of slack still tells a
/// bounded gateway from one that buffers the flood (390 MB).
const HEADROOM: u64 = (CONNECTIONS as u64 + 8) * 1024 * 1024;

struct Running(Child, PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

/// A `VmXXX:` line of the process's status, in bytes.
fn vm(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a kB value");
    kib * 1024
}

/// Resident memory once it has stopped moving for a second (or after 20 s).
async fn settled_rss(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = vm(pid, "VmRSS:");
    let mut steady_since = Instant::now();
    while Instant::now() < deadline && steady_since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = vm(pid, "VmRSS:");
        if now.abs_diff(last) > 256 * 1024 {
            steady_since = Instant::now();
        }
        last = now;
    }
    vm(pid, "VmRSS:")
}

/// Starts the peak (`VmHWM`) over from the current resident size; false where the kernel
/// does not allow it, and the peak since start is measured instead (a looser bound).
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn start(emulator_url: &str) -> (Running, SocketAddr) {
    let seed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/ai-proxy-advanced.yaml"),
    )
    .expect("seed config");
    let protected = seed
        .replacen(
            "services:",
            &format!(
                "consumers:\n- username: alice\n  keyauth_credentials:\n  - key: {KEY}\nservices:"
            ),
            1,
        )
        .replacen("    plugins:\n", "    plugins:\n    - name: key-auth\n", 1);
    let config = std::env::temp_dir().join(format!("aigw-grpc-memory-{}.yaml", std::process::id()));
    std::fs::write(&config, protected).expect("writes config");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let child = Command::new(AIGW)
        .arg("--config")
        .arg(&config)
        .args(["--listen", &addr.to_string(), "--status-listen", "off"])
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator_url)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AIGW_LOG_LEVEL", "warn")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aigw starts");
    (Running(child, config), addr)
}

/// A gRPC `Chat` frame holding one message of `content_len` bytes.
fn chat_frame(content_len: usize) -> Bytes {
    let message = aigw_tests::grpc_question("", &"x".repeat(content_len)).encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("fits").to_be_bytes());
    frame.extend_from_slice(&message);
    Bytes::from(frame)
}

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client")
}

/// One `Chat` call with `frame` as its body: the `grpc-status` of a trailers-only answer,
/// or `None` for an answer whose status comes in trailers (a success so far).
async fn call(
    client: &reqwest::Client,
    base: &str,
    frame: Bytes,
    key: Option<&str>,
) -> Option<String> {
    let mut request = client
        .post(format!("{base}/aigw.v1.ChatService/Chat"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame);
    if let Some(key) = key {
        request = request.header("apikey", key);
    }
    let response = request.send().await.expect("the gateway answers");
    assert_eq!(response.status(), 200);
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let _ = response.bytes().await;
    status
}

/// `CALLS` concurrent calls of `frame` over `CONNECTIONS` connections; each must answer
/// `expected`. Returns how far the gateway's peak resident memory rose over `idle`.
async fn flood(
    pid: u32,
    base: &str,
    frame: &Bytes,
    key: Option<&str>,
    expected: &str,
    idle: u64,
) -> u64 {
    let clients: Vec<reqwest::Client> = (0..CONNECTIONS).map(|_| h2_client()).collect();
    let calls = (0..CALLS).map(|i| {
        let client = clients[i % CONNECTIONS].clone();
        // Every call sends the same bytes; only the gateway holds copies.
        let frame = frame.clone();
        let (base, key) = (base.to_owned(), key.map(str::to_owned));
        tokio::spawn(async move { call(&client, &base, frame, key.as_deref()).await })
    });
    for answered in futures_join(calls.collect()).await {
        assert_eq!(answered.as_deref(), Some(expected));
    }
    vm(pid, "VmHWM:").saturating_sub(idle)
}

async fn futures_join(
    handles: Vec<tokio::task::JoinHandle<Option<String>>>,
) -> Vec<Option<String>> {
    let mut answers = Vec::with_capacity(handles.len());
    for handle in handles {
        answers.push(handle.await.expect("the call's task"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_grpc_messages_that_are_not_let_in_cost_no_memory() {
    let emulator = aigw_emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("emulator starts");
    let (gateway, addr) = start(&emulator.endpoint_url());
    let pid = gateway.0.id();
    let base = format!("http://{addr}");

    // Ready, and warm: one call of each kind, so first-use allocations are in the baseline.
    let small = chat_frame(10);
    let ready = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "the gateway never listened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served = call(&h2_client(), &base, small.clone(), Some(KEY)).await;
    assert_eq!(served, None, "a small call with the key is served");
    let large = chat_frame(3_900_000);
    assert_eq!(
        call(&h2_client(), &base, large.clone(), None)
            .await
            .as_deref(),
        Some("16")
    );
    assert_eq!(
        call(&h2_client(), &base, large.clone(), Some(KEY))
            .await
            .as_deref(),
        Some("8")
    );

    let idle = settled_rss(pid).await;
    let exact = reset_peak(pid);
    let unauthenticated = flood(pid, &base, &large, None, "16", idle).await;
    eprintln!(
        "idle {} KiB; peak rose {} KiB under {CALLS} calls without a key (peak reset: {exact})",
        idle / 1024,
        unauthenticated / 1024
    );
    let idle = settled_rss(pid).await;
    reset_peak(pid);
    let over_limit = flood(pid, &base, &large, Some(KEY), "8", idle).await;
    eprintln!(
        "peak rose {} KiB under {CALLS} calls over the route's limit",
        over_limit / 1024
    );
    assert!(
        unauthenticated < HEADROOM,
        "{CALLS} unauthenticated 3.9 MB calls took the peak {} KiB over idle",
        unauthenticated / 1024
    );
    assert!(
        over_limit < HEADROOM,
        "{CALLS} 3.9 MB calls over an 8 KiB limit took the peak {} KiB over idle",
        over_limit / 1024
    );

    // Still serving, over gRPC and HTTP.
    assert_eq!(
        call(&h2_client(), &base, small.clone(), Some(KEY)).await,
        None
    );
    let status = reqwest::Client::new()
        .post(format!("{base}/bedrock-route"))
        .header("apikey", KEY)
        .json(&aigw_tests::polish_writer_question())
        .send()
        .await
        .expect("answers")
        .status();
    assert_eq!(status, 200);
}
