//! Many replicas, one set of limits: three real `aigw` processes share one real
//! `redis-server` (started here on a free loopback port, without persistence, and stopped
//! at the end), and a consumer's token limit holds across all three under round-robin
//! load; when Redis goes away each keeps serving under its own local counters and counts
//! the errors, and when Redis is back the shared counting resumes.
//!
//! Needs `redis-server` and `openssl` on the PATH (`.ci/run` installs Debian's).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AIGW: &str = env!("CARGO_BIN_EXE_aigw");

/// The emulator's answer to the test question: 7 prompt and 24 completion tokens.
const TOKENS: u64 = 31;

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("has an address")
}

/// Kills a child process when dropped, so none outlives a failed test.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `redis-server` of our own: loopback only, no RDB or AOF files.
struct Redis {
    port: u16,
    process: Option<Running>,
    /// With TLS: the certificate and key files it serves with.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Redis {
    fn start() -> Redis {
        Redis::start_with(None)
    }

    /// A Redis that speaks only TLS, with a self-signed certificate made by `openssl`.
    fn start_tls() -> Redis {
        let dir = std::env::temp_dir();
        let stem = format!("aigw-redis-{}", std::process::id());
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(made.success(), "openssl made a certificate");
        Redis::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Redis {
        let mut redis = Redis {
            port: free_port().port(),
            process: None,
            tls,
        };
        redis.resume();
        redis
    }

    /// Starts (again) on the same port, empty.
    fn resume(&mut self) {
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &self.tls {
            None => {
                command.arg("--port").arg(self.port.to_string());
            }
            Some((cert, key)) => {
                command
                    .args(["--port", "0", "--tls-port"])
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(cert)
                    .arg("--tls-key-file")
                    .arg(key)
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install Debian's redis-server; .ci/run does)");
        self.process = Some(Running(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        // A TLS port cannot be pinged in plain text; listening is enough there.
        while !(self.answers_ping() || self.tls.is_some() && self.listens()) {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        self.process = None;
    }

    fn listens(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.process = None;
        if let Some((cert, key)) = &self.tls {
            let _ = std::fs::remove_file(cert);
            let _ = std::fs::remove_file(key);
        }
    }
}

/// Routes: `/count` allows 300 tokens an hour, `/reset` 40 per 2-second window, `/fallback`
/// 100 an hour; all counted per consumer in the shared Redis.
fn deck(redis_port: u16) -> String {
    let route = |name: &str, limit: u64, window: u64| {
        format!(
            "  - name: {name}\n    paths: [/{name}]\n    plugins:\n    - name: ai-rate-limiting-advanced\n      config:\n        strategy: redis\n        redis: {{host: 127.0.0.1, port: {redis_port}, timeout: 500}}\n        window_type: fixed\n        llm_providers:\n        - {{name: bedrock, limit: [{limit}], window_size: [{window}]}}\n"
        )
    };
    format!(
        "_format_version: \"3.0\"\nconsumers:\n- username: alice\n  keyauth_credentials:\n  - key: key-alice\nservices:\n- name: svc\n  routes:\n{}{}{}plugins:\n- name: key-auth\n- name: ai-proxy-advanced\n  config:\n    targets:\n    - model: {{provider: bedrock, name: m, options: {{bedrock: {{aws_region: us-west-2}}}}}}\n      route_type: llm/v1/chat\n",
        route("count", 300, 3600),
        route("reset", 40, 2),
        route("fallback", 100, 3600),
    )
}

struct Replica {
    _process: Running,
    data: String,
    status: String,
}

fn start_replica(config: &PathBuf, emulator_url: &str) -> Replica {
    let data = free_port();
    let status = free_port();
    let child = Command::new(AIGW)
        // The config path as the Kubernetes manifests give it.
        .env("AIGW_CONFIG", config)
        .arg("--listen")
        .arg(data.to_string())
        .arg("--status-listen")
        .arg(status.to_string())
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator_url)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("OTEL_SDK_DISABLED", "true")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aigw starts");
    Replica {
        _process: Running(child),
        data: format!("http://{data}"),
        status: format!("http://{status}"),
    }
}

/// `count` replicas on `config`, each answering `/health` before this returns.
async fn start_replicas(
    count: usize,
    config: &PathBuf,
    emulator_url: &str,
    client: &reqwest::Client,
) -> Vec<Replica> {
    let replicas: Vec<Replica> = (0..count)
        .map(|_| start_replica(config, emulator_url))
        .collect();
    for replica in &replicas {
        let deadline = Instant::now() + Duration::from_secs(30);
        while client
            .get(format!("{}/health", replica.data))
            .send()
            .await
            .map_or(true, |r| !r.status().is_success())
        {
            assert!(Instant::now() < deadline, "a replica did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    replicas
}

/// One question to `route` on `replica`: the status and the remaining figure.
async fn ask(client: &reqwest::Client, replica: &Replica, route: &str) -> (u16, Option<u64>) {
    let response = client
        .post(format!("{}/{route}", replica.data))
        .header("apikey", "key-alice")
        .header("content-type", "application/json")
        .body(r#"{"messages":[{"role":"user","content":"Who is considered the greatest Polish writer?"}]}"#)
        .send()
        .await
        .expect("the replica answers");
    let remaining = response
        .headers()
        .get(format!(
            "x-ai-ratelimit-remaining-{}-bedrock",
            window_of(route)
        ))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (response.status().as_u16(), remaining)
}

fn window_of(route: &str) -> u64 {
    match route {
        "reset" => 2,
        _ => 3600,
    }
}

/// Asks round-robin over the replicas until all three refuse in a row: the statuses and
/// remaining figures of the admitted requests, in order.
async fn until_all_refuse(client: &reqwest::Client, replicas: &[Replica], route: &str) -> Vec<u64> {
    let mut admitted = Vec::new();
    let mut refused_in_a_row = 0;
    for i in 0.. {
        let (status, remaining) = ask(client, &replicas[i % replicas.len()], route).await;
        match status {
            200 => {
                refused_in_a_row = 0;
                admitted.push(remaining.expect("an admitted answer names what is left"));
            }
            429 => refused_in_a_row += 1,
            other => panic!("unexpected status {other}"),
        }
        if refused_in_a_row == replicas.len() {
            break;
        }
        assert!(i < 200, "the limit never bit");
    }
    admitted
}

async fn redis_errors(client: &reqwest::Client, replica: &Replica) -> u64 {
    let text = client
        .get(format!("{}/metrics", replica.status))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("aigw_ratelimit_redis_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the error counter is exported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_limit_through_redis() {
    let mut redis = Redis::start();
    let emulator = aigw_emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("emulator starts");
    let config =
        std::env::temp_dir().join(format!("aigw-shared-limits-{}.yaml", std::process::id()));
    std::fs::write(&config, deck(redis.port)).expect("writes the deck");
    let client = reqwest::Client::new();
    let replicas = start_replicas(3, &config, &emulator.endpoint_url(), &client).await;

    // One limit across three replicas: the remaining figure counts down by one answer's
    // tokens whichever replica answers, and the total admitted stays within one answer's
    // tokens of the limit (each answer is charged before the next request is sent).
    let admitted = until_all_refuse(&client, &replicas, "count").await;
    let expected: Vec<u64> = (0..admitted.len() as u64)
        .map(|i| 300 - i * TOKENS)
        .collect();
    assert_eq!(admitted, expected, "remaining figures across the replicas");
    let total = admitted.len() as u64 * TOKENS;
    assert!(
        (300..300 + TOKENS).contains(&total),
        "{total} tokens admitted for a limit of 300"
    );

    // The window resets for every replica: after the 2-second window ends, each admits.
    until_all_refuse(&client, &replicas, "reset").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, remaining) = ask(&client, &replicas[1], "reset").await;
    assert_eq!((status, remaining), (200, Some(40)), "a fresh window");

    // Redis gone: every replica keeps serving under its own local counters (so the three
    // together admit more than one shared limit) and counts the errors.
    let errors_before: u64 = {
        let mut sum = 0;
        for replica in &replicas {
            sum += redis_errors(&client, replica).await;
        }
        sum
    };
    redis.stop();
    let local = until_all_refuse(&client, &replicas, "fallback").await;
    assert!(
        local.len() as u64 * TOKENS >= 2 * 100,
        "each replica limits on its own while Redis is away: {local:?}"
    );
    let mut errors_after = 0;
    for replica in &replicas {
        let errors = redis_errors(&client, replica).await;
        assert!(errors > 0, "every replica counted Redis errors");
        errors_after += errors;
    }
    assert!(errors_after > errors_before);

    // Redis back (empty): once the replicas reach it again, counting is shared once more.
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        let (status, remaining) = ask(&client, &replicas[i % 3], "fallback").await;
        i += 1;
        if status == 200 && remaining == Some(100) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The request just admitted was charged to Redis; the rest of the shared 100 tokens
    // go to whichever replicas ask next, and then all three refuse.
    let resumed = until_all_refuse(&client, &replicas, "fallback").await;
    let total = (resumed.len() as u64 + 1) * TOKENS;
    assert!(
        total < 100 + TOKENS,
        "shared again: {total} tokens admitted after Redis came back"
    );
    let _ = std::fs::remove_file(&config);
}

/// With `sync_rate` above 0 a replica sends its charges in batches: another replica sees
/// them once the batch went out, while the replica itself counts them at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_charges_reach_the_other_replicas() {
    let redis = Redis::start();
    let emulator = aigw_emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("emulator starts");
    let deck = deck(redis.port).replace(
        "        window_type: fixed\n",
        "        window_type: fixed\n        sync_rate: 1\n",
    );
    let config =
        std::env::temp_dir().join(format!("aigw-batched-limits-{}.yaml", std::process::id()));
    std::fs::write(&config, deck).expect("writes the deck");
    let client = reqwest::Client::new();
    let replicas = start_replicas(2, &config, &emulator.endpoint_url(), &client).await;
    // The first replica counts its own answers before any batch is sent.
    assert_eq!(ask(&client, &replicas[0], "count").await, (200, Some(300)));
    assert_eq!(
        ask(&client, &replicas[0], "count").await,
        (200, Some(300 - TOKENS))
    );
    // The second sees them once the first replica's batch reached Redis (its own answers
    // count for it at once too).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut own = 0;
    loop {
        let (status, remaining) = ask(&client, &replicas[1], "count").await;
        assert_eq!(status, 200);
        if remaining == Some(300 - 2 * TOKENS - own * TOKENS) {
            break;
        }
        own += 1;
        assert!(
            Instant::now() < deadline,
            "the first replica's batch never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(redis);
    let _ = std::fs::remove_file(&config);
}

/// `ssl: true` reaches a Redis that speaks only TLS (with Kong's default `ssl_verify:
/// false`, a self-signed certificate is taken): two replicas share the count through it and
/// no Redis call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls() {
    let redis = Redis::start_tls();
    let emulator = aigw_emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("emulator starts");
    let deck = deck(redis.port).replace("timeout: 500}", "timeout: 500, ssl: true}");
    let config = std::env::temp_dir().join(format!("aigw-tls-limits-{}.yaml", std::process::id()));
    std::fs::write(&config, deck).expect("writes the deck");
    let client = reqwest::Client::new();
    let replicas = start_replicas(2, &config, &emulator.endpoint_url(), &client).await;
    assert_eq!(ask(&client, &replicas[0], "count").await, (200, Some(300)));
    assert_eq!(
        ask(&client, &replicas[1], "count").await,
        (200, Some(300 - TOKENS))
    );
    for replica in &replicas {
        assert_eq!(
            redis_errors(&client, replica).await,
            0,
            "every Redis call succeeded"
        );
    }
    drop(redis);
    let _ = std::fs::remove_file(&config);
}
