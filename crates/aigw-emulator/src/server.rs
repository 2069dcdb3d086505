//! The HTTP surface: the two Bedrock Runtime operations and the `/_emulator` control API.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde_json::Value;
use tokio::sync::watch;

use crate::Emulator;
use crate::answer::{Answer, answer, parse_prompt};
use crate::auth::Auth;
use crate::error::AwsError;
use crate::knobs::{Fault, KnobSet, Knobs, Lookup, Slot};
use crate::record::{Operation, Recorder, SeenRequest};
use crate::rich::{Caches, Dress, dress};
use crate::stream::{self, StreamFault, StreamPlan};

/// State shared by every request and every handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) knobs: Knobs,
    pub(crate) recorder: Recorder,
    pub(crate) requests: AtomicU64,
    pub(crate) cancelled_streams: AtomicU64,
    pub(crate) open_streams: AtomicU64,
    /// Prompt prefixes cached by earlier requests with cache points.
    pub(crate) caches: Caches,
    /// Flips to `true` when the emulator stops, releasing hung requests and open streams so
    /// a graceful shutdown does not wait on them forever.
    pub(crate) stop: watch::Sender<bool>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            knobs: Knobs::default(),
            recorder: Recorder::default(),
            requests: AtomicU64::new(0),
            cancelled_streams: AtomicU64::new(0),
            open_streams: AtomicU64::new(0),
            caches: Caches::default(),
            stop: watch::channel(false).0,
        }
    }
}

/// Resolves once the emulator is stopping; never, if it cannot be told.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits out a model's configured latency before its first byte; `false` when the emulator
/// began shutting down meanwhile, so the caller answers "shutting down" instead.
pub(crate) async fn sit_out_latency(latency: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if latency.is_zero() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(latency) => true,
        () = stopped(stop) => false,
    }
}

/// Tracks one request until its answer is complete; dropped before that, the client went away.
#[derive(Debug)]
pub(crate) struct Inflight {
    shared: Arc<Shared>,
    id: u64,
    stream: bool,
    done: bool,
}

impl Inflight {
    pub(crate) fn new(shared: Arc<Shared>, id: u64, stream: bool) -> Self {
        if stream {
            shared.open_streams.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            shared,
            id,
            stream,
            done: false,
        }
    }

    /// The answer is fully handed over (or deliberately broken by a fault).
    pub(crate) fn complete(&mut self) {
        self.done = true;
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        if self.stream {
            self.shared.open_streams.fetch_sub(1, Ordering::Relaxed);
        }
        if !self.done {
            if self.stream {
                self.shared
                    .cancelled_streams
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.shared.recorder.mark_went_away(self.id);
            tracing::debug!(id = self.id, "client went away before the answer completed");
        }
    }
}

/// The emulator's routes, ready to serve or to merge into another router (merge, not nest:
/// the recorded raw path is the request's path as the router sees it).
pub fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/model/{model_id}/converse", post(converse))
        .route("/model/{model_id}/converse-stream", post(converse_stream))
        .route("/model/{model_id}/invoke", post(crate::embeddings::invoke))
        .route(
            "/model/{model_id}/count-tokens",
            post(crate::count_tokens::count_tokens),
        )
        .route("/v1/embeddings", post(crate::embeddings::openai_embeddings))
        .route(
            "/v1/chat/completions",
            post(crate::openai_upstream::chat_completions),
        )
        .route(
            "/_emulator/knobs",
            get(get_knobs).put(put_knobs).delete(delete_knobs),
        )
        .route(
            "/_emulator/requests",
            get(get_requests).delete(delete_requests),
        )
        .route("/_emulator/health", get(health))
        .route("/_emulator/stats", get(stats))
        .fallback(unknown_operation)
        .with_state(emulator)
}

/// What one Bedrock request arrived with.
struct Call {
    operation: Operation,
    model_id: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
}

async fn converse(
    State(emulator): State<Emulator>,
    model_id: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let call = Call {
        operation: Operation::Converse,
        model_id,
        method,
        uri,
        headers,
        body,
    };
    handle(emulator.shared, call).await
}

async fn converse_stream(
    State(emulator): State<Emulator>,
    model_id: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let call = Call {
        operation: Operation::ConverseStream,
        model_id,
        method,
        uri,
        headers,
        body,
    };
    handle(emulator.shared, call).await
}

/// A request that passed the checks: its knobs, whether its fault fires, and its answer.
struct Plan {
    slot: Arc<Slot>,
    fault: bool,
    answer: Answer,
}

