//! Builds each route's tower stack from the config, once, at start.

use std::collections::HashSet;

use aigw_balancer::pick::RoundRobin;
use aigw_balancer::{AttemptTimeoutLayer, BalanceLayer, FailoverPolicy, TargetInfo, Targets};
use aigw_bedrock::{BedrockProvider, BedrockTargetSpec, RequestDefaults};
use aigw_config::{
    AiProxyConfig, Algorithm, BalancerConfig, FailoverCriterion, GatewayConfig, Provider,
    RouteConfig, TargetConfig,
};
use aigw_core::{BoxDriver, Error, ErrorKind};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::{Route, RouteTable};

/// Settings that replace parts of every target's config, for the demo and tests: the
/// config file itself stays unchanged.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Send every Bedrock target without its own `upstream_url` here.
    pub bedrock_endpoint: Option<String>,
    /// Sign every Bedrock call with these credentials (access key id, secret).
    pub bedrock_credentials: Option<(String, String)>,
}

/// Builds the route table: one balancer stack per route, SDK clients shared across targets.
pub async fn build_routes(
    config: &GatewayConfig,
    options: &BuildOptions,
) -> Result<RouteTable, Error> {
    let bedrock = BedrockProvider::new();
    let mut routes = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        routes.push(
            build_route(route, &bedrock, options)
                .await
                .map_err(|e| e.context(format_args!("route {}", route.name)))?,
        );
    }
    Ok(RouteTable::new(routes))
}

async fn build_route(
    route: &RouteConfig,
    bedrock: &BedrockProvider,
    options: &BuildOptions,
) -> Result<Route, Error> {
    let ai: &AiProxyConfig = &route.ai;
    let mut drivers = Vec::with_capacity(ai.targets.len());
    let mut infos = Vec::with_capacity(ai.targets.len());
    for (index, target) in ai.targets.iter().enumerate() {
        let driver = build_driver(target, &ai.balancer, bedrock, options)
            .await
            .map_err(|e| e.context(format_args!("targets[{index}]")))?;
        drivers.push(driver);
        infos.push(TargetInfo {
            label: format!("{}/{}", target.model.provider.as_str(), target.model.name),
            weight: target.weight,
        });
    }
    let weights: Vec<u32> = infos.iter().map(|t| t.weight).collect();
    let picker = match ai.balancer.algorithm {
        Algorithm::RoundRobin => RoundRobin::new(&weights),
        other => {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "balancer algorithm {:?} is not supported yet (supported: round-robin)",
                    other.as_str()
                ),
            ));
        }
    };

    let stack = ServiceBuilder::new()
        // Picks a target per attempt and fails over per Kong's retries/failover_criteria.
        .layer(BalanceLayer::new(
            picker,
            failover_policy(&ai.balancer),
            infos,
        ))
        // One span per attempt, outside the timeout so a timed-out attempt ends its span.
        .layer(aigw_telemetry::AttemptSpanLayer::for_route(route))
        // Each attempt, not the whole request, gets read_timeout, so failover has time left.
        .layer(AttemptTimeoutLayer::new(ai.balancer.read_timeout))
        .service(Targets::new(drivers));

    Ok(Route {
        name: route.name.clone(),
        paths: route.paths.clone(),
        model_name_header: ai.model_name_header,
        response_streaming: ai.response_streaming,
        max_request_body_size: ai.max_request_body_size,
        service: BoxCloneSyncService::new(stack),
    })
}

async fn build_driver(
    target: &TargetConfig,
    balancer: &BalancerConfig,
    bedrock: &BedrockProvider,
    options: &BuildOptions,
) -> Result<BoxDriver, Error> {
    match target.model.provider {
        Provider::Bedrock => {
            let model_options = &target.model.options;
            let static_credentials = match (
                &target.auth.aws_access_key_id,
                &target.auth.aws_secret_access_key,
            ) {
                (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
                _ => options.bedrock_credentials.clone(),
            };
            let spec = BedrockTargetSpec {
                model_id: target.model.name.clone(),
                region: model_options.bedrock.aws_region.clone(),
                endpoint_url: model_options
                    .upstream_url
                    .clone()
                    .or_else(|| options.bedrock_endpoint.clone()),
                static_credentials,
                connect_timeout: balancer.connect_timeout,
                defaults: RequestDefaults {
                    max_tokens: model_options.max_tokens,
                    temperature: model_options.temperature,
                    top_p: model_options.top_p,
                },
            };
            Ok(BoxDriver::new(bedrock.target(spec).await?))
        }
        other => Err(Error::new(
            ErrorKind::Internal,
            format!(
                "model.provider {:?} is not supported yet (supported: bedrock)",
                other.as_str()
            ),
        )),
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
