//! Admission: the one path every front end's request takes into a route's stack.
//!
//! A front end decodes its wire request into a [`RouteKey`], the [`Caller`]'s headers and a
//! core [`ChatRequest`], and encodes the [`Admitted`] answer back; everything between is
//! here, in this order:
//!
//! 1. [`Admission::route`]: find the route (HTTP requests by Kong's router, `router.rs`),
//!    name it in the request's telemetry record, check the caller's key (Kong's key-auth,
//!    or a SigV4 signature the Bedrock front end verified), then the route's other plugins
//!    (`plugins.rs`: basic-auth, ip-restriction, request-size-limiting by Content-Length,
//!    acl over the consumer the auth plugins named, request-termination);
//! 2. [`Admission::call`]: the route's body limit, ai-prompt-decorator and ai-prompt-guard,
//!    its `response_streaming` policy, the consistent-hashing key, the token rate limit
//!    (`ratelimit/`: checked here, charged when the answer ends), the call into the route's
//!    stack (see `stack.rs`), and the serving model's name for `x-aigw-llm-model`.
//!
//! Step 1 comes before a body is read wherever the route is known from the request's head,
//! so an unknown path or a missing key costs no body read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use aigw_config::{ConsumerConfig, ResponseStreaming};
use aigw_core::{ChatCompletion, ChatReply, ChatRequest, ChunkStream, Error, ErrorKind, ReplyBody};
use http::{HeaderMap, HeaderValue};
use tower::ServiceExt;

use crate::router::RequestHead;
use crate::{Route, RouteTable, SharedRoutes};

/// Header (or gRPC metadata key) naming the target that served an answer, like Kong's
/// `X-Kong-LLM-Model`.
pub(crate) const MODEL_HEADER: &str = "x-aigw-llm-model";

/// How a request names its route.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RouteKey<'a> {
    /// An HTTP request's head, matched by Kong's router (see `router.rs`).
    Http(RequestHead<'a>),
    /// A route's name or one of its paths (gRPC's `route` field); empty for the first route.
    NameOrPath(&'a str),
    /// The `model` of a request at OpenAI's own path: a route's name or path, else the
    /// first route, since SDKs always send some model, usually an OpenAI model name.
    Model(Option<&'a str>),
}

/// What admission reads of the caller: its key (header, `Authorization: Bearer`, or query
/// parameter) and the consistent-hashing header. gRPC metadata is a header map too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    /// HTTP headers or gRPC metadata.
    pub(crate) headers: &'a HeaderMap,
    /// The URL's query string, where the front end has one.
    pub(crate) query: Option<&'a str>,
    /// The TCP peer's address (see [`peer_ip`]); `None` when the server could not tell,
    /// which ip-restriction refuses.
    pub(crate) peer: Option<IpAddr>,
    /// The HTTP path; `None` for gRPC, where rate limits see the route's first path.
    pub(crate) path: Option<&'a str>,
    /// The consumer whose AWS key pair signed the request, set only by the Bedrock front
    /// end once it verified the SigV4 signature with the route's key-auth pairs; key-auth
    /// then takes it in place of a key.
    pub(crate) signed_by: Option<&'a Arc<str>>,
}

/// A route a caller was let into, and the consumer it was let in as.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) route: Arc<Route>,
    pub(crate) consumer: Option<Arc<ConsumerConfig>>,
}

/// The TCP peer's IP address, from the `ConnectInfo` the server's front door puts in each
/// request's extensions (HTTP and gRPC alike), for ip-restriction.
pub(crate) fn peer_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|peer| peer.0.ip())
}

/// What a front end can send back, which decides how a route's `response_streaming`
/// applies to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answering {
    /// Whether a whole answer asked for may go out as a stream (`response_streaming:
    /// always`); false where the wire call itself fixes the answer's shape.
    pub(crate) may_stream_unasked: bool,
    /// How this front end's client asks for a whole answer, for the refusal on routes
    /// that deny streaming.
    pub(crate) ask_for_whole: &'static str,
}

/// An answer on its way back to a front end.
pub(crate) struct Admitted {
    /// The answer, whole or streamed as the request ended up asking.
    pub(crate) reply: ChatReply,
    /// The serving target's name for [`MODEL_HEADER`], when the route's
    /// `model_name_header` asks for it.
    pub(crate) model_header: Option<HeaderValue>,
    /// More headers (gRPC: metadata) for the answer: a rate limit's figures.
    pub(crate) headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl Admitted {
    /// The answer of a request that asked for a whole one.
    pub(crate) fn into_whole(self) -> Result<ChatCompletion, Error> {
        match self.reply.body {
            ReplyBody::Complete(answer) => Ok(answer),
            ReplyBody::Stream(_) => Err(Error::new(
                ErrorKind::Internal,
                "the driver streamed an answer that was asked for whole",
            )),
        }
    }

    /// The chunks of a request that asked for a stream.
    pub(crate) fn into_stream(self) -> Result<ChunkStream, Error> {
        match self.reply.body {
            ReplyBody::Stream(chunks) => Ok(chunks),
            ReplyBody::Complete(answer) => Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "the driver answered whole where a stream was asked for (answer {})",
                    answer.id
                ),
            )),
        }
    }
}