impl Plan {
    fn fault(&self) -> Option<&Fault> {
        self.slot.knobs.fault.as_ref().filter(|_| self.fault)
    }
}

async fn handle(shared: Arc<Shared>, call: Call) -> Response {
    let started = Instant::now();
    let id = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let streaming = call.operation == Operation::ConverseStream;
    let mut inflight = Inflight::new(Arc::clone(&shared), id, streaming);

    let auth = Auth::from_headers(&call.headers);
    let model_id = call.model_id.map(|Path(m)| m);
    let body: Result<Value, AwsError> = match &call.body {
        Ok(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| AwsError::validation(format!("Malformed input request: {e}"))),
        Err(rejection) => Err(AwsError::validation(rejection.body_text())),
    };

    let plan = (|| {
        auth.check()?;
        let model = model_id.as_deref().map_err(|_| {
            AwsError::validation("The model id is not valid percent-encoded UTF-8.")
        })?;
        let body = body.as_ref().map_err(Clone::clone)?;
        let prompt = parse_prompt(model, body).map_err(AwsError::validation)?;
        let slot = match shared.knobs.lookup(model) {
            Lookup::Allowed(slot) => slot,
            Lookup::UnknownModel => {
                return Err(AwsError::new(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    "The provided model identifier is invalid.",
                ));
            }
        };
        let fault = slot.take_fault().is_some();
        let mut answer = answer(model, &prompt, slot.knobs.answer_words);
        dress(
            &mut answer,
            Dress {
                model_id: model,
                prompt: &prompt,
                guardrail_knob: slot.knobs.guardrail_intervenes,
                caches: &shared.caches,
            },
        );
        Ok(Plan {
            slot,
            fault,
            answer,
        })
    })();

    shared.recorder.record(|| SeenRequest {
        id,
        method: call.method.to_string(),
        raw_path: call.uri.path().to_owned(),
        model_id: model_id.unwrap_or_default(),
        operation: call.operation,
        region: auth.scope().map(|s| s.region.to_owned()),
        service: auth.scope().map(|s| s.service.to_owned()),
        body: body.unwrap_or(Value::Null),
        client_went_away: false,
        query: call.uri.query().map(str::to_owned),
        headers: header_record(&call.headers),
    });

    let plan = match plan {
        Ok(plan) => plan,
        Err(error) => {
            inflight.complete();
            return with_request_id(error.into_response(), id);
        }
    };

    let mut stop = shared.stop.subscribe();
    if !sit_out_latency(plan.slot.knobs.latency, &mut stop).await {
        inflight.complete();
        return with_request_id(stopping().into_response(), id);
    }

    let response = match plan.fault() {
        Some(Fault::Status {
            status,
            error_type,
            message,
            retry_after,
        }) => {
            inflight.complete();
            AwsError::from_fault(*status, error_type, message, *retry_after).into_response()
        }
        Some(Fault::Hang) => {
            stopped(&mut stop).await;
            inflight.complete();
            stopping().into_response()
        }
        Some(Fault::InvalidJson) => {
            inflight.complete();
            not_decodable(streaming)
        }
        Some(fault) if !streaming => {
            inflight.complete();
            match fault {
                Fault::CutStream { .. } => cut_unary(),
                Fault::StreamException { exception_type, .. } => {
                    AwsError::from_exception_type(exception_type).into_response()
                }
                _ => not_decodable(false),
            }
        }
        fault => {
            let fault = fault.and_then(stream_fault);
            let token_delay = plan.slot.knobs.token_delay;
            let plan = StreamPlan {
                answer: plan.answer,
                token_delay,
                fault,
                started,
            };
            if streaming {
                let body = stream::body(plan, inflight, stop);
                return with_request_id(typed(body, "application/vnd.amazon.eventstream"), id);
            }
            inflight.complete();
            unary(&plan.answer, started)
        }
    };
    with_request_id(response, id)
}

fn stream_fault(fault: &Fault) -> Option<StreamFault> {
    match fault {
        Fault::CutStream { after_deltas } => Some(StreamFault::Cut {
            after: *after_deltas,
        }),
        Fault::BadCrc { after_deltas } => Some(StreamFault::BadCrc {
            after: *after_deltas,
        }),
        Fault::StreamException {
            after_deltas,
            exception_type,
        } => Some(StreamFault::Exception {
            after: *after_deltas,
            exception_type: exception_type.clone(),
        }),
        Fault::Status { .. } | Fault::Hang | Fault::InvalidJson => None,
    }
}

