use std::collections::HashMap;
use std::sync::Arc;

use aigw_balancer::RouteState;
use aigw_config::ResponseStreaming;
use aigw_core::{ChatReply, ChatRequest, Error, ErrorKind};
use tower::util::BoxCloneSyncService;

use crate::router::{RequestHead, Router};
use crate::{KeyAuth, RouteOverview, RoutePlugins};

/// One configured route: its settings and its tower stack.
pub struct Route {
    /// The route's name from the config.
    pub name: String,
    /// The route's `paths` as written, by which gRPC callers may name it.
    pub paths: Vec<String>,
    /// What HTTP requests reach it, by Kong's router.
    pub matching: aigw_config::RouteMatch,
    /// Whether answers name the serving model in `x-aigw-llm-model`.
    pub model_name_header: bool,
    /// Kong's `response_streaming`.
    pub response_streaming: ResponseStreaming,
    /// Largest accepted request body, in bytes.
    pub max_request_body_size: usize,
    /// The header (or gRPC metadata key) whose value keys consistent hashing; `None`
    /// unless the route hashes.
    pub hash_on_header: Option<http::HeaderName>,
    /// The live state of the route's targets, for the status endpoint.
    pub balancer: Arc<RouteState>,
    /// The route's configuration as the status listener shows it, redacted.
    pub overview: RouteOverview,
    /// The balancer stack over the route's targets.
    pub service: BoxCloneSyncService<ChatRequest, ChatReply, Error>,
    /// The route's embeddings targets, when its targets have `route_type:
    /// llm/v1/embeddings` (its chat `service` then refuses every request).
    pub embed: Option<Arc<crate::embed::EmbedRoute>>,
    /// The token counters of the route's targets, for Anthropic's `count_tokens`; `None`
    /// on an embeddings route.
    pub counters: Option<Arc<crate::count::TokenCounters>>,
    /// Kong key-auth: when set, only callers with a consumer's key get in.
    pub key_auth: Option<KeyAuth>,
    /// The route's other Kong plugins: basic-auth, ip-restriction, request-size-limiting,
    /// request-termination.
    pub plugins: RoutePlugins,
    /// Kong ai-rate-limiting-advanced: token limits checked before the stack, charged
    /// when the answer ends.
    pub rate_limit: Option<Arc<crate::AiRateLimiter>>,
    /// Kong's ai-prompt-decorator and ai-prompt-guard, when they apply.
    pub prompt: crate::PromptPlugins,
    /// aigw's chat options (the route's `aigw-*` tags).
    pub chat: aigw_config::ChatOptions,
    /// Kong's `llm_format`: the API the route's HTTP clients speak.
    pub llm_format: aigw_config::LlmFormat,
}

impl Route {
    /// Lets a request in, or says why not; routes without key-auth let everyone in.
    /// Answers the consumer whose key it was, when key-auth named one. `signed_by` is the
    /// consumer whose AWS key pair signed the request, once its signature was verified
    /// against this route's key-auth: it stands in for a key.
    pub fn authorize(
        &self,
        headers: &http::HeaderMap,
        query: Option<&str>,
        signed_by: Option<&Arc<str>>,
    ) -> Result<Option<Arc<str>>, Error> {
        match (&self.key_auth, signed_by) {
            (Some(_), Some(consumer)) => Ok(Some(consumer.clone())),
            (Some(auth), None) => auth.check(headers, query).map(Some),
            (None, _) => Ok(None),
        }
    }
}

impl Route {
    /// The most body bytes worth reading: `max_request_body_size`, or request-size-limiting's
    /// limit when that is smaller.
    pub fn body_limit(&self) -> usize {
        self.plugins
            .body_limit()
            .map_or(self.max_request_body_size, |limit| {
                limit.min(self.max_request_body_size)
            })
    }

    /// The refusal of a body over [`body_limit`](Self::body_limit), in the words of the
    /// limit that binds: Kong's request-size-limiting message, or max_request_body_size.
    pub fn body_too_large(&self) -> Error {
        match self.plugins.body_limit() {
            Some(limit) if limit < self.max_request_body_size => {
                crate::plugins::size_limit_exceeded()
            }
            _ => crate::admission::too_large(self.max_request_body_size),
        }
    }

    /// The request's consistent-hashing key from its headers, when the route hashes.
    pub fn hash_key(&self, headers: &http::HeaderMap) -> Option<Arc<str>> {
        let name = self.hash_on_header.as_ref()?;
        let value = headers.get(name)?.to_str().ok()?;
        Some(Arc::from(value))
    }
}