/// One request's view of the route table: loaded once, so a reload mid-request changes
/// nothing for it.
pub(crate) struct Admission {
    table: Arc<RouteTable>,
}

impl Admission {
    /// Admission against the table in force now.
    pub(crate) fn new(routes: &SharedRoutes) -> Self {
        Admission {
            table: routes.load(),
        }
    }

    /// Whether some route takes the HTTP request `head`.
    pub(crate) fn serves(&self, head: &RequestHead<'_>) -> bool {
        self.table.by_head(head).is_some()
    }

    /// The most body bytes worth reading for `route`; before the route is known, the
    /// largest any route accepts.
    pub(crate) fn body_limit(&self, route: Option<&Route>) -> usize {
        route.map_or_else(|| self.table.largest_body_limit(), Route::body_limit)
    }

    /// The refusal of a body over [`body_limit`](Self::body_limit) for `route`.
    pub(crate) fn body_too_large(&self, route: Option<&Route>) -> Error {
        route.map_or_else(
            || too_large(self.table.largest_body_limit()),
            Route::body_too_large,
        )
    }

    /// The route `key` names, whether or not its caller gets in: for the record of a
    /// refusal.
    pub(crate) fn named(&self, key: RouteKey<'_>) -> Option<Arc<Route>> {
        self.lookup(key).ok().cloned()
    }

    /// The route `key` names, once `caller` is let in by it.
    pub(crate) fn route(&self, key: RouteKey<'_>, caller: Caller<'_>) -> Result<Entry, Error> {
        let route = self.lookup(key)?;
        // Named before key-auth, so refused requests still carry their route in logs.
        aigw_telemetry::record_route(&route.name);
        let key_consumer = route.authorize(caller.headers, caller.query, caller.signed_by)?;
        let consumer = route.plugins.admit(caller, key_consumer)?;
        Ok(Entry {
            route: route.clone(),
            consumer,
        })
    }

    fn lookup(&self, key: RouteKey<'_>) -> Result<&Arc<Route>, Error> {
        Ok(match key {
            // Kong's words, which clients of a Kong gateway may already look for.
            RouteKey::Http(head) => {
                let (route, path) = self.table.by_head(&head).ok_or_else(|| {
                    Error::new(
                        ErrorKind::RouteNotFound,
                        "no Route matched with those values",
                    )
                })?;
                // The span's `http.route` is the config's path, not the request's.
                if let Some(path) = path {
                    aigw_telemetry::record_http_route(path);
                }
                route
            }
            RouteKey::NameOrPath(name) => self.table.select(name)?,
            RouteKey::Model(model) => self.table.for_model(model)?,
        })
    }

    /// Runs `request` (whose wire form took `body_len` bytes) through `route`'s stack.
    pub(crate) async fn call(
        entry: &Entry,
        caller: Caller<'_>,
        answering: Answering,
        mut request: ChatRequest,
        body_len: usize,
    ) -> Result<Admitted, Error> {
        let route = &*entry.route;
        if let Some(model) = &request.model {
            aigw_telemetry::record_requested_model(model);
        }
        Self::admit_prompt(route, &mut request, body_len)?;
        request.stream = match (route.response_streaming, request.stream) {
            (ResponseStreaming::Deny, true) => {
                return Err(Error::invalid_request(format!(
                    "streaming is disabled on this route (response_streaming: deny); {}",
                    answering.ask_for_whole
                )));
            }
            (ResponseStreaming::Always, _) if answering.may_stream_unasked => true,
            (_, asked) => asked,
        };
        request.hash_key = route.hash_key(caller.headers);
        // Last before the stack, so a request refused for any other reason spends nothing;
        // tokens are charged when the answer ends.
        let grant = Self::check_token_limit(entry, caller).await?;
        // Failover happens inside this call and nowhere after it: a stream is handed back
        // only once its first event arrived, and from then on its bytes may already be the
        // client's.
        let mut reply = route.service.clone().oneshot(request).await?;
        let mut headers = Vec::new();
        if let Some(mut grant) = grant {
            headers = std::mem::take(&mut grant.headers);
            reply = grant.charge_on_end(reply, owned_facts(entry, caller)).await;
        }
        let model_header = route
            .model_name_header
            .then(|| HeaderValue::from_str(&reply.served_by.to_string()).ok())
            .flatten();
        Ok(Admitted {
            reply,
            model_header,
            headers,
        })
    }
}

/// An embeddings answer on its way back to a front end.
pub(crate) struct EmbedAdmitted {
    pub(crate) embedded: crate::embed::Embedded,
    /// More headers (gRPC: metadata) for the answer: a rate limit's figures.
    pub(crate) headers: Vec<(http::HeaderName, HeaderValue)>,
}