/// The Converse answer body.
fn unary(answer: &Answer, started: Instant) -> Response {
    let mut content = Vec::new();
    if let Some((text, signature)) = &answer.reasoning {
        content.push(serde_json::json!({
            "reasoningContent": {"reasoningText": {"text": text, "signature": signature}}
        }));
    }
    if !answer.text.is_empty() || answer.tool_uses.is_empty() {
        content.push(serde_json::json!({ "text": answer.text }));
    }
    for tool in &answer.tool_uses {
        content.push(serde_json::json!({
            "toolUse": {"toolUseId": tool.id, "name": tool.name, "input": tool.input}
        }));
    }
    let output = serde_json::json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": answer.stop_reason.as_str(),
        "usage": usage_json(answer),
        "metrics": {"latencyMs": millis(started.elapsed())},
    });
    match serde_json::to_vec(&output) {
        Ok(json) => typed(Body::from(json), "application/json"),
        Err(e) => AwsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            e.to_string(),
        )
        .into_response(),
    }
}

/// The `usage` object of a Converse answer or a stream's `metadata` event; the cache
/// counts only when a cache point was sent, as Bedrock leaves them out otherwise.
pub(crate) fn usage_json(answer: &Answer) -> Value {
    let total = answer.input_tokens + answer.output_tokens + answer.cache_read + answer.cache_write;
    let mut usage = serde_json::json!({
        "inputTokens": answer.input_tokens,
        "outputTokens": answer.output_tokens,
        "totalTokens": total,
    });
    if answer.cache_read + answer.cache_write > 0 {
        usage["cacheReadInputTokens"] = answer.cache_read.into();
        usage["cacheWriteInputTokens"] = answer.cache_write.into();
    }
    usage
}

/// A 200 whose body the SDK cannot decode: not JSON, or not an event stream.
fn not_decodable(streaming: bool) -> Response {
    let content_type = if streaming {
        "application/vnd.amazon.eventstream"
    } else {
        "application/json"
    };
    typed(
        Body::from(Bytes::from_static(b"this is not JSON, nor an event stream")),
        content_type,
    )
}

/// A 200 whose body breaks off mid-JSON with a connection reset.
fn cut_unary() -> Response {
    typed(
        stream::cut_after(Bytes::from_static(b"{\"output\":{\"message\":{\"role\":")),
        "application/json",
    )
}

fn stopping() -> AwsError {
    AwsError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
        "The emulator is shutting down.",
    )
}

pub(crate) fn typed(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub(crate) fn with_request_id(mut response: Response, id: u64) -> Response {
    // Shaped like the UUIDs AWS sends, and unique per emulator.
    let request_id = format!("00000000-0000-4000-8000-{id:012x}");
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The headers as [`SeenRequest::headers`] records them.
pub(crate) fn header_record(headers: &HeaderMap) -> std::collections::BTreeMap<String, String> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

async fn unknown_operation(method: Method, uri: Uri) -> Response {
    AwsError::new(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        format!("No operation matches {method} {}", uri.path()),
    )
    .into_response()
}

async fn get_knobs(State(emulator): State<Emulator>) -> Response {
    axum::Json(emulator.knobs().snapshot()).into_response()
}

async fn put_knobs(
    State(emulator): State<Emulator>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let set = body
        .map_err(|rejection| rejection.body_text())
        .and_then(|bytes| serde_json::from_slice::<KnobSet>(&bytes).map_err(|e| e.to_string()));
    match set {
        Ok(set) => {
            emulator.knobs().apply(set);
            axum::Json(emulator.knobs().snapshot()).into_response()
        }
        Err(message) => AwsError::validation(message).into_response(),
    }
}

async fn delete_knobs(State(emulator): State<Emulator>) -> StatusCode {
    emulator.knobs().reset();
    StatusCode::NO_CONTENT
}

async fn get_requests(State(emulator): State<Emulator>) -> Response {
    axum::Json(emulator.requests()).into_response()
}

async fn delete_requests(State(emulator): State<Emulator>) -> StatusCode {
    emulator.clear_requests();
    StatusCode::NO_CONTENT
}

async fn health() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn stats(State(emulator): State<Emulator>) -> Response {
    axum::Json(serde_json::json!({
        "requests": emulator.request_count(),
        "open_streams": emulator.open_streams(),
        "cancelled_streams": emulator.cancelled_streams(),
    }))
    .into_response()
}
