//! The status page in a real browser: Debian's `chromium`, headless, driven by
//! `tests/browser/status_page.mjs` (playwright-core), loads the page from a live gateway's
//! status listener, sees both seed targets serve, sees one go out of rotation while the
//! emulator throttles it and come back once the fault is gone, and leaves screenshots in
//! `target/`. The page must ask nothing of any origin but the status listener's.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use aigw_emulator::{Fault, ModelKnobs};
use aigw_tests::{Stack, config_from, seed_yaml, workspace_file};
use serde_json::json;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

const NOVA: &str = "us.amazon.nova-micro-v1:0";
const LLAMA: &str = "us.meta.llama3-3-70b-instruct-v1:0";
const PHASE_TIMEOUT: Duration = Duration::from_secs(45);

/// The seed deck with passive health checks on: two throttled answers take a target out
/// for 3 s, and a 429 (already sent, hence `non_idempotent`) fails over to the other
/// target so clients never see it.
fn deck() -> aigw_config::GatewayConfig {
    let yaml = seed_yaml();
    let from = "          algorithm: round-robin\n";
    assert!(yaml.contains(from), "the seed deck's balancer changed");
    config_from(&yaml.replace(
        from,
        "          algorithm: round-robin\n          max_fails: 2\n          fail_timeout: 3000\n          \
         failover_criteria: [error, timeout, http_429, non_idempotent]\n",
    ))
}

/// Fails (never skips) when the browser or the driver's packages are missing.
fn browser_prerequisites() -> std::path::PathBuf {
    let chromium = std::env::var("AIGW_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install it with `apt-get install -y chromium` (or set \
         AIGW_CHROMIUM to a Chromium binary); .ci/run does this when it is missing"
    );
    let browser_dir = workspace_file("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run `npm ci --prefix tests/browser` \
         (.ci/run does this when it is missing)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "`node` is not on PATH: install Node.js (20 or later) to run the browser test"
    );
    browser_dir
}

/// The node driver, killed (with its browser) if the test fails before it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The driver's stdout, line by line, read on a thread of its own.
fn lines_of(child: &mut Child) -> UnboundedReceiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn expect_line(lines: &mut UnboundedReceiver<String>, prefix: &str) -> String {
    let line = tokio::time::timeout(PHASE_TIMEOUT, lines.recv())
        .await
        .unwrap_or_else(|_| panic!("the browser driver did not say {prefix} in time"))
        .unwrap_or_else(|| {
            panic!("the browser driver ended before saying {prefix} (see its stderr above)")
        });
    assert!(line.starts_with(prefix), "expected {prefix}, got {line:?}");
    line
}

fn tell(stdin: &mut ChildStdin, line: &str) {
    writeln!(stdin, "{line}").expect("the browser driver reads its stdin");
    stdin.flush().expect("flush");
}

/// Chat to the seed route until aborted, a streamed request every other time so the page
/// has a time to first token to show.
fn keep_traffic_flowing(stack: &Stack) -> tokio::task::JoinHandle<()> {
    let url = stack.url("/bedrock-route");
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        for n in 0u64.. {
            let body = json!({
                "messages": [{"role": "user", "content": format!("status page question {n}")}],
                "stream": n % 2 == 1,
            });
            if let Ok(response) = client.post(&url).json(&body).send().await {
                let _ = response.bytes().await;
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_a_target_go_out_of_rotation_and_come_back() {
    let browser_dir = browser_prerequisites();
    let stack = Stack::start(&deck()).await;
    let knobs = stack.emulator.knobs();
    knobs.set_default(ModelKnobs {
        latency: Duration::from_millis(40),
        token_delay: Duration::from_millis(3),
        ..ModelKnobs::default()
    });

    // The page and its assets are on the status listener, with a strict policy; the data
    // port, which anyone reaches, serves none of them.
    let page_url = stack.status_url("/");
    let response = reqwest::get(&page_url).await.expect("status page answers");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let csp = aigw_tests::header_text(&headers, "content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(
        aigw_tests::header_text(&headers, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let html = response.text().await.expect("page");
    assert!(
        !html.contains("<style") && !html.contains("<script>"),
        "{html}"
    );
    for path in ["/", "/status/page.js", "/status/page.css"] {
        let status = reqwest::get(stack.url(path))
            .await
            .expect("answers")
            .status();
        assert_ne!(status, 200, "{path} on the data port");
        let status = reqwest::get(stack.status_url(path))
            .await
            .expect("answers")
            .status();
        assert_eq!(status, 200, "{path} on the status listener");
    }

    let traffic = keep_traffic_flowing(&stack);
    let shots = workspace_file("target");
    std::fs::create_dir_all(&shots).expect("target/ exists");
    let mut driver = Driver(
        Command::new("node")
            .arg(browser_dir.join("status_page.mjs"))
            .arg(&page_url)
            .arg(&shots)
            .current_dir(&browser_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts"),
    );
    let mut stdin = driver.0.stdin.take().expect("piped stdin");
    let mut lines = lines_of(&mut driver.0);

    expect_line(&mut lines, "SERVING").await;
    knobs.set_model(NOVA, ModelKnobs::with_fault(Fault::throttling(), None));
    // The throttling fails over unseen by clients; a malformed request gives the recent
    // errors table a row.
    let refused = reqwest::Client::new()
        .post(stack.url("/bedrock-route"))
        .json(&json!({"messages": "not a list"}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(refused.status(), 400);
    tell(&mut stdin, "THROTTLED");
    let out = expect_line(&mut lines, "UNHEALTHY ").await;
    assert_eq!(
        out,
        format!("UNHEALTHY bedrock/{NOVA}"),
        "only nova was throttled"
    );

    knobs.clear_model(NOVA);
    tell(&mut stdin, "REPAIRED");
    expect_line(&mut lines, "HEALTHY ").await;
    expect_line(&mut lines, "OK").await;
    traffic.abort();
    drop(stdin);

    let status = loop {
        if let Some(status) = driver.0.try_wait().expect("node's status") {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "the browser driver failed: {status}");
    assert!(shots.join("status-page.png").is_file());
    let served = stack.emulator.requests();
    assert!(served.iter().any(|r| r.model_id == LLAMA));
}
