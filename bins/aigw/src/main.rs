//! `aigw`: the AI gateway. `aigw --config FILE` serves a Kong decK file's routes;
//! `aigw check` validates one; `aigw demo` runs the seed walkthrough against an in-process
//! Bedrock emulator, with no AWS account; `aigw top` watches a running gateway's targets.
#![forbid(unsafe_code)]

mod top;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use aigw_config::{GatewayConfig, LogFormat, Settings, SettingsOverrides, StatusListen};
use aigw_server::{BuildOptions, Gateway, RouteLimits, ServeOptions, SharedRoutes, build_routes};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

/// jemalloc instead of glibc's malloc. One Converse call through the Bedrock driver
/// allocates a few hundred times (mostly inside the AWS SDK): callgrind counts 417 000
/// instructions per call with glibc, 380 000 with jemalloc (-9 %), and in three alternating
/// 64-connection runs the gateway's CPU per request fell from 0.12-0.20 ms to 0.10-0.14 ms
/// while its RSS at start stayed under 18 MiB (see docs/performance.md).
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The decK file `aigw demo` serves, shipped inside the binary so the demo runs anywhere.
const DEMO_CONFIG: &str = include_str!("../../../config/ai-proxy-advanced.yaml");

#[derive(Parser)]
#[command(
    name = "aigw",
    version,
    about = "An AI gateway for AWS Bedrock that loads Kong ai-proxy-advanced config"
)]
struct Cli {
    /// Kong decK file with ai-proxy-advanced routes [env: AIGW_CONFIG]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Address for HTTP/1.1, h2c and gRPC [env: AIGW_LISTEN] [default: 0.0.0.0:8000]
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Address for /metrics, /status/targets and /health, or `off` [env: AIGW_STATUS_LISTEN]
    /// [default: 127.0.0.1:8100]
    #[arg(long, global = true)]
    status_listen: Option<StatusListen>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and print the routes and targets it defines.
    Check,
    /// Serve the seed walkthrough config against an in-process Bedrock emulator.
    Demo,
    /// Watch a running gateway's routes and targets, refreshing in place until Ctrl-C.
    Top {
        /// The gateway's status listener.
        #[arg(long, default_value = "http://127.0.0.1:8100")]
        status: String,
        /// Print one frame, without terminal escapes, and exit.
        #[arg(long)]
        once: bool,
        /// Milliseconds between refreshes.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..))]
        interval_ms: u64,
    },
}

/// What this process serves, once `top` (which serves nothing) is out of the way.
enum Serving {
    Check,
    Demo,
    Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    // The error alone, with its causes, is what a user needs; no backtrace.
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let serving = match cli.command {
        // `top` is a client of another process: no settings, config or telemetry of its own.
        Some(Command::Top {
            status,
            once,
            interval_ms,
        }) => {
            return top::run(top::Options {
                status,
                once,
                interval: Duration::from_millis(interval_ms),
            })
            .await;
        }
        Some(Command::Check) => Serving::Check,
        Some(Command::Demo) => Serving::Demo,
        None => Serving::Config,
    };
    let settings = Settings::load(SettingsOverrides {
        listen: cli.listen,
        status_listen: cli.status_listen,
        config: cli.config.clone(),
        log_level: None,
    })?;
    let style = match settings.log_format {
        LogFormat::Json => aigw_telemetry::LogStyle::Json,
        LogFormat::Text => aigw_telemetry::LogStyle::Text,
    };
    // `check` only reads a file: no spans worth exporting.
    let endpoint = match serving {
        Serving::Check => None,
        _ => aigw_telemetry::otlp_endpoint(settings.otlp_endpoint.as_deref()),
    };
    let telemetry =
        aigw_telemetry::Telemetry::init(&settings.log_level, style, endpoint.as_deref())?;
    if let Some(endpoint) = &endpoint {
        tracing::info!(%endpoint, "exporting traces over OTLP/gRPC");
    }

    let outcome = match serving {
        Serving::Check => check(config_path(&settings)?),
        Serving::Demo => demo(&settings).await,
        Serving::Config => {
            let path = config_path(&settings)?;
            let config = aigw_config::load_deck(path)?;
            print_warnings(&config);
            serve(&config, BuildOptions::default(), &settings, Some(path)).await
        }
    };
    // The last requests' spans are still queued; send them before exiting.
    telemetry.shutdown().await;
    outcome
}

