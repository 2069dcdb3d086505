//! The `aigw` binary's lifecycle, as an operator drives it: SIGHUP reloads the decK file
//! (a bad one is logged and the old routes keep serving), SIGTERM drains in-flight requests
//! and exits 0, `aigw check` never prints a key, no log level shows a credential, and the
//! operator's endpoints are on the status listener the command line names.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aigw_emulator::ModelKnobs;

const AIGW: &str = env!("CARGO_BIN_EXE_aigw");

fn seed() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/ai-proxy-advanced.yaml"),
    )
    .expect("seed config")
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("aigw-signals-{}-{name}", std::process::id()))
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("has an address")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

async fn post(url: &str) -> Option<u16> {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(r#"{"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills the child if the test fails midway, so no gateway outlives it.
/// The real binary serving `config` against the emulator at `emulator_url`, logging at
/// `log_level` into `log`.
fn start_gateway(
    config: &Path,
    emulator_url: &str,
    log_level: &str,
    log: &Path,
) -> (Running, SocketAddr) {
    let addr = free_port();
    let child = Command::new(AIGW)
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(addr.to_string())
        .args(["--status-listen", "off"])
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator_url)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AIGW_LOG_LEVEL", log_level)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("aigw starts");
    (Running(child), addr)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn sighup_reloads_and_sigterm_drains_then_exits_zero() {
    let emulator = aigw_emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("emulator starts");
    let config = temp_path("config.yaml");
    std::fs::write(&config, seed()).expect("writes config");
    let log = temp_path("log.txt");
    let (mut gateway, addr) = start_gateway(&config, &emulator.endpoint_url(), "info", &log);
    let base = format!("http://{addr}");
    eventually("the gateway to serve", async || {
        post(&format!("{base}/bedrock-route")).await == Some(200)
    })
    .await;

    std::fs::write(&config, seed().replace("/bedrock-route", "/moved-route")).expect("rewrites");
    signal(&gateway.0, "HUP");
    eventually("the reloaded route", async || {
        post(&format!("{base}/moved-route")).await == Some(200)
    })
    .await;
    assert_eq!(post(&format!("{base}/bedrock-route")).await, Some(404));

    std::fs::write(&config, seed().replace("round-robin", "round-robbin")).expect("rewrites");
    signal(&gateway.0, "HUP");
    eventually("the refused reload to be logged", async || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("config reload refused"))
    })
    .await;
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains("round-robbin"),
        "the reason is logged: {logged}"
    );
    assert_eq!(
        post(&format!("{base}/moved-route")).await,
        Some(200),
        "the previous config keeps serving"
    );

    emulator.knobs().set_default(ModelKnobs {
        latency: Duration::from_millis(800),
        ..ModelKnobs::default()
    });
    let seen = emulator.emulator().request_count();
    let in_flight = tokio::spawn({
        let url = format!("{base}/moved-route");
        async move { post(&url).await }
    });
    eventually("the request to reach the upstream", async || {
        emulator.emulator().request_count() > seen
    })
    .await;
    signal(&gateway.0, "TERM");
    assert_eq!(
        in_flight.await.expect("joins"),
        Some(200),
        "in-flight request finished"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = gateway.0.try_wait().expect("waits") {
            break status;
        }
        assert!(Instant::now() < deadline, "aigw did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_file(log);
}

#[test]
fn check_describes_key_auth_without_printing_keys() {
    let key = "sk-never-print-me-4d2";
    let with_auth = seed()
        .replacen(
            "services:",
            &format!(
                "consumers:\n- username: alice\n  keyauth_credentials:\n  - key: {key}\nservices:"
            ),
            1,
        )
        .replacen("    plugins:\n", "    plugins:\n    - name: key-auth\n", 1);
    let config = temp_path("check.yaml");
    std::fs::write(&config, with_auth).expect("writes");
    let output = Command::new(AIGW)
        .arg("check")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("aigw check runs");
    let _ = std::fs::remove_file(&config);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("key-auth: 1 consumer key(s)"), "{stdout}");
    assert!(
        !stdout.contains(key) && !stderr.contains(key),
        "{stdout}{stderr}"
    );
}