/// What an embeddings request asks, decoded by its front end.
pub(crate) struct EmbedAsk<'a> {
    /// The client's `model`, for the record.
    pub(crate) model: Option<&'a str>,
    pub(crate) inputs: Vec<String>,
    pub(crate) dimensions: Option<usize>,
    /// The wire request's size, for the route's body limits.
    pub(crate) body_len: usize,
}

impl Admission {
    /// Embeds at one of `entry`'s targets after the route's body limits and its token
    /// limit, which is charged the input tokens the provider counted.
    pub(crate) async fn embed(
        entry: &Entry,
        caller: Caller<'_>,
        ask: EmbedAsk<'_>,
    ) -> Result<EmbedAdmitted, Error> {
        let route = &*entry.route;
        if let Some(model) = ask.model {
            aigw_telemetry::record_requested_model(model);
        }
        let embedder = crate::embed::EmbedRoute::of(route)?;
        Self::check_body(route, ask.body_len)?;
        let grant = Self::check_token_limit(entry, caller).await?;
        let hash_key = route.hash_key(caller.headers);
        let embedded = embedder
            .embed(ask.inputs, ask.dimensions, hash_key.as_deref())
            .await?;
        let mut headers = Vec::new();
        if let Some(mut grant) = grant {
            headers = std::mem::take(&mut grant.headers);
            let tokens = embedded
                .embeddings
                .input_tokens
                .map_or(0, |t| u32::try_from(t).unwrap_or(u32::MAX));
            let usage = aigw_core::Usage {
                prompt_tokens: tokens,
                total_tokens: tokens,
                ..aigw_core::Usage::default()
            };
            grant
                .charge_now(&embedded.served_by, usage, owned_facts(entry, caller))
                .await;
        }
        Ok(EmbedAdmitted { embedded, headers })
    }

    /// The route's token limit (Kong's ai-rate-limiting-advanced), checked for `caller`;
    /// the grant charges the answer's tokens.
    async fn check_token_limit(
        entry: &Entry,
        caller: Caller<'_>,
    ) -> Result<Option<crate::ratelimit::Grant>, Error> {
        let Some(limiter) = &entry.route.rate_limit else {
            return Ok(None);
        };
        let facts = crate::ratelimit::Facts {
            consumer: entry.consumer.as_deref(),
            headers: caller.headers,
            peer: caller.peer,
            path: limit_path(entry, caller),
        };
        Ok(Some(limiter.check(&facts).await?))
    }

    /// Counts `request`'s input tokens at one of `entry`'s targets (Anthropic's
    /// `count_tokens`), after the same body limits and prompt plugins as a chat call, so
    /// the count is of what the model would be sent. No token limit is checked or charged:
    /// counting spends no tokens.
    pub(crate) async fn count_tokens(
        entry: &Entry,
        mut request: ChatRequest,
        body_len: usize,
    ) -> Result<u64, Error> {
        let route = &*entry.route;
        if let Some(model) = &request.model {
            aigw_telemetry::record_requested_model(model);
        }
        Self::admit_prompt(route, &mut request, body_len)?;
        let counters = route.counters.as_deref().ok_or_else(|| {
            Error::invalid_request(format!(
                "route {} serves embeddings; count_tokens needs a chat route",
                route.name
            ))
        })?;
        counters.count(request).await
    }

    /// The route's body limits, then Kong's ai-prompt-decorator and ai-prompt-guard
    /// (`prompt.rs`).
    fn admit_prompt(
        route: &Route,
        request: &mut ChatRequest,
        body_len: usize,
    ) -> Result<(), Error> {
        Self::check_body(route, body_len)?;
        route.prompt.apply(request, body_len)
    }

    /// The route's `max_request_body_size` and request-size-limiting.
    fn check_body(route: &Route, body_len: usize) -> Result<(), Error> {
        if body_len > route.max_request_body_size {
            return Err(too_large(route.max_request_body_size));
        }
        if route
            .plugins
            .body_limit()
            .is_some_and(|limit| body_len > limit)
        {
            return Err(crate::plugins::size_limit_exceeded());
        }
        Ok(())
    }
}

/// The path rate limits match on: the HTTP request's, else (gRPC) the route's first.
fn limit_path<'a>(entry: &'a Entry, caller: Caller<'a>) -> &'a str {
    caller
        .path
        .or_else(|| entry.route.paths.first().map(String::as_str))
        .unwrap_or_default()
}

/// The facts a token charge needs once the request's head is gone.
fn owned_facts(entry: &Entry, caller: Caller<'_>) -> crate::ratelimit::OwnedFacts {
    crate::ratelimit::OwnedFacts {
        consumer: entry.consumer.clone(),
        headers: caller.headers.clone(),
        peer: caller.peer,
        path: limit_path(entry, caller).to_owned(),
    }
}

/// The refusal of a body over `limit` bytes.
pub(crate) fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorKind::PayloadTooLarge,
        format!("request body is larger than this route's max_request_body_size of {limit} bytes"),
    )
}