fn config_path(settings: &Settings) -> Result<&Path> {
    match &settings.config {
        Some(path) => Ok(path),
        None => bail!("no config file: pass --config FILE or set AIGW_CONFIG"),
    }
}

fn check(path: &Path) -> Result<()> {
    let config = aigw_config::load_deck(path)?;
    println!("{}: ok, {} route(s)", path.display(), config.routes.len());
    for route in &config.routes {
        let ai = &route.ai;
        println!(
            "route {} {}: {} over {} target(s), retries {}, read_timeout {} ms",
            route.name,
            route.paths.join(" "),
            ai.balancer.algorithm.as_str(),
            ai.targets.len(),
            ai.balancer.retries,
            ai.balancer.read_timeout.as_millis(),
        );
        // Say how a client gets in, never with what: keys stay out of the output.
        if let Some(auth) = &route.key_auth {
            println!(
                "  key-auth: {} consumer key(s), sent as Authorization: Bearer or in header {}",
                auth.credentials.len(),
                auth.key_names.join(" / "),
            );
            if ai.llm_format == aigw_config::LlmFormat::Bedrock && !auth.aws_credentials.is_empty()
            {
                println!(
                    "  sigv4: {} consumer AWS key pair(s) (aigw_aws_credentials): a verified SigV4 signature stands in for a key",
                    auth.aws_credentials.len(),
                );
            }
        }
        if let Some(line) = match_line(&route.matching) {
            println!("  {line}");
        }
        if let Some(semantic) = &ai.semantic {
            let catchall = ai
                .targets
                .iter()
                .find(|t| t.description.as_deref() == Some(aigw_config::CATCHALL))
                .map_or_else(|| "none".to_owned(), |t| t.label());
            println!(
                "  semantic: prompts embedded by {}/{} ({} dimensions), nearest description by {} distance within {}; \
                 catch-all target {catchall}; vectordb.strategy {} accepted, but the description vectors are kept \
                 in memory and searched exactly (no {} connection is made)",
                semantic.provider.as_str(),
                semantic.model,
                semantic.dimensions,
                semantic.distance_metric.as_str(),
                semantic.threshold,
                semantic.strategy,
                semantic.strategy,
            );
        }
        for line in plugin_lines(route) {
            println!("  {line}");
        }
        for (index, target) in ai.targets.iter().enumerate() {
            let region = match target.model.provider {
                aigw_config::Provider::Bedrock => format!(
                    " region {}",
                    target
                        .model
                        .options
                        .bedrock
                        .aws_region
                        .as_deref()
                        .unwrap_or("(default chain)")
                ),
                _ => String::new(),
            };
            println!(
                "  target {index}: {}/{} weight {}{region}{}",
                target.model.provider.as_str(),
                target.model.name,
                target.weight,
                target
                    .model
                    .options
                    .upstream_url
                    .as_deref()
                    .map(|u| format!(" upstream_url {}", without_query(u)))
                    .unwrap_or_default(),
            );
            if let Some(auth) = auth_summary(&target.auth) {
                println!("    auth {auth}");
            }
        }
    }
    print_warnings(&config);
    Ok(())
}

/// Which credentials a target sends, by name only: values (often resolved from the
/// environment) never reach the terminal.
fn auth_summary(auth: &aigw_config::TargetAuth) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(name) = &auth.header_name {
        parts.push(format!("header {name}: <redacted>"));
    }
    if let (Some(name), Some(location)) = (&auth.param_name, auth.param_location) {
        parts.push(format!("param {name} in {}: <redacted>", location.as_str()));
    }
    if auth.aws_access_key_id.is_some() {
        parts.push("aws keys: <redacted>".to_owned());
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A URL with its query hidden, since a query may carry a key.
fn without_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => url.to_owned(),
    }
}

fn print_warnings(config: &GatewayConfig) {
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
}

