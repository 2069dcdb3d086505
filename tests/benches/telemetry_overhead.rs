//! What telemetry costs a request, with and without an OTLP exporter.
//!
//! `cargo bench -p aigw-tests --bench telemetry_overhead 2>/dev/null` (log lines go to
//! stderr, as in production; the null device keeps the terminal out of the measurement).
//!
//! Two measurements, each under every subscriber set-up, interleaved in three rounds so drift
//! shows up as disagreement between rounds:
//! - `layers`: the server span layer, the balancer and the attempt span layer over a target
//!   that answers at once: the telemetry's own cost per request, with nothing to hide it,
//!   as wall-clock time and as this thread's on-CPU time (which other processes on a
//!   shared machine do not inflate). The exporter's thread is not in the CPU figure: it is
//!   off the request path, though it takes a share of the machine.
//! - `end to end`: sequential HTTP requests through the real gateway, SDK and emulator on
//!   loopback: what that cost is next to a request's real work.
//!
//! Requests and spans run on this thread (a current-thread runtime, so the subscriber set
//! for this thread sees every span); the OTLP receiver and the exporter's channel run on a
//! second runtime, and the SDK's batch exporter on its own thread, as in the gateway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_balancer::pick::RoundRobin;
use aigw_balancer::{
    Attempt, FailoverLayer, FailoverPolicy, HealthPolicy, PickLayer, RouteState, TargetInfo,
};
use aigw_core::{
    ChatCompletion, ChatReply, ChatRequest, Error, FinishReason, Message, ReplyBody, Role,
    ServedBy, Usage,
};
use aigw_telemetry::{AttemptSpan, LogStyle, SdkTracerProvider, ServerSpanLayer, TargetDescriptor};
use aigw_tests::otlp::Receiver;
use aigw_tests::{Stack, post_polish_question, seed_config};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};

const LAYER_REQUESTS: u32 = 100_000;
const E2E_REQUESTS: u32 = 2_000;
const WARM_UP: u32 = 200;
const ROUNDS: u32 = 3;

/// One way of running the process's telemetry.
#[derive(Clone, Copy)]
enum Setup {
    /// No subscriber at all: every span and log line is disabled at its call site.
    Nothing,
    /// Warnings only: no access log, no exporter (spans are off too).
    Quiet,
    /// The default: the info access log, no exporter.
    Logs,
    /// The access log and spans exported over OTLP/gRPC to a live receiver.
    LogsAndOtlp,
    /// The same, but the collector is down.
    LogsAndDeadCollector,
}

impl Setup {
    const ALL: [Setup; 5] = [
        Setup::Nothing,
        Setup::Quiet,
        Setup::Logs,
        Setup::LogsAndOtlp,
        Setup::LogsAndDeadCollector,
    ];

    fn name(self) -> &'static str {
        match self {
            Setup::Nothing => "no subscriber",
            Setup::Quiet => "warn logs, no exporter",
            Setup::Logs => "info access log, no exporter",
            Setup::LogsAndOtlp => "info log + OTLP export",
            Setup::LogsAndDeadCollector => "info log + OTLP, collector down",
        }
    }
}

/// The receiver and exporters live on their own runtime, like a gateway's background work.
struct Background {
    runtime: tokio::runtime::Runtime,
    receiver: Receiver,
    dead_endpoint: String,
}

impl Background {
    fn start() -> Background {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("background runtime");
        let receiver = runtime.block_on(Receiver::start());
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead_endpoint = format!("http://{}", dead.local_addr().expect("addr"));
        drop(dead);
        Background {
            runtime,
            receiver,
            dead_endpoint,
        }
    }

    fn dispatch(&self, setup: Setup) -> (tracing::Dispatch, Option<SdkTracerProvider>) {
        let provider = |endpoint: &str| {
            let _entered = self.runtime.enter();
            aigw_telemetry::tracer_provider(endpoint).expect("exporter builds")
        };
        match setup {
            Setup::Nothing => (tracing::Dispatch::none(), None),
            Setup::Quiet => (aigw_telemetry::dispatch("warn", LogStyle::Text, None), None),
            Setup::Logs => (aigw_telemetry::dispatch("info", LogStyle::Text, None), None),
            Setup::LogsAndOtlp | Setup::LogsAndDeadCollector => {
                let endpoint = match setup {
                    Setup::LogsAndOtlp => self.receiver.endpoint(),
                    _ => self.dead_endpoint.clone(),
                };
                let provider = provider(&endpoint);
                let dispatch = aigw_telemetry::dispatch("info", LogStyle::Text, Some(&provider));
                (dispatch, Some(provider))
            }
        }
    }
}

fn answer(target: usize) -> ChatReply {
    let model: Arc<str> = Arc::from(format!("m{target}"));
    ChatReply {
        served_by: ServedBy {
            provider: "bedrock",
            model: model.clone(),
        },
        body: ReplyBody::Complete(ChatCompletion {
            id: "chatcmpl-bench".into(),
            created: 0,
            model,
            content: "an answer".into(),
            tool_calls: Vec::new(),
            reasoning: None,
            finish_reason: FinishReason::Stop,
            usage: Usage {
                prompt_tokens: 7,
                completion_tokens: 24,
                total_tokens: 31,
                ..Usage::default()
            },
        }),
    }
}

type HttpService = BoxCloneSyncService<http::Request<()>, http::Response<()>, Error>;

