//! The whole request pipeline, built once at start and at each reload. Read top to
//! bottom, it is the path of one request:
//!
//! - [`app`], every request: the server span, then the front end that decodes the wire
//!   form (`frontend/`), then admission (`admission.rs`: route, key-auth, body limit,
//!   streaming policy, hash key); the operator's endpoints are another router, served on
//!   their own listener (`status.rs`);
//! - [`build_route`], one stack per route: shed over the limit, failover, pick a target,
//!   the attempt's span, its health and load record, its timeout, and the target's
//!   driver (`drivers.rs`).

use std::collections::HashSet;
use std::sync::Arc;

use aigw_balancer::pick::{
    ConsistentHashing, LatencyStrategy, LeastConnections, LowestLatency, LowestUsage, Pick,
    Priority, RoundRobin, Semantic, UsageMeasure,
};
use aigw_balancer::{
    AttemptTimeout, Dispatch, FailoverLayer, FailoverPolicy, HealthPolicy, PickLayer, Record,
    RouteState, TargetInfo,
};
use aigw_config::{
    AiProxyConfig, Algorithm, BalancerConfig, FailoverCriterion, GatewayConfig, LlmFormat,
    RouteConfig, TokensCountStrategy,
};
use aigw_core::{Error, ErrorKind};
use axum::Router;
use axum::routing::get;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::count::TokenCounters;
use crate::drivers::{DriverRegistry, TargetContext};
use crate::embed::EmbedRoute;
use crate::frontend::grpc::GrpcFront;
use crate::frontend::models;
use crate::limit::ShedOverLimit;
use crate::semantic::{SemanticLayer, SemanticRouter};
use crate::{
    KeyAuth, Route, RouteLimits, RouteOverview, RoutePlugins, RouteTable, SharedRoutes, status,
};

/// The whole app as one router: every request gets the server span, then its front end,
/// whose handlers go through admission into the route's stack. The operator's endpoints
/// but `/health` are on the status listener instead ([`status::router`]).
pub(crate) async fn app(routes: SharedRoutes) -> std::io::Result<Router> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GrpcFront>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(aigw_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // grpcurl releases still in wide use speak only reflection v1alpha.
    let reflection_v1 = reflection().build_v1().map_err(std::io::Error::other)?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(std::io::Error::other)?;
    let http = Router::new()
        // For load balancers; it names routes only where no route needs a key.
        .route(status::HEALTH_PATH, get(status::public_health))
        // OpenAI's model list: the route names a client can pass as `model`.
        .route(models::MODELS_PATH, get(models::list))
        .route("/v1/models/{id}", get(models::one))
        .method_not_allowed_fallback(status::get_only)
        // The HTTP/JSON front end. Route paths come from the config and may hold characters
        // axum's path syntax treats specially, so they are matched by exact lookup here.
        .fallback(crate::frontend::http::route_path)
        .with_state(routes.clone());
    Ok(tonic::service::Routes::from(http)
        // The gRPC front end (key-auth and the message bound checked from the call's head),
        // with reflection (for grpcurl) and health.
        .add_service(GrpcFront::new(routes))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router()
        // Outermost, so the server span covers HTTP and gRPC alike.
        .layer(aigw_telemetry::ServerSpanLayer))
}

/// Settings that replace parts of every target's config, for the demo and tests: the
/// config file itself stays unchanged.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Send every Bedrock target without its own `upstream_url` here.
    pub bedrock_endpoint: Option<String>,
    /// Sign every Bedrock call with these credentials (access key id, secret).
    pub bedrock_credentials: Option<(String, String)>,
    /// Concurrency limit and load shedding, per route.
    pub limits: RouteLimits,
}

/// Builds the route table: one balancer stack per route, clients shared across targets.
pub async fn build_routes(
    config: &GatewayConfig,
    options: &BuildOptions,
) -> Result<RouteTable, Error> {
    let registry = DriverRegistry::new();
    let consumers = crate::plugins::consumer_table(&config.consumers);
    let mut routes = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        routes.push(
            build_route(route, &registry, options, &consumers)
                .await
                .map_err(|e| e.context(format_args!("route {}", route.name)))?,
        );
    }
    Ok(RouteTable::new(routes))
}

