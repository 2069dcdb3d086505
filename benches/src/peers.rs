//! Peer gateways measured in the same run as aigw, over the same emulator and the same two
//! Bedrock models at equal weight: TensorZero (its Rust gateway, run from the PyPI wheel)
//! and Portkey's gateway (Node, from npm). Each is installed on first use into a cache under
//! the target directory and skipped with a message when it cannot be installed or started.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{Gateway, free_port};

/// The two models every gateway in the run balances over, as the seed config has them.
pub const MODELS: [&str; 2] = [
    "us.amazon.nova-micro-v1:0",
    "us.meta.llama3-3-70b-instruct-v1:0",
];

/// TensorZero's OpenAI-compatible name for the function that samples both models.
pub const TENSORZERO_MODEL: &str = "tensorzero::function_name::bedrock_route";

/// Where peers are installed: under the target directory, so nothing of theirs is ever
/// committed and `cargo clean` removes them.
fn cache_dir() -> PathBuf {
    crate::target_dir().join("aigw-bench/peers")
}

/// Runs `command` to its end with its output in `log`; whether it succeeded.
fn run_logged(command: &mut Command, log: &Path) -> bool {
    let Ok(file) = std::fs::File::create(log) else {
        return false;
    };
    let Ok(err) = file.try_clone() else {
        return false;
    };
    command
        .stdout(file)
        .stderr(err)
        .status()
        .is_ok_and(|status| status.success())
}

/// The TensorZero gateway from the `tensorzero` wheel in a virtualenv of its own. The wheel
/// has no gateway binary; `tensorzero._start_http_gateway` runs the Rust gateway inside the
/// Python process, which then only waits. `None` (with the reason printed) when Python or
/// the wheel is not available.
pub async fn start_tensorzero(emulator_url: &str) -> Result<Option<Gateway>> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let venv = dir.join("tensorzero");
    let python = venv.join("bin/python");
    let importable = |python: &Path| {
        Command::new(python)
            .args(["-c", "import tensorzero"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !importable(&python) {
        println!(
            "installing TensorZero (pip install tensorzero) into {}",
            venv.display()
        );
        let log = dir.join("tensorzero-install.log");
        let installed = run_logged(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            &log,
        ) && run_logged(
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", "tensorzero"]),
            &log,
        );
        if !installed || !importable(&python) {
            println!(
                "TensorZero could not be installed (see {}); skipping the peer",
                log.display()
            );
            return Ok(None);
        }
    }
    let providers: String = MODELS
        .iter()
        .enumerate()
        .map(|(i, model)| {
            format!(
                "[models.m{i}]\nrouting = [\"bedrock\"]\n\
                 [models.m{i}.providers.bedrock]\ntype = \"aws_bedrock\"\n\
                 model_id = \"{model}\"\nregion = \"us-west-2\"\nendpoint_url = \"{emulator_url}\"\n\n\
                 [functions.bedrock_route.variants.m{i}]\ntype = \"chat_completion\"\nmodel = \"m{i}\"\n\n"
            )
        })
        .collect();
    // Several variants and no experimentation section: TensorZero samples them uniformly,
    // a fresh episode per request. Observability off: no ClickHouse, as aigw exports nothing.
    let config = format!(
        "[gateway.observability]\nenabled = false\n\n\
         [functions.bedrock_route]\ntype = \"chat\"\n\n{providers}"
    );
    let config_path = dir.join("tensorzero.toml");
    std::fs::write(&config_path, config).context("writing the TensorZero config")?;
    let url_file = dir.join("tensorzero.url");
    let _ = std::fs::remove_file(&url_file);
    let script = "import sys, threading, tensorzero\n\
                  gateway = tensorzero._start_http_gateway(config_file=sys.argv[1], \
                  clickhouse_url=None, postgres_url=None, valkey_url=None, async_setup=False)\n\
                  open(sys.argv[2], 'w').write(gateway.base_url)\n\
                  threading.Event().wait()\n";
    let log_path = dir.join("tensorzero.log");
    let log = std::fs::File::create(&log_path).context("creating the TensorZero log")?;
    let child = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&config_path)
        .arg(&url_file)
        // Its provider reads keys from the environment, never the endpoint variable; the
        // endpoint is in the config.
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_REGION", "us-west-2")
        .env_remove("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
        .env_remove("RUST_LOG")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting TensorZero")?;
    let pid = child.id();
    // The gateway names the port it bound only once it is serving.
    let deadline = Instant::now() + Duration::from_secs(60);
    let base_url = loop {
        if let Ok(url) = std::fs::read_to_string(&url_file) {
            if !url.is_empty() {
                break url;
            }
        }
        if Instant::now() > deadline {
            // Adopted only to be stopped.
            drop(Gateway::adopt(child, free_port()?));
            bail!(
                "TensorZero (pid {pid}) did not start within 60 s (see {})",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let addr = base_url
        .trim()
        .trim_start_matches("http://")
        .split('/')
        .next()
        .and_then(|authority| authority.parse().ok())
        .with_context(|| format!("TensorZero's base URL {base_url:?} names no address"))?;
    Ok(Some(Gateway::adopt(child, addr)))
}

/// Portkey's gateway (`@portkey-ai/gateway` from npm) under Node. `None` (with the reason
/// printed) when Node or the package is not available.
pub async fn start_portkey() -> Result<Option<Gateway>> {
    let dir = cache_dir().join("portkey");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let server = dir.join("node_modules/@portkey-ai/gateway/build/start-server.js");
    if !server.exists() {
        println!(
            "installing Portkey's gateway (npm install @portkey-ai/gateway) into {}",
            dir.display()
        );
        let log = cache_dir().join("portkey-install.log");
        let installed = run_logged(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg("@portkey-ai/gateway"),
            &log,
        );
        if !installed || !server.exists() {
            println!(
                "Portkey's gateway could not be installed (see {}); skipping the peer",
                log.display()
            );
            return Ok(None);
        }
    }
    let addr = free_port()?;
    let log_path = cache_dir().join("portkey.log");
    let log = std::fs::File::create(&log_path).context("creating the Portkey log")?;
    let child = Command::new("node")
        .arg(&server)
        .arg(format!("--port={}", addr.port()))
        .arg("--headless")
        .env("NODE_ENV", "production")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn();
    let Ok(child) = child else {
        println!("node is not on PATH; skipping Portkey");
        return Ok(None);
    };
    let gateway = Gateway::adopt(child, addr);
    gateway
        .wait_listening()
        .await
        .with_context(|| format!("Portkey did not start (see {})", log_path.display()))?;
    Ok(Some(gateway))
}

/// Portkey's per-request routing: load-balance at equal weight over the two models, each a
/// `bedrock` target whose `custom_host` is the emulator.
pub fn portkey_config(emulator_url: &str) -> String {
    let targets: Vec<serde_json::Value> = MODELS
        .iter()
        .map(|model| {
            serde_json::json!({
                "provider": "bedrock",
                "aws_access_key_id": "AKIDBENCH",
                "aws_secret_access_key": "bench",
                "aws_region": "us-west-2",
                "custom_host": emulator_url,
                "weight": 1,
                "override_params": {"model": model},
            })
        })
        .collect();
    serde_json::json!({"strategy": {"mode": "loadbalance"}, "targets": targets}).to_string()
}
