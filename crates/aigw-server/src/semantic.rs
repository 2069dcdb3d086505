//! Kong's `semantic` balancing algorithm, the embedding half: [`SemanticLayer`] embeds a
//! request's prompt (its last user message, as Kong does) and names the target whose
//! `description` is nearest, within `vectordb.threshold`, in the request's pick key; the
//! balancer's [`Semantic`](aigw_balancer::pick::Semantic) pick then takes it while it is
//! usable, and the usual rules (weighted round-robin, failover) take over from there.
//!
//! Every description is embedded once, when the route is built (at start and at each
//! reload), and the vectors stay in memory: a route has a handful of targets, so an exact
//! search costs less than asking a vector store. A prompt matching no description within
//! the threshold goes to the target described `CATCHALL`, if there is one. The prompt's
//! embedding call has a span and a timeout of its own, and identical prompts are answered
//! from a small cache (bounded, with a TTL); when the call fails or times out the request
//! is not lost: it falls back as a prompt that matched nothing would, and the failure is
//! counted in `aigw_semantic_embedding_failures_total`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aigw_config::{CATCHALL, DistanceMetric, RouteConfig, SemanticConfig};
use aigw_core::{
    ChatReply, ChatRequest, EmbedPurpose, EmbedRequest, EmbedService, Error, ErrorKind, Role,
};
use aigw_telemetry::EventCounter;
use futures_util::future::BoxFuture;
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use crate::BuildOptions;

/// The longest a prompt's embedding may take before the request falls back: the
/// balancer's `read_timeout` when shorter.
const EMBED_TIMEOUT: Duration = Duration::from_secs(5);
/// Prompts whose vectors are kept, and for how long.
const CACHE_ENTRIES: usize = 1024;
const CACHE_TTL: Duration = Duration::from_secs(300);

/// What one semantic route knows: the description vectors and how to embed a prompt.
pub(crate) struct SemanticRouter {
    route: Arc<str>,
    model: String,
    embedder: EmbedService,
    /// `(target index, description vector)`, the `CATCHALL` target left out.
    described: Vec<(usize, Vec<f32>)>,
    catchall: Option<usize>,
    metric: DistanceMetric,
    threshold: f64,
    dimensions: usize,
    timeout: Duration,
    cache: PromptCache,
    failures: EventCounter,
}

impl SemanticRouter {
    /// Builds the embedder and embeds every description once. Fails (and so does the
    /// route) when the descriptions cannot be embedded: a semantic route without its
    /// vectors would send every prompt to the fallback without saying so.
    pub(crate) async fn build(
        route: &RouteConfig,
        config: &SemanticConfig,
        options: &BuildOptions,
    ) -> Result<Self, Error> {
        let embedder = embedder(config, options)
            .await
            .map_err(|e| e.context("embeddings"))?;
        let targets = &route.ai.targets;
        let catchall = targets
            .iter()
            .position(|t| t.description.as_deref() == Some(CATCHALL));
        let described: Vec<(usize, String)> = targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let text = t.description.as_deref()?;
                (text != CATCHALL).then(|| (i, text.to_owned()))
            })
            .collect();
        let mut vectors = Vec::new();
        if !described.is_empty() {
            let answer = embedder
                .clone()
                .oneshot(EmbedRequest {
                    inputs: described.iter().map(|(_, text)| text.clone()).collect(),
                    purpose: EmbedPurpose::Document,
                    dimensions: Some(config.dimensions),
                    // Distances are compared between unit vectors, whatever the model.
                    normalize: true,
                })
                .await
                .map_err(|e| e.context("embedding the targets' descriptions"))?;
            vectors = answer.vectors;
        }
        if vectors.len() != described.len() {
            return Err(Error::new(
                ErrorKind::Internal,
                "the embeddings model answered a different number of vectors than descriptions",
            ));
        }
        if let Some(v) = vectors.iter().find(|v| v.len() != config.dimensions) {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "vectordb.dimensions is {} but the embeddings model answers vectors of {}",
                    config.dimensions,
                    v.len()
                ),
            ));
        }
        Ok(SemanticRouter {
            route: Arc::from(route.name.as_str()),
            model: config.model.clone(),
            embedder,
            described: described.into_iter().map(|(i, _)| i).zip(vectors).collect(),
            catchall,
            metric: config.distance_metric,
            threshold: config.threshold,
            dimensions: config.dimensions,
            timeout: EMBED_TIMEOUT.min(route.ai.balancer.read_timeout),
            cache: PromptCache::default(),
            failures: aigw_telemetry::metrics().semantic_embedding_failures(&route.name),
        })
    }

    /// The target for `request`: the nearest description within the threshold, else the
    /// `CATCHALL` target, else none (the balancer's fallback decides).
    pub(crate) async fn choose(&self, request: &ChatRequest) -> Option<usize> {
        let prompt = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.text())?;
        match self.embed(&prompt).await {
            Ok(vector) => self.nearest(&vector).or(self.catchall),
            Err(error) => {
                self.failures.inc();
                tracing::warn!(route = %self.route, %error, "prompt embedding failed; falling back");
                self.catchall
            }
        }
    }

    async fn embed(&self, prompt: &str) -> Result<Arc<[f32]>, Error> {
        if let Some(vector) = self.cache.get(prompt) {
            return Ok(vector);
        }
        // Exported whatever the log filter, as every span of a request is.
        let span = tracing::info_span!(
            target: aigw_telemetry::SPAN_TARGET,
            "embeddings",
            otel.name = %format_args!("embeddings {}", self.model),
            otel.kind = "client",
            gen_ai.operation.name = "embeddings",
            gen_ai.request.model = %self.model,
            aigw.route = %self.route,
        );
        let call = self.embedder.clone().oneshot(EmbedRequest {
            inputs: vec![prompt.to_owned()],
            purpose: EmbedPurpose::Query,
            dimensions: Some(self.dimensions),
            normalize: true,
        });
        let answer = tokio::time::timeout(self.timeout, call.instrument(span))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::UpstreamTimeout,
                    format!("the prompt's embedding took over {:?}", self.timeout),
                )
            })??;
        let vector: Arc<[f32]> = answer
            .vectors
            .into_iter()
            .next()
            .filter(|v| v.len() == self.dimensions)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UpstreamProtocol,
                    "the embeddings model answered no vector of vectordb.dimensions",
                )
            })?
            .into();
        self.cache.put(prompt, vector.clone());
        Ok(vector)
    }

    fn nearest(&self, prompt: &[f32]) -> Option<usize> {
        self.described
            .iter()
            .map(|(target, v)| (*target, distance(self.metric, prompt, v)))
            .filter(|(_, d)| *d <= self.threshold)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(target, _)| target)
    }
}

