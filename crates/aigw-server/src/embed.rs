//! Embeddings routes: a route whose targets all have Kong's `route_type:
//! llm/v1/embeddings` embeds instead of chatting. Each target is an [`EmbedService`] from
//! its driver; one request picks a target with the route's own balancer algorithm and
//! state (so `/status` shows it like a chat route), fails over per the route's
//! `failover_criteria`, and each attempt gets a span with `gen_ai.operation.name =
//! embeddings`. The front ends decode the wire form and call [`EmbedRoute::embed`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_balancer::pick::Candidates;
use aigw_balancer::{FailoverPolicy, Pick, RouteState, Tried};
use aigw_config::{ModelOptions, Provider, RouteConfig, TargetAuth};
use aigw_core::{EmbedPurpose, EmbedRequest, EmbedService, Embeddings, Error, ErrorKind, ServedBy};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::side_call::SideTarget;
use crate::{BuildOptions, Route};

/// Kong's `route_type` of an embeddings target.
pub(crate) const EMBEDDINGS_ROUTE_TYPE: &str = "llm/v1/embeddings";

/// One embeddings target: its service and how spans name it.
struct EmbedTarget {
    service: EmbedService,
    label: String,
    provider: &'static str,
    model: String,
    /// Kong's `options.bedrock.embeddings_normalize`.
    normalize: bool,
}

/// The embeddings half of a route whose targets all embed.
pub struct EmbedRoute {
    route: String,
    targets: Vec<EmbedTarget>,
    picker: Box<dyn Pick>,
    state: Arc<RouteState>,
    policy: FailoverPolicy,
    timeout: Duration,
    /// The route's concurrency limit, shed past it as chat's `ShedOverLimit` does.
    permits: Arc<Semaphore>,
    max_concurrent: usize,
}

/// A route's vectors and the target that made them.
pub(crate) struct Embedded {
    pub(crate) embeddings: Embeddings,
    /// The serving target's model name.
    pub(crate) model: String,
    /// The serving target, as chat's `x-aigw-llm-model` and token limits name it.
    pub(crate) served_by: ServedBy,
}

/// Whether `route` is an embeddings route; a route mixing embeddings and other
/// `route_type`s is refused, since one request could not be served by every target.
pub(crate) fn is_embeddings_route(route: &RouteConfig) -> Result<bool, Error> {
    let targets = &route.ai.targets;
    let embedding = targets
        .iter()
        .filter(|t| t.route_type == EMBEDDINGS_ROUTE_TYPE)
        .count();
    if embedding != 0 && embedding != targets.len() {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "targets[].route_type: {embedding} of {} targets are {EMBEDDINGS_ROUTE_TYPE}; a route's targets must all embed or none",
                targets.len()
            ),
        ));
    }
    Ok(embedding != 0)
}

impl EmbedRoute {
    /// The embeddings services of `route`'s targets, sharing the route's balancer state.
    pub(crate) async fn build(
        route: &RouteConfig,
        options: &BuildOptions,
        picker: Box<dyn Pick>,
        state: Arc<RouteState>,
        policy: FailoverPolicy,
    ) -> Result<Self, Error> {
        let ai = &route.ai;
        let mut targets = Vec::with_capacity(ai.targets.len());
        for (index, target) in ai.targets.iter().enumerate() {
            let service = embed_service(
                target.model.provider,
                &target.model.name,
                &target.model.options,
                &target.auth,
                options,
                ai.balancer.connect_timeout,
            )
            .await
            .map_err(|e| e.context(format_args!("targets[{index}]")))?;
            targets.push(EmbedTarget {
                service,
                label: target.label(),
                provider: target.model.provider.as_str(),
                model: target.model.name.clone(),
                normalize: target.model.options.bedrock.embeddings_normalize,
            });
        }
        Ok(EmbedRoute {
            route: route.name.clone(),
            targets,
            picker,
            state,
            policy,
            timeout: ai.balancer.read_timeout,
            permits: Arc::new(Semaphore::new(
                options.limits.max_concurrent_requests.max(1),
            )),
            max_concurrent: options.limits.max_concurrent_requests.max(1),
        })
    }