async fn demo(settings: &Settings) -> Result<()> {
    let emulator = aigw_emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("starting the Bedrock emulator")?;
    let config = aigw_config::parse_deck("config/ai-proxy-advanced.yaml", DEMO_CONFIG)?;
    // The demo signs with throwaway keys: the emulator checks that a SigV4 signature is
    // there, not whose it is.
    let options = BuildOptions {
        bedrock_endpoint: Some(emulator.endpoint_url()),
        bedrock_credentials: Some(("AKIDAIGWDEMO".into(), "aigw-demo-secret".into())),
        ..BuildOptions::default()
    };
    let port = settings.listen.port();
    // The operator's endpoints are on their own listener, as Kong's status API is.
    let (status, scrape) = match settings.status_listen {
        StatusListen::At(addr) => (
            format!("status page, /metrics and /status/* on {addr}"),
            format!(
                "  open http://{addr}/ (the status page), or in a terminal: aigw top --status http://{addr}\n\n  \
                 curl -s localhost:{}/status/targets\n\n",
                addr.port()
            ),
        ),
        StatusListen::Off => ("status listener off".to_owned(), String::new()),
    };
    println!(
        "aigw demo: gateway on {listen}, {status}, Bedrock emulator on {emulator}\n\
         Try (answers alternate between the two models):\n\n  \
         curl -s -X POST localhost:{port}/bedrock-route -H 'Content-Type: application/json' \\\n    \
         -d '{{\"messages\":[{{\"role\":\"user\",\"content\":\"Who is considered the greatest Polish writer?\"}}]}}'\n\n  \
         grpcurl -plaintext -d '{{\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}' localhost:{port} aigw.v1.ChatService/Chat\n\n\
         {scrape}\
         Ctrl-C stops it.",
        listen = settings.listen,
        emulator = emulator.endpoint_url(),
    );
    serve(&config, options, settings, None).await
}

/// Serves until SIGTERM or SIGINT, then drains; with `reload_from`, SIGHUP re-reads that
/// decK file.
async fn serve(
    config: &GatewayConfig,
    mut options: BuildOptions,
    settings: &Settings,
    reload_from: Option<&Path>,
) -> Result<()> {
    options.limits = RouteLimits {
        max_concurrent_requests: settings.max_concurrent_requests,
    };
    let table = build_routes(config, &options).await?;
    let listen = settings.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let mut gateway = Gateway::new(table).with_options(ServeOptions {
        header_read_timeout: Duration::from_millis(settings.header_read_timeout_ms),
        client_body_timeout: Duration::from_millis(settings.client_body_timeout_ms),
        max_header_size: settings.max_header_size,
        drain_timeout: Duration::from_millis(settings.drain_timeout_ms),
    });
    let status_addr = match settings.status_listen {
        StatusListen::At(addr) => {
            let status = TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} (status_listen)"))?;
            let bound = status.local_addr()?;
            gateway = gateway.with_status_listener(status);
            Some(bound)
        }
        StatusListen::Off => None,
    };
    if let Some(path) = reload_from {
        reload_on_hangup(gateway.routes(), path.to_owned(), options)?;
    }
    tracing::info!(address = %listener.local_addr()?, status_address = status_addr.map(tracing::field::display), routes = config.routes.len(), "aigw serving");
    gateway.serve(listener, shutdown_signal()).await?;
    tracing::info!("aigw stopped");
    Ok(())
}