/// One route's stack over its targets' drivers, one layer a line.
async fn build_route(
    route: &RouteConfig,
    registry: &DriverRegistry,
    options: &BuildOptions,
    consumers: &crate::plugins::Consumers,
) -> Result<Route, Error> {
    let ai: &AiProxyConfig = &route.ai;
    if crate::embed::is_embeddings_route(route)? {
        return build_embeddings_route(route, options, consumers).await;
    }
    let mut drivers = Vec::with_capacity(ai.targets.len());
    for (index, target) in ai.targets.iter().enumerate() {
        let cx = TargetContext {
            balancer: &ai.balancer,
            options,
        };
        let driver = registry
            .build(target, &cx)
            .await
            .map_err(|e| e.context(format_args!("targets[{index}]")))?;
        drivers.push(driver);
    }
    let infos = target_infos(ai);
    let picker = picker(&ai.balancer, &infos)?;
    // Every route's series exists (at 0), as its failovers' do, so dashboards see it.
    aigw_telemetry::metrics().semantic_embedding_failures(&route.name);
    let semantic = match &ai.semantic {
        Some(config) => Some(SemanticLayer::new(Arc::new(
            SemanticRouter::build(route, config, options).await?,
        ))),
        None => None,
    };
    let state = Arc::new(RouteState::new(infos, health_policy(&ai.balancer)));
    let counters = TokenCounters::build(
        route,
        registry,
        &TargetContext {
            balancer: &ai.balancer,
            options,
        },
        state.clone(),
        failover_policy(&ai.balancer),
    )
    .await?;

    let stack = ServiceBuilder::new()
        // Outermost, so a request over the route's limit costs nothing further down.
        .layer(ShedOverLimit::layer(options.limits))
        // `semantic` only: embeds the prompt and names its target for the pick below;
        // once per request, so failover's retries do not embed again.
        .option_layer(semantic)
        // Retries per Kong's retries/failover_criteria; each retry is picked anew below.
        .layer(FailoverLayer::new(
            failover_policy(&ai.balancer),
            state.clone(),
        ))
        // Picks each attempt's target by algorithm, skipping tried and tripped targets.
        .layer(PickLayer::new(picker, state.clone()))
        // One span per attempt, outside the timeout so a timed-out attempt ends its span.
        .layer(attempt_telemetry(route))
        // Health, in flight (until a stream ends), latency, usage. Above the timeout, so
        // that an attempt that timed out counts against its target.
        .layer(Record::layer(state.clone()))
        // Each attempt, not the whole request, gets read_timeout, so failover has time left.
        .layer(AttemptTimeout::layer(ai.balancer.read_timeout))
        .service(Dispatch::new(drivers));

    route_of(
        route,
        options,
        consumers,
        state,
        BoxCloneSyncService::new(stack),
        Capabilities {
            embed: None,
            counters: Some(Arc::new(counters)),
        },
    )
}

/// A route whose targets all embed: an [`EmbedRoute`] over them, with the same picker,
/// balancer state and failover policy a chat route would have; chat requests to it are
/// refused, naming the route_type it serves.
async fn build_embeddings_route(
    route: &RouteConfig,
    options: &BuildOptions,
    consumers: &crate::plugins::Consumers,
) -> Result<Route, Error> {
    let ai = &route.ai;
    let infos = target_infos(ai);
    let picker = picker(&ai.balancer, &infos)?;
    let state = Arc::new(RouteState::new(infos, health_policy(&ai.balancer)));
    let embed = EmbedRoute::build(
        route,
        options,
        picker,
        state.clone(),
        failover_policy(&ai.balancer),
    )
    .await?;
    let name: Arc<str> = Arc::from(route.name.as_str());
    let refuse_chat = tower::service_fn(move |_: aigw_core::ChatRequest| {
        let name = name.clone();
        async move {
            Err::<aigw_core::ChatReply, _>(Error::new(
                ErrorKind::InvalidRequest,
                format!(
                    "route {name} serves route_type {}; send its requests to /v1/embeddings",
                    crate::embed::EMBEDDINGS_ROUTE_TYPE
                ),
            ))
        }
    });
    route_of(
        route,
        options,
        consumers,
        state,
        BoxCloneSyncService::new(refuse_chat),
        Capabilities {
            embed: Some(Arc::new(embed)),
            counters: None,
        },
    )
}

/// What a route serves besides chat.
struct Capabilities {
    embed: Option<Arc<EmbedRoute>>,
    counters: Option<Arc<TokenCounters>>,
}

/// What the balancer knows of each target, in config order.
fn target_infos(ai: &AiProxyConfig) -> Vec<TargetInfo> {
    ai.targets
        .iter()
        .map(|target| TargetInfo {
            label: target.label(),
            weight: target.weight,
            input_cost: target.model.options.input_cost.unwrap_or(0.0),
            output_cost: target.model.options.output_cost.unwrap_or(0.0),
        })
        .collect()
}

/// The [`Route`] of `route`'s config around its built stack.
fn route_of(
    route: &RouteConfig,
    options: &BuildOptions,
    consumers: &crate::plugins::Consumers,
    state: Arc<RouteState>,
    service: BoxCloneSyncService<aigw_core::ChatRequest, aigw_core::ChatReply, Error>,
    capabilities: Capabilities,
) -> Result<Route, Error> {
    let ai = &route.ai;
    Ok(Route {
        name: route.name.clone(),
        paths: route.paths.clone(),
        matching: route.matching.clone(),
        model_name_header: ai.model_name_header,
        response_streaming: ai.response_streaming,
        max_request_body_size: ai.max_request_body_size,
        hash_on_header: hash_on_header(&ai.balancer)?,
        balancer: state,
        overview: RouteOverview::new(route, options),
        service,
        embed: capabilities.embed,
        counters: capabilities.counters,
        key_auth: route.key_auth.as_ref().map(|config| match ai.llm_format {
            LlmFormat::Anthropic => KeyAuth::new(&crate::frontend::anthropic::key_auth(config)),
            // A SigV4 `Authorization` is not `Bearer`, so it is never taken for a key;
            // only the Bedrock front end verifies it, with the consumers' AWS key pairs.
            LlmFormat::OpenAi => KeyAuth::new(config),
            LlmFormat::Bedrock => KeyAuth::new(config).with_aws_pairs(&config.aws_credentials),
        }),
        llm_format: ai.llm_format,
        plugins: RoutePlugins::new(route, consumers)?,
        rate_limit: crate::AiRateLimiter::new(route),
        prompt: crate::PromptPlugins::new(route),
        chat: route.chat.clone(),
    })
}