/// The gateway's telemetry layers (none when `bare`) around a balancer over two instant
/// targets.
fn layered_stack(bare: bool) -> HttpService {
    let config = seed_config();
    let route_config = &config.routes[0];
    let infos = (0..2)
        .map(|i| TargetInfo {
            label: format!("bedrock/m{i}"),
            weight: 100,
            input_cost: 0.0,
            output_cost: 0.0,
        })
        .collect();
    let state = Arc::new(RouteState::new(
        infos,
        HealthPolicy {
            max_fails: 0,
            fail_timeout: std::time::Duration::from_secs(10),
            counted_statuses: Vec::new(),
        },
    ));
    let targets =
        tower::service_fn(|attempt: Attempt| async move { Ok::<_, Error>(answer(attempt.target)) });
    let telemetry = || {
        let targets = route_config.ai.targets.iter().map(|t| TargetDescriptor {
            label: t.label(),
            provider: t.model.provider.as_str().to_owned(),
            model: t.model.name.clone(),
            default_max_tokens: t.model.options.max_tokens,
            default_temperature: t.model.options.temperature,
            log_payloads: t.logging.log_payloads,
        });
        let algorithm = route_config.ai.balancer.algorithm.as_str();
        AttemptSpan::layer(&route_config.name, algorithm, targets)
    };
    let route = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(FailoverLayer::new(FailoverPolicy::default(), state.clone()))
            .layer(PickLayer::new(RoundRobin::new(&[100, 100]), state))
            .option_layer((!bare).then(telemetry))
            .service(targets),
    );
    let request = ChatRequest {
        messages: Arc::from([Message::new(
            Role::User,
            "Who is considered the greatest Polish writer?",
        )]),
        ..ChatRequest::default()
    };
    let handler = tower::service_fn(move |_: http::Request<()>| {
        let route = route.clone();
        let request = request.clone();
        async move {
            aigw_telemetry::record_route("route1");
            route.oneshot(request).await?;
            Ok::<_, Error>(http::Response::new(()))
        }
    });
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .option_layer((!bare).then_some(ServerSpanLayer))
            .service(handler),
    )
}

fn chat_post() -> http::Request<()> {
    http::Request::post("/bedrock-route")
        .body(())
        .expect("a valid request")
}

/// CPU time this thread has run, from the scheduler's own accounting: unlike wall-clock
/// time it does not grow while other processes hold the CPU, so it measures the request
/// path's work on a shared machine.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Sends `count` chat POSTs through the layers, one after the other.
async fn send_through_layers(service: &mut HttpService, count: u32) {
    for _ in 0..count {
        let _ = service
            .ready()
            .await
            .expect("ready")
            .call(chat_post())
            .await;
    }
}

/// Mean wall-clock and on-CPU time per request through the layers.
async fn time_layers(service: &mut HttpService) -> (Duration, Duration) {
    send_through_layers(service, WARM_UP).await;
    let (started, cpu) = (Instant::now(), thread_cpu());
    send_through_layers(service, LAYER_REQUESTS).await;
    (
        started.elapsed() / LAYER_REQUESTS,
        (thread_cpu() - cpu) / LAYER_REQUESTS,
    )
}

/// Mean, median and 99th percentile of sequential requests through the real gateway.
async fn time_end_to_end(stack: &Stack) -> (Duration, Duration, Duration) {
    let client = reqwest::Client::new();
    let url = stack.url("/bedrock-route");
    let send = || async {
        let response = post_polish_question(&client, &url).await;
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.expect("body");
    };
    for _ in 0..WARM_UP {
        send().await;
    }
    let mut times = Vec::with_capacity(E2E_REQUESTS as usize);
    for _ in 0..E2E_REQUESTS {
        let started = Instant::now();
        send().await;
        times.push(started.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / E2E_REQUESTS;
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (mean, at(0.5), at(0.99))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The machine's 1/5/15-minute load averages: other work skews wall-clock figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: do no work then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let background = Background::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("bench runtime");

    println!(
        "telemetry overhead per request (µs): {LAYER_REQUESTS} layer requests, \
         {E2E_REQUESTS} end-to-end requests per run; load average {}",
        load_average()
    );
    println!(
        "{:<34} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "set-up", "round", "layers", "layers cpu", "e2e mean", "e2e p50", "e2e p99"
    );
    for round in 1..=ROUNDS {
        let (bare, bare_cpu) =
            runtime.block_on(async { time_layers(&mut layered_stack(true)).await });
        println!(
            "{:<34} {:>5} {:>10.2} {:>10.2} {:>10} {:>10} {:>10}",
            "no telemetry layers at all",
            round,
            micros(bare),
            micros(bare_cpu),
            "-",
            "-",
            "-"
        );
        for setup in Setup::ALL {
            let (dispatch, provider) = background.dispatch(setup);
            let _guard = tracing::dispatcher::set_default(&dispatch);
            let ((layers, cpu), (mean, p50, p99)) = runtime.block_on(async {
                let mut service = layered_stack(false);
                let layers = time_layers(&mut service).await;
                let stack = Stack::start(&seed_config()).await;
                (layers, time_end_to_end(&stack).await)
            });
            println!(
                "{:<34} {:>5} {:>10.2} {:>10.2} {:>10.1} {:>10.1} {:>10.1}",
                setup.name(),
                round,
                micros(layers),
                micros(cpu),
                micros(mean),
                micros(p50),
                micros(p99)
            );
            if let Some(provider) = provider {
                // Off the clock: flush what is queued (or give up on the dead collector).
                let _ = provider.shutdown();
            }
        }
    }
    println!(
        "spans the receiver took: {}; load average {}",
        background.receiver.spans().len(),
        load_average()
    );
}