/// Re-reads the decK file on every SIGHUP; a bad file is logged and the old routes keep
/// serving. The handler is installed before serving, so an early SIGHUP cannot kill us.
#[cfg(unix)]
fn reload_on_hangup(routes: SharedRoutes, path: PathBuf, options: BuildOptions) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match routes.reload_from(&path, &options).await {
                Ok(count) => {
                    tracing::info!(config = %path.display(), routes = count, "config reloaded");
                }
                Err(error) => tracing::error!(
                    config = %path.display(),
                    %error,
                    "config reload refused; the previous config keeps serving"
                ),
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_hangup(_: SharedRoutes, _: PathBuf, _: BuildOptions) -> Result<()> {
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// What `aigw check` says of a route's router attributes beyond its paths, if any.
fn match_line(matching: &aigw_config::RouteMatch) -> Option<String> {
    let mut parts = Vec::new();
    if !matching.methods.is_empty() {
        parts.push(format!("methods {}", matching.methods.join(" ")));
    }
    if !matching.hosts.is_empty() {
        let hosts: Vec<String> = matching
            .hosts
            .iter()
            .map(|h| {
                let name = match h.kind {
                    aigw_config::HostKind::Exact => h.name.clone(),
                    aigw_config::HostKind::Suffix => format!("*{}", h.name),
                    aigw_config::HostKind::Prefix => format!("{}*", h.name),
                };
                match h.port {
                    Some(port) => format!("{name}:{port}"),
                    None => name,
                }
            })
            .collect();
        parts.push(format!("hosts {}", hosts.join(" ")));
    }
    if !matching.headers.is_empty() {
        let names: Vec<&str> = matching.headers.iter().map(|h| h.name.as_str()).collect();
        parts.push(format!("headers {}", names.join(" ")));
    }
    if matching.regex_priority != 0 {
        parts.push(format!("regex_priority {}", matching.regex_priority));
    }
    (!parts.is_empty()).then(|| format!("matches only: {}", parts.join("; ")))
}

/// What `aigw check` says of a route's other enforced plugins: who gets in and what is
/// refused, never a credential.
fn plugin_lines(route: &aigw_config::RouteConfig) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(basic) = &route.basic_auth {
        lines.push(format!(
            "basic-auth: {} consumer credential(s), realm {:?}",
            basic.credentials.len(),
            basic.realm
        ));
    }
    if let Some(jwt) = &route.jwt {
        lines.push(format!(
            "jwt: {} consumer secret(s), key claim {:?}, token in header {} or query {}",
            jwt.credentials.len(),
            jwt.key_claim_name,
            jwt.header_names.join(" / "),
            jwt.uri_param_names.join(" / ")
        ));
    }
    if let Some(ip) = &route.ip_restriction {
        lines.push(format!(
            "ip-restriction: {} allowed, {} denied address range(s); refused with {}",
            ip.allow.len(),
            ip.deny.len(),
            ip.status
        ));
    }
    if let Some(size) = &route.request_size_limiting {
        lines.push(format!(
            "request-size-limiting: bodies up to {} bytes{}",
            size.max_bytes,
            if size.require_content_length {
                ", Content-Length required"
            } else {
                ""
            }
        ));
    }
    if let Some(acl) = &route.acl {
        let (verb, groups) = if acl.allow.is_empty() {
            ("denies", &acl.deny)
        } else {
            ("allows", &acl.allow)
        };
        lines.push(format!(
            "acl: {verb} consumers in group(s) {}{}; others refused with 403",
            groups.join(", "),
            if acl.include_consumer_groups {
                " (consumer groups count)"
            } else {
                ""
            }
        ));
    }
    if let Some(limit) = &route.ai_rate_limit {
        let store = match &limit.strategy {
            aigw_config::Strategy::Local => "in this process".to_owned(),
            aigw_config::Strategy::Redis(redis) => {
                format!(
                    "in Redis at {}:{} (sync_rate {})",
                    redis.host, redis.port, limit.sync_rate
                )
            }
        };
        let policies: Vec<String> = limit
            .policies
            .iter()
            .map(|p| {
                let limits: Vec<String> = p
                    .limits
                    .iter()
                    .map(|l| format!("{}/{}s", l.limit, l.window))
                    .collect();
                format!("{} {}", p.name, limits.join(" "))
            })
            .collect();
        lines.push(format!(
            "ai-rate-limiting-advanced: {} per {}, {} window, counted {store}: {}",
            limit.tokens_count_strategy.as_str(),
            limit.identifier.as_str(),
            limit.window_type.as_str(),
            policies.join("; ")
        ));
    }
    if let Some(decorator) = &route.prompt_decorator {
        lines.push(format!(
            "ai-prompt-decorator: {} message(s) prepended, {} appended",
            decorator.prepend.len(),
            decorator.append.len()
        ));
    }
    if let Some(guard) = &route.prompt_guard {
        lines.push(format!(
            "ai-prompt-guard: {} deny and {} allow pattern(s) over {}; refused with 400",
            guard.deny_patterns.len(),
            guard.allow_patterns.len(),
            match (guard.allow_all_conversation_history, guard.match_all_roles) {
                (true, _) => "the last user message",
                (false, true) => "every message",
                (false, false) => "every user message",
            }
        ));
    }
    if let Some(termination) = &route.request_termination {
        let which = match &termination.trigger {
            Some(trigger) => format!("requests carrying {trigger}"),
            None => "every request".to_owned(),
        };
        lines.push(format!(
            "request-termination: {which} answered {} without reaching a target",
            termination.status
        ));
    }
    lines
}