/// Every route, found by path (HTTP) or by name or path (gRPC).
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    by_key: HashMap<String, usize>,
    /// Kong's router over the routes' matching attributes, for HTTP requests.
    router: Router,
    /// Route indices, largest `max_request_body_size` first, so the first route a caller
    /// gets into bounds what it may send.
    by_body_limit: Vec<usize>,
    /// Whether some route takes credentials; errors then name no route a caller did not.
    protected: bool,
}

impl RouteTable {
    /// A table over routes in config order; the first is the default for gRPC.
    pub fn new(routes: Vec<Route>) -> Self {
        let mut by_key = HashMap::new();
        for (index, route) in routes.iter().enumerate() {
            by_key.entry(route.name.clone()).or_insert(index);
            for path in &route.paths {
                by_key.insert(path.clone(), index);
            }
        }
        let mut by_body_limit: Vec<usize> = (0..routes.len()).collect();
        // Among equal limits, open routes first: they let everyone in without a key check.
        by_body_limit.sort_by_key(|&i| {
            let route = &routes[i];
            (
                std::cmp::Reverse(route.max_request_body_size),
                route.key_auth.is_some(),
            )
        });
        let protected = routes.iter().any(|r| r.key_auth.is_some());
        let router = Router::new(routes.iter().map(|r| r.matching.clone()).collect());
        RouteTable {
            router,
            routes: routes.into_iter().map(Arc::new).collect(),
            by_key,
            by_body_limit,
            protected,
        }
    }

    /// The route an HTTP request reaches by Kong's router, and the route path (as
    /// written) that matched.
    pub(crate) fn by_head(&self, head: &RequestHead<'_>) -> Option<(&Arc<Route>, Option<&str>)> {
        self.router.find(head).map(|(i, p)| {
            let route = &self.routes[i];
            (
                route,
                p.and_then(|p| route.paths.get(p)).map(String::as_str),
            )
        })
    }

    /// The route a gRPC request names (by route name or path); the first when unnamed.
    pub fn select(&self, key: &str) -> Result<&Arc<Route>, Error> {
        let found = if key.is_empty() {
            self.routes.first()
        } else {
            self.by_key.get(key).map(|i| &self.routes[*i])
        };
        found.ok_or_else(|| {
            // The caller may not have a key yet: a config with keys keeps its routes to
            // itself.
            let message = if self.protected {
                format!("no route named {key:?}")
            } else {
                format!(
                    "no route named {key:?}; known routes: {}",
                    self.describe_routes()
                )
            };
            Error::new(ErrorKind::RouteNotFound, message)
        })
    }

    /// The route an OpenAI-style request at `/v1/chat/completions` goes to: the one its
    /// `model` names (route name or path), else the first. SDKs always send some model,
    /// usually an OpenAI model name, so an unknown one is not an error.
    pub fn for_model(&self, model: Option<&str>) -> Result<&Arc<Route>, Error> {
        let named = model
            .and_then(|m| self.by_key.get(m))
            .map(|i| &self.routes[*i]);
        match named {
            Some(route) => Ok(route),
            None => self.select(""),
        }
    }

    /// The largest `max_request_body_size` of any route: the most a body may be read
    /// before its route is known.
    pub fn largest_body_limit(&self) -> usize {
        self.routes
            .iter()
            .map(|r| r.body_limit())
            .max()
            .unwrap_or(0)
    }

    /// The most a request with these `headers` may send before its route is known: the
    /// largest `max_request_body_size` among the routes that would let it in. A caller no
    /// route lets in gets a protected route's refusal, so its body need not be read at all.
    /// Only header credentials count (gRPC metadata has no query string).
    pub fn body_limit_for(&self, headers: &http::HeaderMap) -> Result<usize, Error> {
        let mut refusal = None;
        for &index in &self.by_body_limit {
            let route = &self.routes[index];
            match route.authorize(headers, None, None) {
                Ok(_) => return Ok(route.max_request_body_size),
                Err(error) => {
                    refusal.get_or_insert(error);
                }
            }
        }
        Err(refusal
            .unwrap_or_else(|| Error::new(ErrorKind::RouteNotFound, "no routes are configured")))
    }

    /// Whether some route takes credentials (key-auth).
    pub fn is_protected(&self) -> bool {
        self.protected
    }

    /// Every route, in config order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    fn describe_routes(&self) -> String {
        self.routes
            .iter()
            .map(|r| format!("{} ({})", r.name, r.paths.join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
