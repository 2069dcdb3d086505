//! The gateway as a child process, so its CPU time and memory are its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Linux reports CPU time in clock ticks of 1/100 s on every platform Rust targets here.
const TICKS_PER_SECOND: f64 = 100.0;

/// The LiteLLM proxy's master key in the benchmark.
pub const LITELLM_KEY: &str = "sk-aigw-bench";

pub struct Gateway {
    child: Child,
    addr: SocketAddr,
}

impl Gateway {
    /// Runs the release `aigw` next to this binary with the unchanged seed config, its
    /// Bedrock endpoint set by the SDK's own environment convention.
    pub async fn start(emulator_url: &str, extra_env: &[(String, String)]) -> Result<Gateway> {
        let config =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/ai-proxy-advanced.yaml");
        Gateway::start_with_config(emulator_url, &config, extra_env).await
    }

    /// Runs the release `aigw` with the decK file at `config`.
    /// `extra_env` comes last, so it can override the defaults (e.g. `AIGW_LOG_LEVEL=info`).
    pub async fn start_with_config(
        emulator_url: &str,
        config: &std::path::Path,
        extra_env: &[(String, String)],
    ) -> Result<Gateway> {
        let binary = sibling_binary("aigw", "aigw")?;
        let addr = free_port()?;
        let mut command = Command::new(&binary);
        command
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(addr.to_string())
            .args(["--status-listen", "off"])
            .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator_url)
            .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AIGW_LOG_LEVEL", "warn")
            .env_remove("RUST_LOG")
            .envs(extra_env.iter().map(|(k, v)| (k, v)));
        let child = spawn_quiet(&mut command, &binary)?;
        let gateway = Gateway { child, addr };
        gateway.wait_ready().await?;
        Ok(gateway)
    }

    async fn wait_ready(&self) -> Result<()> {
        self.wait_for("/health", Duration::from_secs(30)).await
    }

    async fn wait_for(&self, path: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(response) = client.get(format!("{}{path}", self.url())).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} did not become ready within {} s",
            self.url(),
            limit.as_secs()
        )
    }

    /// Runs a LiteLLM proxy (`litellm` on PATH, from `pip install 'litellm[proxy]'`) over the
    /// same two emulated Bedrock models, load-balanced under one model name, so the peer is
    /// measured in the same run. `None` when LiteLLM is not installed.
    pub async fn start_litellm(emulator_url: &str) -> Result<Option<Gateway>> {
        let installed = Command::new("litellm")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            return Ok(None);
        }
        let addr = free_port()?;
        let config = std::env::temp_dir().join(format!("aigw-bench-litellm-{}.yaml", addr.port()));
        let target = |model: &str| {
            format!(
                "  - model_name: bedrock-route\n    litellm_params:\n      model: bedrock/converse/{model}\n      \
                 aws_region_name: us-west-2\n      aws_access_key_id: AKIDBENCH\n      \
                 aws_secret_access_key: bench\n      aws_bedrock_runtime_endpoint: {emulator_url}\n"
            )
        };
        let yaml = format!(
            "model_list:\n{}{}general_settings:\n  master_key: {LITELLM_KEY}\n",
            target("us.amazon.nova-micro-v1:0"),
            target("us.meta.llama3-3-70b-instruct-v1:0"),
        );
        std::fs::write(&config, yaml).context("writing the LiteLLM config")?;
        let child = Command::new("litellm")
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(addr.port().to_string())
            .env("LITELLM_LOG", "ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting litellm")?;
        let proxy = Gateway { child, addr };
        proxy
            .wait_for("/health/liveliness", Duration::from_secs(120))
            .await?;
        Ok(Some(proxy))
    }

    /// Runs nginx (`apt-get install nginx-light`) as a plain reverse proxy in front of the
    /// emulator, with pooled keep-alive upstream connections and two workers: the reference
    /// for what a bare proxy hop costs on this machine. `None` when nginx is not installed.
    pub async fn start_nginx(emulator_url: &str) -> Result<Option<Gateway>> {
        let Some(binary) = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
        else {
            return Ok(None);
        };
        let upstream = emulator_url
            .strip_prefix("http://")
            .context("the emulator URL is not http://")?;
        let addr = free_port()?;
        let prefix = std::env::temp_dir().join(format!("aigw-bench-nginx-{}", addr.port()));
        std::fs::create_dir_all(&prefix).context("creating the nginx prefix")?;
        let dir = prefix.display();
        let config = format!(
            "worker_processes 2;\n\
             error_log {dir}/error.log warn;\n\
             pid {dir}/nginx.pid;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {dir}/body;\n\
               proxy_temp_path {dir}/proxy;\n\
               fastcgi_temp_path {dir}/fastcgi;\n\
               uwsgi_temp_path {dir}/uwsgi;\n\
               scgi_temp_path {dir}/scgi;\n\
               upstream emulator {{ server {upstream}; keepalive 256; }}\n\
               server {{\n\
                 listen {addr};\n\
                 location / {{\n\
                   proxy_pass http://emulator;\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n\
                   proxy_set_header Host $http_host;\n\
                   proxy_buffering off;\n\
                 }}\n\
               }}\n\
             }}\n"
        );
        let config_path = prefix.join("nginx.conf");
        std::fs::write(&config_path, config).context("writing the nginx config")?;
        let child = Command::new(&binary)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&config_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let proxy = Gateway { child, addr };
        proxy
            .wait_listening()
            .await
            .with_context(|| format!("nginx did not start (see {dir}/error.log)"))?;
        Ok(Some(proxy))
    }

    /// Runs this crate's `aigw-bare-proxy` in front of the emulator: one hop through
    /// tokio and hyper with nothing else in it, the floor under aigw's own stack.
    pub async fn start_bare_proxy(emulator_url: &str) -> Result<Gateway> {
        let binary = sibling_binary("aigw-bare-proxy", "aigw-bench")?;
        let addr = free_port()?;
        let mut command = Command::new(&binary);
        command.arg(addr.to_string()).arg(emulator_url);
        let child = spawn_quiet(&mut command, &binary)?;
        let proxy = Gateway { child, addr };
        proxy.wait_listening().await?;
        Ok(proxy)
    }

    /// A gateway process started elsewhere (a peer), listening on `addr`; stopped on drop.
    pub fn adopt(child: Child, addr: SocketAddr) -> Gateway {
        Gateway { child, addr }
    }

    pub async fn wait_listening(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.addr).await.is_err() {
            if Instant::now() > deadline {
                bail!("nothing listened on {} within 10 s", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// User plus system CPU seconds the gateway has used so far, with its worker processes
    /// (nginx, LiteLLM) counted in.
    pub fn cpu_seconds(&self) -> f64 {
        let pid = self.pid().to_string();
        let mut ticks = 0.0;
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0.0;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised command name: ppid is the 4th of the line, utime
            // and stime the 14th and 15th.
            let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            if name != pid && fields.get(1) != Some(&pid.as_str()) {
                continue;
            }
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            ticks += field(11) + field(12);
        }
        ticks / TICKS_PER_SECOND
    }

    fn status_kib(&self, key: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    }

    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// File descriptors the gateway has open (sockets, files, epoll, ...).
    #[allow(dead_code)] // only aigw-soak watches descriptors
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |dir| dir.count())
    }
}

