//! The `aigw` binary out of file descriptors: failed accepts are logged at warn, a few lines
//! rather than one per failure, counted in `aigw_accept_errors_total`, and the gateway
//! serves again as soon as descriptors come back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

const AIGW: &str = env!("CARGO_BIN_EXE_aigw");

/// The descriptor limit the gateway runs under: enough for its own (listener, epoll, logs,
/// upstream connections) and a handful of clients.
const FD_LIMIT: u32 = 64;

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("aigw-fd-limit-{}-{name}", std::process::id()))
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn post(base: &str) -> Option<u16> {
    let response = reqwest::Client::new()
        .post(format!("{base}/bedrock-route"))
        .header("content-type", "application/json")
        .body(r#"{"messages":[{"role":"user","content":"hi"}]}"#)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

fn warn_lines(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("accepting a connection failed"))
        .count()
}

#[tokio::test]
async fn out_of_descriptors_is_logged_at_warn_counted_and_survived() {
    let emulator = aigw_emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("emulator starts");
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/ai-proxy-advanced.yaml");
    let log = temp_path("log.txt");
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
    };
    let (addr, status_addr) = (free_port(), free_port());
    // `ulimit` is a shell builtin; the shell then becomes the gateway.
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(r#"ulimit -n {FD_LIMIT} && exec "$0" "$@""#))
        .arg(AIGW)
        .arg("--config")
        .arg(&seed)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--status-listen")
        .arg(status_addr.to_string())
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AIGW_LOG_LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("aigw starts");
    let _gateway = Running(child);
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while post(&base).await != Some(200) {
        assert!(Instant::now() < deadline, "the gateway never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // More connections than the gateway has descriptors for; they sit in the backlog
    // while every accept fails, for about a second of failures every 20 ms.
    let mut held = Vec::new();
    for _ in 0..FD_LIMIT * 2 {
        held.push(TcpStream::connect(addr).await.expect("connects"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while warn_lines(&log) == 0 {
        assert!(Instant::now() < deadline, "no warning in the log");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lines = warn_lines(&log);
    assert!(
        (1..=4).contains(&lines),
        "rate-limited to about one line a second, not one per failure: {lines} lines"
    );

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    while post(&base).await != Some(200) {
        assert!(Instant::now() < deadline, "the gateway did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = reqwest::get(format!("http://{status_addr}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("aigw_accept_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no aigw_accept_errors_total in {metrics}"));
    assert!(
        failures > lines as u64,
        "every failure is counted, logged or not: {failures} failures, {lines} lines"
    );
    let _ = std::fs::remove_file(log);
}