    /// The embeddings half of `route`, or the 400 of a chat route asked to embed.
    pub(crate) fn of(route: &Route) -> Result<&EmbedRoute, Error> {
        route.embed.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!(
                    "route {} serves route_type llm/v1/chat; embeddings need a route whose targets have route_type {EMBEDDINGS_ROUTE_TYPE}",
                    route.name
                ),
            )
        })
    }

    /// Embeds `inputs` at one target, failing over to the next the balancer picks when
    /// the route's `failover_criteria` allow; `hash_key` keys consistent hashing.
    pub(crate) async fn embed(
        &self,
        inputs: Vec<String>,
        dimensions: Option<usize>,
        hash_key: Option<&str>,
    ) -> Result<Embedded, Error> {
        if inputs.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "input: must hold at least one text",
            ));
        }
        if dimensions == Some(0) {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "dimensions: must be at least 1",
            ));
        }
        let Ok(_permit) = self.permits.try_acquire() else {
            return Err(crate::limit::overloaded(self.max_concurrent));
        };
        let request = EmbedRequest {
            inputs,
            purpose: EmbedPurpose::Document,
            dimensions,
            normalize: false,
        };
        let mut tried = Tried::default();
        let mut last: Option<Error> = None;
        for number in 1..=self.policy.retries.saturating_add(1) {
            let picked = self
                .picker
                .pick(&Candidates::new(&self.state, &tried, hash_key));
            let Some(index) = picked.filter(|&i| i < self.targets.len()) else {
                break;
            };
            if number > 1 {
                self.state.record_failover();
            }
            tried.insert(index);
            let target = &self.targets[index];
            let started = Instant::now();
            let request = EmbedRequest {
                normalize: target.normalize,
                ..request.clone()
            };
            let side = SideTarget {
                route: &self.route,
                index,
                label: &target.label,
                provider: target.provider,
                model: &target.model,
            };
            let call = target.service.clone().oneshot(request);
            let answer = crate::side_call::attempt(
                "embeddings",
                &side,
                number,
                self.timeout,
                call,
                |e: &Embeddings| e.input_tokens,
            )
            .await;
            match answer {
                Ok(embeddings) => {
                    self.state.record_success(index);
                    self.state.record_answer(index, started.elapsed(), None);
                    return Ok(Embedded {
                        embeddings,
                        model: target.model.clone(),
                        served_by: ServedBy {
                            provider: target.provider,
                            model: Arc::from(target.model.as_str()),
                        },
                    });
                }
                Err(error) => {
                    self.state.record_failure(index, &error);
                    let move_on = self.policy.allows(&error);
                    let error = error.context(format_args!("target {index} ({})", target.label));
                    last = Some(error);
                    if !move_on {
                        break;
                    }
                    tracing::debug!(
                        target_index = index,
                        "embeddings attempt failed, failing over"
                    );
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(
                ErrorKind::NoHealthyTarget,
                format!("route {}: no embeddings target is in service", self.route),
            )
        }))
    }
}

/// An embeddings service for one model at one provider, with the demo and test
/// overrides of `options` (the Bedrock endpoint and credentials).
pub(crate) async fn embed_service(
    provider: Provider,
    model: &str,
    model_options: &ModelOptions,
    auth: &TargetAuth,
    options: &BuildOptions,
    connect_timeout: Duration,
) -> Result<EmbedService, Error> {
    match provider {
        Provider::Bedrock => {
            let spec =
                crate::drivers::bedrock_spec(model, model_options, auth, options, connect_timeout);
            aigw_bedrock::BedrockProvider::new().embeddings(spec).await
        }
        Provider::OpenAi => {
            let spec = aigw_openai::OpenAiTargetSpec {
                model: model.to_owned(),
                upstream_url: model_options.upstream_url.clone(),
                auth: crate::drivers::openai_credentials(auth),
                connect_timeout,
            };
            aigw_openai::OpenAiProvider::new().embeddings(spec).await
        }
        other => Err(Error::new(
            ErrorKind::Internal,
            format!("{} embeddings are not supported yet", other.as_str()),
        )),
    }
}