/// The distance between two vectors by `metric`: cosine distance (1 − cosine similarity,
/// as Redis's vector search reports it) or Euclidean distance.
fn distance(metric: DistanceMetric, a: &[f32], b: &[f32]) -> f64 {
    match metric {
        DistanceMetric::Cosine => {
            let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
            for (x, y) in a.iter().zip(b) {
                let (x, y) = (f64::from(*x), f64::from(*y));
                dot += x * y;
                na += x * x;
                nb += y * y;
            }
            if na == 0.0 || nb == 0.0 {
                return 1.0;
            }
            1.0 - dot / (na.sqrt() * nb.sqrt())
        }
        DistanceMetric::Euclidean => a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            .sqrt(),
    }
}

/// The embeddings service `config` names, with the test and demo overrides of `options`.
async fn embedder(config: &SemanticConfig, options: &BuildOptions) -> Result<EmbedService, Error> {
    crate::embed::embed_service(
        config.provider,
        &config.model,
        &config.options,
        &config.auth,
        options,
        EMBED_TIMEOUT,
    )
    .await
}

/// Prompt vectors by prompt text, at most [`CACHE_ENTRIES`], each for [`CACHE_TTL`].
#[derive(Default)]
struct PromptCache {
    entries: Mutex<CacheEntries>,
}

/// Each prompt's vector with when it was stored and its insertion number (the order the
/// oldest leaves in when the cache is full).
#[derive(Default)]
struct CacheEntries {
    by_prompt: HashMap<String, (Instant, u64, Arc<[f32]>)>,
    next: u64,
}

impl PromptCache {
    fn get(&self, prompt: &str) -> Option<Arc<[f32]>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, _, vector) = entries.by_prompt.get(prompt)?;
        (at.elapsed() < CACHE_TTL).then(|| vector.clone())
    }

    fn put(&self, prompt: &str, vector: Arc<[f32]>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let map = &mut entries.by_prompt;
        if map.len() >= CACHE_ENTRIES && !map.contains_key(prompt) {
            map.retain(|_, (at, _, _)| at.elapsed() < CACHE_TTL);
            if map.len() >= CACHE_ENTRIES {
                // Still full of live entries: the oldest goes.
                let oldest = map
                    .iter()
                    .min_by_key(|(_, (_, n, _))| *n)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
            }
        }
        let n = entries.next;
        entries.next += 1;
        entries
            .by_prompt
            .insert(prompt.to_owned(), (Instant::now(), n, vector));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_prompt
            .len()
    }
}

/// Embeds each request's prompt before the balancer and names the chosen target in the
/// request's pick key.
#[derive(Clone)]
pub(crate) struct SemanticLayer {
    router: Arc<SemanticRouter>,
}

impl SemanticLayer {
    pub(crate) fn new(router: Arc<SemanticRouter>) -> Self {
        SemanticLayer { router }
    }
}

impl<S> Layer<S> for SemanticLayer {
    type Service = SemanticService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SemanticService {
            inner,
            router: self.router.clone(),
        }
    }
}

/// See [`SemanticLayer`].
#[derive(Clone)]
pub(crate) struct SemanticService<S> {
    inner: S,
    router: Arc<SemanticRouter>,
}

impl<S> Service<ChatRequest> for SemanticService<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = Error> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = ChatReply;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatReply, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // The layers below (shedding over the route's limit) decide readiness, so a
        // request they would refuse costs no embedding.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: ChatRequest) -> Self::Future {
        // The readied service goes with this call; the clone stays for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let router = self.router.clone();
        Box::pin(async move {
            let chosen = router.choose(&request).await;
            request.hash_key = chosen.map(|target| Arc::from(target.to_string()));
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_as_the_vector_stores_report_them() {
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        assert!(distance(DistanceMetric::Cosine, &a, &a).abs() < 1e-9);
        assert!((distance(DistanceMetric::Cosine, &a, &b) - 1.0).abs() < 1e-9);
        assert!((distance(DistanceMetric::Euclidean, &a, &b) - 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(distance(DistanceMetric::Cosine, &a, &[0.0, 0.0]), 1.0);
    }

    #[test]
    fn the_prompt_cache_is_bounded() {
        let cache = PromptCache::default();
        for i in 0..CACHE_ENTRIES + 10 {
            cache.put(&format!("prompt {i}"), Arc::from(vec![i as f32]));
        }
        assert_eq!(cache.len(), CACHE_ENTRIES);
        let newest = format!("prompt {}", CACHE_ENTRIES + 9);
        assert_eq!(
            cache.get(&newest).as_deref(),
            Some(&[(CACHE_ENTRIES + 9) as f32][..])
        );
        assert!(cache.get("prompt 0").is_none(), "the oldest went first");
    }
}