impl Drop for Gateway {
    /// SIGTERM first: nginx's master then stops its workers (SIGKILL would orphan them,
    /// still holding the port), aigw and LiteLLM shut down cleanly. SIGKILL only if the
    /// process is still there after two seconds.
    fn drop(&mut self) {
        let asked = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if asked {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace binary `name` (from package `package`) next to this one. Under
/// `cargo run` it is (re)built first, so an edit to the gateway is never measured with a
/// stale binary; run directly, the benchmark builds it only when it is missing.
pub fn sibling_binary(name: &str, package: &str) -> Result<PathBuf> {
    let here = std::env::current_exe().context("locating this binary")?;
    let binary = here.with_file_name(name);
    let cargo = std::env::var_os("CARGO");
    if binary.exists() && cargo.is_none() {
        return Ok(binary);
    }
    let release = here.parent().is_some_and(|dir| dir.ends_with("release"));
    let mut build = Command::new(cargo.unwrap_or_else(|| "cargo".into()));
    build.args(["build", "--quiet", "-p", package]);
    if release {
        build.arg("--release");
    }
    let status = build
        .status()
        .with_context(|| format!("running cargo build -p {package}"))?;
    if !status.success() || !binary.exists() {
        bail!("could not build {name} at {}", binary.display());
    }
    Ok(binary)
}

/// Spawns `command`, the program at `binary`, with its stdout discarded.
pub fn spawn_quiet(command: &mut Command, binary: &Path) -> Result<Child> {
    command
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

/// A `redis-server` of the benchmark's own on a free loopback port, without persistence;
/// `None` when Redis is not installed (`apt-get install redis-server`).
pub async fn start_redis() -> Result<Option<(Child, u16)>> {
    let port = free_port()?.port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn();
    let Ok(child) = child else { return Ok(None) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("redis-server did not listen on {port}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Some((child, port)))
}

/// The seed decK file with an ai-rate-limiting-advanced plugin on its route counting
/// total tokens per client in the Redis at `port`, with a limit no run reaches: every
/// request pays the check (one `MGET`) and the synchronous charge (one script).
pub fn seed_with_redis_limit(port: u16) -> Result<PathBuf> {
    let seed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/ai-proxy-advanced.yaml");
    let yaml = std::fs::read_to_string(&seed).context("reading the seed config")?;
    let plugin = format!(
        "    plugins:\n    - name: ai-rate-limiting-advanced\n      config:\n        strategy: redis\n        sync_rate: 0\n        redis: {{host: 127.0.0.1, port: {port}}}\n        llm_providers:\n        - {{name: bedrock, limit: [1000000000000], window_size: [3600]}}\n"
    );
    let limited = yaml.replacen("    plugins:\n", &plugin, 1);
    if limited == yaml {
        bail!("the seed config has no route plugins to extend");
    }
    let path = std::env::temp_dir().join(format!("aigw-bench-redis-limit-{port}.yaml"));
    std::fs::write(&path, limited).context("writing the limited config")?;
    Ok(path)
}

pub fn free_port() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// Opens `count` keep-alive connections that each made one request and then sit idle.
pub async fn hold_idle_connections(addr: &SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            break;
        };
        let request = b"GET /health HTTP/1.1\r\nhost: bench\r\n\r\n";
        let mut buffer = [0u8; 1024];
        if stream.write_all(request).await.is_err() || stream.read(&mut buffer).await.is_err() {
            break;
        }
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    held
}