#[tokio::test]
async fn keys_sent_by_clients_never_reach_the_log() {
    let emulator = aigw_emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("emulator starts");
    let key = "sk-client-key-never-logged-9b1";
    let wrong = "sk-wrong-key-never-logged-3c7";
    let with_auth = seed()
        .replacen(
            "services:",
            &format!(
                "consumers:\n- username: alice\n  keyauth_credentials:\n  - key: {key}\nservices:"
            ),
            1,
        )
        .replacen("    plugins:\n", "    plugins:\n    - name: key-auth\n", 1)
        // Target credentials from the file, which no log line may show either.
        .replace(
            "            allow_override: false\n",
            "            allow_override: false\n            aws_access_key_id: AKIDFILE\n            aws_secret_access_key: file-secret-never-logged\n",
        );
    assert!(with_auth.contains("file-secret-never-logged"));
    let config = temp_path("keys.yaml");
    std::fs::write(&config, with_auth).expect("writes config");
    let log = temp_path("keys-log.txt");
    // The most talkative level aigw has: nothing at it may show a key.
    let (mut gateway, addr) = start_gateway(&config, &emulator.endpoint_url(), "debug", &log);
    let url = format!("http://{addr}/bedrock-route");
    eventually("the gateway to serve", async || {
        post(&url).await == Some(401)
    })
    .await;
    let client = reqwest::Client::new();
    let body = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let send = |request: reqwest::RequestBuilder| async move {
        request
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answers")
            .status()
            .as_u16()
    };
    assert_eq!(send(client.post(&url).bearer_auth(key)).await, 200);
    assert_eq!(send(client.post(&url).header("apikey", key)).await, 200);
    assert_eq!(send(client.post(format!("{url}?apikey={key}"))).await, 200);
    assert_eq!(send(client.post(&url).bearer_auth(wrong)).await, 401);
    assert_eq!(
        send(client.post(format!("{url}?apikey={wrong}"))).await,
        401
    );
    signal(&gateway.0, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway.0.try_wait().expect("waits").is_none() {
        assert!(Instant::now() < deadline, "aigw did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(!logged.is_empty(), "the gateway logged at debug level");
    assert!(!logged.contains(key), "a valid key was logged");
    assert!(!logged.contains(wrong), "a wrong key was logged");
    assert!(
        !logged.contains("file-secret-never-logged"),
        "a target's secret was logged"
    );
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_file(log);
}

/// Waits up to 20 s for `child` to exit after SIGTERM; its exit status.
async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    signal(child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            return status;
        }
        assert!(Instant::now() < deadline, "aigw did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn at_rust_log_trace_no_aws_credential_reaches_the_log() {
    let emulator = aigw_emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("emulator starts");
    let with_keys = seed().replace(
        "            allow_override: false\n",
        "            allow_override: false\n            aws_access_key_id: AKIDTRACEFILE\n            aws_secret_access_key: trace-file-secret\n",
    );
    let config = temp_path("trace.yaml");
    std::fs::write(&config, with_keys).expect("writes config");
    let log = temp_path("trace-log.txt");
    let addr = free_port();
    let child = Command::new(AIGW)
        .arg("--config")
        .arg(&config)
        .args(["--listen", &addr.to_string(), "--status-listen", "off"])
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", "AKIDTRACEENV")
        .env("AWS_SECRET_ACCESS_KEY", "trace-env-secret")
        .env("RUST_LOG", "trace")
        .stdout(std::fs::File::create(&log).expect("log file"))
        .stderr(std::fs::File::create(temp_path("trace-stderr.txt")).expect("log file"))
        .spawn()
        .expect("aigw starts");
    let mut gateway = Running(child);
    let url = format!("http://{addr}/bedrock-route");
    eventually("the gateway to serve", async || {
        post(&url).await == Some(200)
    })
    .await;
    // A stream too: the SDK's event-stream reader has trace lines of its own.
    let streamed = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(streamed.status(), 200);
    streamed.text().await.expect("the whole stream");
    assert!(terminate(&mut gateway.0).await.success());

    let mut logged = std::fs::read_to_string(&log).expect("log");
    logged.push_str(&std::fs::read_to_string(temp_path("trace-stderr.txt")).expect("log"));
    assert!(
        logged.contains("TRACE"),
        "the gateway logged at trace level"
    );
    for secret in [
        "AKIDTRACEFILE",
        "trace-file-secret",
        "AKIDTRACEENV",
        "trace-env-secret",
    ] {
        assert!(!logged.contains(secret), "{secret} was logged");
    }
    for path in [config, log, temp_path("trace-stderr.txt")] {
        let _ = std::fs::remove_file(path);
    }
}

#[tokio::test]
async fn the_status_listener_named_on_the_command_line_serves_the_operator_endpoints() {
    let emulator = aigw_emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("emulator starts");
    let config = temp_path("status.yaml");
    std::fs::write(&config, seed()).expect("writes config");
    let (addr, status_addr) = (free_port(), free_port());
    let child = Command::new(AIGW)
        .arg("--config")
        .arg(&config)
        .args(["--listen", &addr.to_string()])
        .args(["--status-listen", &status_addr.to_string()])
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env_remove("AIGW_STATUS_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aigw starts");
    let mut gateway = Running(child);
    let url = format!("http://{addr}/bedrock-route");
    eventually("the gateway to serve", async || {
        post(&url).await == Some(200)
    })
    .await;
    let get = async |url: String| {
        let response = reqwest::get(url).await.expect("answers");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    };
    let (status, metrics) = get(format!("http://{status_addr}/metrics")).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("aigw_requests_total"), "{metrics}");
    assert_eq!(
        get(format!("http://{status_addr}/status/targets")).await.0,
        200
    );
    assert_eq!(get(format!("http://{status_addr}/health")).await.0, 200);
    assert_eq!(get(format!("http://{addr}/metrics")).await.0, 404);
    assert_eq!(get(format!("http://{addr}/status/targets")).await.0, 404);
    assert_eq!(get(format!("http://{addr}/health")).await.0, 200);
    assert!(terminate(&mut gateway.0).await.success());
    let _ = std::fs::remove_file(config);
}