/// The header consistent hashing keys on, when the route hashes. Loading refuses a bad
/// name with its file and line; this only guards configs built some other way.
fn hash_on_header(balancer: &BalancerConfig) -> Result<Option<http::HeaderName>, Error> {
    if balancer.algorithm != Algorithm::ConsistentHashing {
        return Ok(None);
    }
    let name = balancer.hash_on_header.as_str();
    http::HeaderName::try_from(name).map(Some).map_err(|_| {
        Error::new(
            ErrorKind::Internal,
            format!("balancer.hash_on_header {name:?} is not a valid header name"),
        )
    })
}

/// The route's pick strategy, per `balancer.algorithm`.
fn picker(balancer: &BalancerConfig, targets: &[TargetInfo]) -> Result<Box<dyn Pick>, Error> {
    let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
    Ok(match balancer.algorithm {
        Algorithm::RoundRobin => Box::new(RoundRobin::new(&weights)),
        Algorithm::Priority => Box::new(Priority::new(&weights)),
        Algorithm::LeastConnections => Box::new(LeastConnections::new(&weights)),
        Algorithm::LowestLatency => Box::new(LowestLatency::new(match balancer.latency_strategy {
            aigw_config::LatencyStrategy::Tpot => LatencyStrategy::Tpot,
            aigw_config::LatencyStrategy::E2e => LatencyStrategy::E2e,
        })),
        Algorithm::LowestUsage => Box::new(LowestUsage::new(
            match balancer.tokens_count_strategy {
                TokensCountStrategy::TotalTokens => UsageMeasure::TotalTokens,
                TokensCountStrategy::PromptTokens => UsageMeasure::PromptTokens,
                TokensCountStrategy::CompletionTokens => UsageMeasure::CompletionTokens,
                TokensCountStrategy::Cost => UsageMeasure::Cost,
            },
            &weights,
        )),
        Algorithm::ConsistentHashing => Box::new(ConsistentHashing::new(targets, balancer.slots)),
        // The prompt's target comes from the SemanticLayer above the balancer.
        Algorithm::Semantic => Box::new(Semantic::new(&weights)),
    })
}

/// The attempt spans and per-target metrics of `route`, its targets labelled as the
/// balancer labels them.
fn attempt_telemetry(route: &RouteConfig) -> aigw_telemetry::AttemptSpanLayer {
    let targets = route
        .ai
        .targets
        .iter()
        .map(|t| aigw_telemetry::TargetDescriptor {
            label: t.label(),
            provider: t.model.provider.as_str().to_owned(),
            model: t.model.name.clone(),
            default_max_tokens: t.model.options.max_tokens,
            default_temperature: t.model.options.temperature,
            log_payloads: t.logging.log_payloads,
        });
    aigw_telemetry::AttemptSpan::layer(&route.name, route.ai.balancer.algorithm.as_str(), targets)
}

fn health_policy(balancer: &BalancerConfig) -> HealthPolicy {
    HealthPolicy {
        max_fails: balancer.max_fails,
        fail_timeout: balancer.fail_timeout,
        // The same statuses that fail over are the ones that count as failures.
        counted_statuses: failover_policy(balancer).on_status,
    }
}

fn failover_policy(balancer: &BalancerConfig) -> FailoverPolicy {
    let criteria: HashSet<FailoverCriterion> = balancer.failover_criteria.iter().copied().collect();
    let statuses = [
        (FailoverCriterion::Http403, 403),
        (FailoverCriterion::Http404, 404),
        (FailoverCriterion::Http429, 429),
        (FailoverCriterion::Http500, 500),
        (FailoverCriterion::Http502, 502),
        (FailoverCriterion::Http503, 503),
        (FailoverCriterion::Http504, 504),
    ];
    FailoverPolicy {
        retries: balancer.retries,
        on_error: criteria.contains(&FailoverCriterion::Error),
        on_timeout: criteria.contains(&FailoverCriterion::Timeout),
        on_invalid_header: criteria.contains(&FailoverCriterion::InvalidHeader),
        on_status: statuses
            .iter()
            .filter(|(c, _)| criteria.contains(c))
            .map(|(_, s)| *s)
            .collect(),
        non_idempotent: criteria.contains(&FailoverCriterion::NonIdempotent),
    }
}
