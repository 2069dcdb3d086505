//! The HTTP/JSON front end in OpenAI's chat-completions format: decode the body, hand it
//! to admission, encode the answer as JSON or as SSE events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aigw_core::{
    ChatChunk, ChatCompletion, ChatReply, ChatRequest, Document, Error, ErrorKind, Guardrail,
    Image, ImageFormat, Message, Part, Reasoning, ReplyBody, ResponseFormat, Role, Tool, ToolCall,
    ToolChoice, Usage,
};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Method, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::embeddings::{EMBEDDINGS_PATH, WireEmbedRequest};
use crate::admission::EmbedAsk;
use crate::admission::{Admission, Answering, Caller, Entry, MODEL_HEADER, RouteKey, peer_ip};
use crate::front_door::BodyTimeout;
use crate::recent::{Answered, StreamBreak};
use crate::router::RequestHead;
use crate::{ApiError, Route, SharedRoutes, error::grpc_response};

/// OpenAI's own chat path, so OpenAI SDKs work with only `base_url` pointed at aigw.
pub(crate) const OPENAI_CHAT_PATH: &str = "/v1/chat/completions";

/// An HTTP client may ask for either shape, so `response_streaming: always` may stream.
pub(super) const ANSWERING: Answering = Answering {
    may_stream_unasked: true,
    ask_for_whole: "send \"stream\": false",
};

/// Serves a POST to any route Kong's router finds for it, and to [`OPENAI_CHAT_PATH`] (routed by the
/// request's `model`) unless a route claims that path itself; every other path is an
/// OpenAI-style 404.
pub(crate) async fn route_path(State(routes): State<SharedRoutes>, request: Request) -> Response {
    if is_grpc(request.headers()) {
        // A gRPC call to a service we do not serve: answer in gRPC's terms.
        let path = request.uri().path();
        let error = Error::new(
            ErrorKind::MethodNotAllowed,
            format!("no gRPC method {path}"),
        );
        routes.recent_errors().record(&error, None, Answered::Grpc);
        return grpc_response(&error);
    }
    let (parts, body) = request.into_parts();
    let mut body = Some(body);
    let mut routed = None;
    match chat(&routes, &parts, &mut body, &mut routed).await {
        Ok(response) => response,
        Err(refused) => {
            if let Some(unread) = body {
                discard(&parts, unread).await;
            }
            // Nobody reads the answer of a client that left.
            if !refused.client_left {
                routes
                    .recent_errors()
                    .record(&refused.error, routed.as_deref(), Answered::Http);
            }
            let wrong_method = refused.error.kind() == ErrorKind::MethodNotAllowed;
            // A request routed by `model` at OpenAI's path spoke OpenAI, whatever its route.
            let anthropic = routed
                .as_ref()
                .is_some_and(|r| r.llm_format == aigw_config::LlmFormat::Anthropic)
                && crate::router::normalize(parts.uri.path()) != OPENAI_CHAT_PATH;
            let bedrock = routed
                .as_ref()
                .is_some_and(|r| r.llm_format == aigw_config::LlmFormat::Bedrock)
                && crate::router::normalize(parts.uri.path()) != OPENAI_CHAT_PATH;
            let mut response = if anthropic {
                super::anthropic::error_response(refused.error)
            } else if bedrock {
                super::bedrock::error_response(refused.error)
            } else {
                ApiError(refused.error).into_response()
            };
            if wrong_method {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            if refused.client_left {
                response.extensions_mut().insert(aigw_telemetry::ClientLeft);
            }
            response
        }
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A refused chat request.
pub(super) struct Refused {
    error: Error,
    /// The client went away while sending its body: nobody reads the answer, and the
    /// request is counted as 499.
    client_left: bool,
}

impl From<Error> for Refused {
    fn from(error: Error) -> Self {
        Refused {
            error,
            client_left: false,
        }
    }
}

/// One chat request, in the order a client's mistakes are best reported: unknown path,
/// missing key, wrong method, wrong media type or encoding, then the body, which is taken
/// out of `body` only once all of those passed. The route, once known, is left in
/// `routed` for the record of a refusal.
async fn chat(
    routes: &SharedRoutes,
    parts: &http::request::Parts,
    body: &mut Option<Body>,
    routed: &mut Option<Arc<Route>>,
) -> Result<Response, Refused> {
    let admission = &Admission::new(routes);
    let head = RequestHead::of(parts);
    // At OpenAI's path the route, and so its key-auth, is known only from the body. The
    // path is compared as Kong's router sees it, so `//v1/chat/completions` is that path.
    let normalized = crate::router::normalize(head.path);
    let at_embeddings_path = normalized == EMBEDDINGS_PATH;
    let at_openai_path = normalized == OPENAI_CHAT_PATH || at_embeddings_path;
    let key = RouteKey::Http(head);
    // A SigV4 signature covers the body, so a signed request to a Bedrock route is read
    // and verified before admission, which then lets it in as the signing consumer.
    let signed = if at_openai_path {
        None
    } else {
        super::bedrock::signed(admission, key, parts, body)
            .await
            .inspect_err(|_| *routed = admission.named(key))?
    };
    let caller = Caller {
        headers: &parts.headers,
        query: parts.uri.query(),
        peer: peer_ip(&parts.extensions),
        path: Some(parts.uri.path()),
        signed_by: signed.as_ref().map(|s| &s.consumer),
    };
    let route = if at_openai_path && !admission.serves(&head) {
        None
    } else {
        Some(
            admission
                .route(key, caller)
                .inspect_err(|_| *routed = admission.named(key))?,
        )
    };
    routed.clone_from(&route.as_ref().map(|entry| entry.route.clone()));
    if let Some(entry) = route.as_ref() {
        if entry.route.llm_format == aigw_config::LlmFormat::Anthropic {
            return super::anthropic::messages(
                routes,
                admission,
                caller,
                parts,
                body,
                entry.clone(),
            )
            .await;
        }
        if entry.route.llm_format == aigw_config::LlmFormat::Bedrock {
            let read = signed.as_ref().map(|s| s.body.clone());
            return super::bedrock::converse(
                routes,
                admission,
                caller,
                parts,
                (body, read),
                entry.clone(),
            )
            .await;
        }
    }
    require_post(&parts.method, "chat requests")?;
    let limit = admission.body_limit(route.as_ref().map(|e| &*e.route));
    let over = || admission.body_too_large(route.as_ref().map(|e| &*e.route));
    let body = read_json_body(&parts.headers, body, limit, over).await?;
    if at_embeddings_path || route.as_ref().is_some_and(|e| e.route.embed.is_some()) {
        return Ok(embed(admission, caller, route, &body, routed).await?);
    }
    let mut wire: WireRequest = decode_json(&body)?;
    let include_usage = wire
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let route = by_model(admission, route, wire.model.as_deref(), caller, routed)?;
    wire.check_unsupported(route.route.chat.drop_unsupported_params)?;
    if let Some(fetch) = &route.route.chat.image_url_fetch {
        wire.fetch_images(fetch).await?;
    }
    let request = ChatRequest::try_from(wire)?;
    let admitted = Admission::call(&route, caller, ANSWERING, request, body.len()).await?;
    Ok(answer(routes, route.route, admitted, |reply, broken| {
        encode_reply(reply, include_usage, Some(broken))
    }))
}

/// Refuses a method other than POST, saying what is sent with POST.
pub(super) fn require_post(method: &Method, what: &str) -> Result<(), Error> {
    if method == Method::POST {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::MethodNotAllowed,
        format!("method {method} is not allowed; send {what} with POST"),
    ))
}

/// The request body, once its media type and encoding say it is plain JSON, read up to
/// `limit` bytes; `body` is taken out so that a refusal leaves nothing to discard.
pub(super) async fn read_json_body(
    headers: &HeaderMap,
    body: &mut Option<Body>,
    limit: usize,
    too_large: impl Fn() -> Error,
) -> Result<Bytes, Refused> {
    require_json(headers)?;
    require_identity(headers)?;
    read_body(body.take().unwrap_or_default(), limit, too_large).await
}

/// `error` answered with the status and headers of aigw's error table and the JSON body
/// `shape` makes of its status and message: how the native front ends answer in their
/// API's own error shape.
pub(super) fn error_in_shape(
    error: Error,
    shape: impl FnOnce(http::StatusCode, &str) -> Value,
) -> Response {
    let message = error.message().to_owned();
    let (mut parts, _) = ApiError(error).into_response().into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = shape(parts.status, &message);
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// The JSON body of a request to a known route, within the route's body limit: what the
/// native front ends (Anthropic, Bedrock) read, whose route is known from the path.
pub(super) async fn read_route_json(
    admission: &Admission,
    entry: &Entry,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> Result<Bytes, Refused> {
    read_json_for(admission, &entry.route, headers, body).await
}

/// [`read_route_json`] for a route not yet entered (a signed request's, read before
/// admission because its signature covers the body).
pub(super) async fn read_json_for(
    admission: &Admission,
    route: &Route,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> Result<Bytes, Refused> {
    read_json_body(headers, body, admission.body_limit(Some(route)), || {
        admission.body_too_large(Some(route))
    })
    .await
}

/// The HTTP answer to an admitted request: the front end's `encode`ing of the reply
/// (handed what records a stream that breaks), with the serving model's header and the
/// headers admission added.
pub(super) fn answer(
    routes: &SharedRoutes,
    route: Arc<Route>,
    admitted: crate::admission::Admitted,
    encode: impl FnOnce(ChatReply, StreamBreak) -> Response,
) -> Response {
    let broken = StreamBreak::new(
        routes,
        route,
        admitted.reply.served_by.clone(),
        Answered::HttpStream,
    );
    let mut response = encode(admitted.reply, broken);
    if let Some(value) = admitted.model_header {
        response.headers_mut().insert(MODEL_HEADER, value);
    }
    response.headers_mut().extend(admitted.headers);
    response
}

/// The route a request at OpenAI's paths goes to: the one its path found, else the one its
/// `model` names; left in `routed` for the record of a refusal.
fn by_model(
    admission: &Admission,
    found: Option<Entry>,
    model: Option<&str>,
    caller: Caller<'_>,
    routed: &mut Option<Arc<Route>>,
) -> Result<Entry, Error> {
    let route = match found {
        Some(route) => route,
        None => {
            let key = RouteKey::Model(model);
            admission
                .route(key, caller)
                .inspect_err(|_| *routed = admission.named(key))?
        }
    };
    *routed = Some(route.route.clone());
    Ok(route)
}

/// One embeddings request, at `/v1/embeddings` (routed by `model`) or at an embeddings
/// route's own path, through the same admission as chat.
async fn embed(
    admission: &Admission,
    caller: Caller<'_>,
    route: Option<Entry>,
    body: &[u8],
    routed: &mut Option<Arc<Route>>,
) -> Result<Response, Error> {
    let mut wire: WireEmbedRequest = decode_json(body)?;
    let model = wire.model.take();
    let route = by_model(admission, route, model.as_deref(), caller, routed)?;
    let ask = wire.ask()?;
    let admitted = Admission::embed(
        &route,
        caller,
        EmbedAsk {
            model: model.as_deref(),
            inputs: ask.inputs,
            dimensions: ask.dimensions,
            body_len: body.len(),
        },
    )
    .await?;
    let embedded = admitted.embedded;
    let answer = super::embeddings::answer(
        &embedded.embeddings.vectors,
        ask.encoding,
        &embedded.model,
        embedded.embeddings.input_tokens.unwrap_or(0),
    );
    let mut response = axum::Json(answer).into_response();
    if route.route.model_name_header
        && let Ok(value) = HeaderValue::from_str(&embedded.served_by.to_string())
    {
        response.headers_mut().insert(MODEL_HEADER, value);
    }
    response.headers_mut().extend(admitted.headers);
    Ok(response)
}

/// Reads a whole request body of at most `limit` bytes. Only a body that is really over the
/// limit is a 413: a client that stops sending is a 408, a malformed body (a bad chunk
/// size) a 400, and a client that left a 400 nobody reads, counted as 499.
async fn read_body(
    body: Body,
    limit: usize,
    too_large: impl Fn() -> Error,
) -> Result<Bytes, Refused> {
    let declared = body.size_hint().lower();
    // A Content-Length over the limit is refused before reading a byte of it.
    if usize::try_from(declared).map_or(true, |n| n > limit) {
        return Err(too_large().into());
    }
    let mut body = std::pin::pin!(body);
    let mut read = BytesMut::with_capacity(usize::try_from(declared).unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(body_read_error)?;
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > limit {
                return Err(too_large().into());
            }
            read.extend_from_slice(&data);
        }
    }
    Ok(read.freeze())
}

fn body_read_error(error: axum::Error) -> Refused {
    let error = error.into_inner();
    if let Some(timeout) = error.downcast_ref::<BodyTimeout>() {
        return Error::new(ErrorKind::RequestTimeout, timeout.to_string()).into();
    }
    let client_left = client_left(&*error);
    let message = if client_left {
        "the client closed the connection before sending the whole request body".to_owned()
    } else {
        format!("the request body could not be read: {error}")
    };
    Refused {
        error: Error::invalid_request(message),
        client_left,
    }
}

/// Whether a body read failed because the client went away (the connection ended or was
/// reset mid-body), as opposed to sending something malformed.
fn client_left(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        cause = error.source();
    }
    false
}

/// The most of an unread body read and thrown away after an early refusal, so that an
/// HTTP/1 connection stays usable; a larger one closes the connection instead.
const DISCARD_LIMIT: u64 = 64 * 1024;

/// How long discarding may take in all.
const DISCARD_TIME: Duration = Duration::from_secs(5);

/// Reads and drops the body of an HTTP/1 request refused before its body was read, when it
/// is small: the connection can then carry the client's next request. Anything else is
/// left unread, and the front door closes the connection after the answer.
async fn discard(parts: &http::request::Parts, body: Body) {
    let small = body.size_hint().upper().is_some_and(|n| n <= DISCARD_LIMIT);
    // A client waiting for `100 Continue` has not sent its body; asking for it now would
    // only make it send what is thrown away.
    let waiting = parts.headers.contains_key(header::EXPECT);
    if parts.version > http::Version::HTTP_11 || !small || waiting {
        return;
    }
    let drain = async {
        let mut body = std::pin::pin!(body);
        while let Some(Ok(_)) = body.frame().await {}
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
}

/// Refuses a compressed body: requests are read as sent, and a gzip body read as JSON
/// would only fail as a syntax error.
fn require_identity(headers: &HeaderMap) -> Result<(), Error> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(());
    };
    let identity = value
        .to_str()
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("identity"));
    if identity {
        return Ok(());
    }
    let shown = String::from_utf8_lossy(value.as_bytes());
    Err(Error::new(
        ErrorKind::UnsupportedMediaType,
        format!("unsupported Content-Encoding {shown:?}; send the body uncompressed"),
    ))
}

/// Refuses a body labelled as something other than JSON; a body that does not say is
/// read as JSON. `curl -d` without `-H 'Content-Type: application/json'` sends a form, and
/// "send JSON" is a clearer answer than a JSON syntax error.
fn require_json(headers: &HeaderMap) -> Result<(), Error> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let is_json = essence
        .as_deref()
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if is_json {
        return Ok(());
    }
    let shown = String::from_utf8_lossy(value.as_bytes());
    Err(Error::new(
        ErrorKind::UnsupportedMediaType,
        format!("unsupported Content-Type {shown:?}; send the body as application/json"),
    ))
}

/// Decodes a JSON body, naming the offending field on error.
pub(super) fn decode_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            Error::invalid_request(format!("invalid JSON body: {inner}"))
        } else {
            Error::invalid_request(format!("invalid JSON body at {path}: {inner}"))
        }
    })?;
    // Bytes after the JSON value (a second object, a stray brace) mean the client sent
    // something other than what was read; serde_json stops at the first value's end.
    deserializer
        .end()
        .map_err(|e| Error::invalid_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// An OpenAI chat completions body. Fields aigw does not know are ignored; fields it
/// knows but Bedrock cannot honour are refused (see [`UNSUPPORTED`]).
#[derive(Deserialize)]
struct WireRequest {
    model: Option<String>,
    messages: Vec<WireMessage>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    stop: Option<Stop>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    n: Option<u32>,
    tools: Option<Vec<WireTool>>,
    tool_choice: Option<WireToolChoice>,
    parallel_tool_calls: Option<bool>,
    reasoning_effort: Option<String>,
    response_format: Option<WireResponseFormat>,
    /// A Bedrock guardrail, in Bedrock's own spelling (Kong passes it through likewise).
    #[serde(rename = "guardrailConfig")]
    guardrail_config: Option<WireGuardrail>,
    // Fields no Bedrock model honours (see [`UNSUPPORTED`]), read only to refuse them.
    // Named rather than collected with `#[serde(flatten)]`, which would buffer the whole
    // body (images included) once more.
    logprobs: Option<Value>,
    top_logprobs: Option<Value>,
    logit_bias: Option<Value>,
    presence_penalty: Option<Value>,
    frequency_penalty: Option<Value>,
    seed: Option<Value>,
    audio: Option<Value>,
    modalities: Option<Value>,
    prediction: Option<Value>,
    web_search_options: Option<Value>,
    functions: Option<Value>,
    function_call: Option<Value>,
}

/// Whether a field's value changes nothing.
type Harmless = fn(&Value) -> bool;

/// Fields of OpenAI's API that no Bedrock model honours, with the value that changes
/// nothing (sent by some SDKs by default) and so is let through.
const UNSUPPORTED: [(&str, Harmless); 12] = [
    ("logprobs", |v| v == &Value::Bool(false)),
    ("top_logprobs", |v| v == &Value::from(0)),
    ("logit_bias", |v| {
        v.as_object().is_some_and(|m| m.is_empty())
    }),
    ("presence_penalty", |v| v.as_f64() == Some(0.0)),
    ("frequency_penalty", |v| v.as_f64() == Some(0.0)),
    ("seed", |_| false),
    ("audio", |_| false),
    ("modalities", |v| v == &serde_json::json!(["text"])),
    ("prediction", |_| false),
    ("web_search_options", |_| false),
    ("functions", |_| false),
    ("function_call", |_| false),
];

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
    tool_calls: Option<Vec<WireToolCall>>,
    tool_call_id: Option<String>,
    reasoning_content: Option<String>,
    /// LiteLLM's way of sending reasoning back with its signature.
    thinking_blocks: Option<Vec<WireThinkingBlock>>,
    cache_control: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    image_url: Option<WireImageUrl>,
    file: Option<WireFile>,
    cache_control: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireImageUrl {
    Object { url: String },
    Url(String),
}

#[derive(Deserialize)]
struct WireFile {
    file_data: Option<String>,
    file_id: Option<String>,
    filename: Option<String>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: String,
    function: WireFunctionCall,
}

#[derive(Deserialize)]
struct WireFunctionCall {
    name: String,
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
struct WireThinkingBlock {
    thinking: Option<String>,
    signature: Option<String>,
}

#[derive(Deserialize)]
struct WireTool {
    #[serde(rename = "type")]
    kind: String,
    function: WireFunction,
    cache_control: Option<Value>,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireToolChoice {
    Mode(String),
    Function { function: WireNamed },
}

#[derive(Deserialize)]
struct WireNamed {
    name: String,
}

#[derive(Deserialize)]
struct WireResponseFormat {
    #[serde(rename = "type")]
    kind: String,
    json_schema: Option<WireJsonSchema>,
}

#[derive(Deserialize)]
struct WireJsonSchema {
    name: Option<String>,
    schema: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireGuardrail {
    guardrail_identifier: String,
    guardrail_version: String,
    trace: Option<String>,
    stream_processing_mode: Option<String>,
}

/// Whether `cache_control` asks for a cache point: Anthropic's `{"type": "ephemeral"}`.
fn wants_cache(cache_control: Option<&Value>, at: &str) -> Result<bool, Error> {
    match cache_control {
        None | Some(Value::Null) => Ok(false),
        Some(v) if v.get("type").and_then(Value::as_str) == Some("ephemeral") => Ok(true),
        Some(other) => Err(Error::invalid_request(format!(
            "{at}.cache_control: only {{\"type\": \"ephemeral\"}} is supported, got {other}"
        ))),
    }
}

impl WireRequest {
    /// Replaces every `http(s)` image URL with the fetched image as a `data:` URI.
    async fn fetch_images(&mut self, fetch: &aigw_config::ImageFetch) -> Result<(), Error> {
        for (index, message) in self.messages.iter_mut().enumerate() {
            let Some(Content::Parts(parts)) = &mut message.content else {
                continue;
            };
            for (part_index, part) in parts.iter_mut().enumerate() {
                let Some(WireImageUrl::Object { url } | WireImageUrl::Url(url)) =
                    &mut part.image_url
                else {
                    continue;
                };
                if part.kind == "image_url" && !url.starts_with("data:") {
                    let at = format!("messages[{index}].content[{part_index}]");
                    *url = super::fetch::image_as_data_uri(url, fetch, &at).await?;
                }
            }
        }
        Ok(())
    }

    /// Refuses what Bedrock cannot honour, naming the field, unless `drop` (the route's
    /// `aigw-drop-unsupported-params` tag) says to leave such fields out instead.
    fn check_unsupported(&self, drop: bool) -> Result<(), Error> {
        if drop {
            return Ok(());
        }
        if let Some(n) = self.n.filter(|n| *n != 1) {
            return Err(Error::invalid_request(format!(
                "n: {n} choices were asked for, but bedrock answers with one; send n = 1 \
                 or leave n out"
            )));
        }
        let values = [
            &self.logprobs,
            &self.top_logprobs,
            &self.logit_bias,
            &self.presence_penalty,
            &self.frequency_penalty,
            &self.seed,
            &self.audio,
            &self.modalities,
            &self.prediction,
            &self.web_search_options,
            &self.functions,
            &self.function_call,
        ];
        for ((field, harmless), value) in UNSUPPORTED.iter().zip(values) {
            match value {
                None | Some(Value::Null) => {}
                Some(v) if harmless(v) => {}
                Some(_) => {
                    return Err(Error::invalid_request(format!(
                        "{field}: not supported on bedrock; leave {field} out"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl TryFrom<WireRequest> for ChatRequest {
    type Error = Error;

    fn try_from(wire: WireRequest) -> Result<Self, Error> {
        let messages = super::conversation(wire.messages, message)?;
        let tools =
            wire.tools
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    if t.kind != "function" {
                        return Err(Error::invalid_request(format!(
                            "tools[{i}].type: only \"function\" tools are supported, got {:?}",
                            t.kind
                        )));
                    }
                    Ok(Tool {
                        cache_point: wants_cache(t.cache_control.as_ref(), &format!("tools[{i}]"))?,
                        name: t.function.name,
                        description: t.function.description,
                        parameters: t.function.parameters.unwrap_or_else(
                            || serde_json::json!({"type": "object", "properties": {}}),
                        ),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
        let tool_choice = match wire.tool_choice {
            None => None,
            Some(WireToolChoice::Mode(mode)) => {
                Some(super::tool_choice_mode(&mode, "tool_choice")?)
            }
            Some(WireToolChoice::Function { function }) => {
                Some(ToolChoice::Function(function.name))
            }
        };
        if matches!(
            tool_choice,
            Some(ToolChoice::Required | ToolChoice::Function(_))
        ) && tools.is_empty()
        {
            return Err(Error::invalid_request(
                "tool_choice asks for a tool call, but the request has no tools",
            ));
        }
        let reasoning_effort = super::reasoning_effort(wire.reasoning_effort)?;
        let response_format = match wire.response_format {
            None => None,
            Some(f) => match f.kind.as_str() {
                "text" => None,
                "json_object" => Some(Arc::new(ResponseFormat::JsonObject)),
                "json_schema" => {
                    let schema = f.json_schema.ok_or_else(|| {
                        Error::invalid_request("response_format.json_schema is required")
                    })?;
                    Some(Arc::new(ResponseFormat::JsonSchema {
                        name: schema.name.unwrap_or_else(|| "response".to_owned()),
                        schema: schema
                            .schema
                            .unwrap_or_else(|| serde_json::json!({"type": "object"})),
                    }))
                }
                other => {
                    return Err(Error::invalid_request(format!(
                        "response_format.type: unknown value {other:?}, expected text, \
                         json_object or json_schema"
                    )));
                }
            },
        };
        Ok(ChatRequest {
            model: wire.model,
            messages,
            max_tokens: wire.max_completion_tokens.or(wire.max_tokens),
            temperature: wire.temperature,
            top_p: wire.top_p,
            stop: match wire.stop {
                None => Arc::from([]),
                Some(Stop::One(s)) => Arc::from([s]),
                Some(Stop::Many(v)) => v.into(),
            },
            stream: wire.stream,
            hash_key: None,
            tools: tools.into(),
            tool_choice,
            parallel_tool_calls: wire.parallel_tool_calls,
            reasoning_effort,
            response_format,
            guardrail: wire.guardrail_config.map(|g| {
                Arc::new(Guardrail {
                    identifier: g.guardrail_identifier,
                    version: g.guardrail_version,
                    trace: g.trace,
                    stream_processing_mode: g.stream_processing_mode,
                })
            }),
            model_fields: None,
        })
    }
}

fn message((index, wire): (usize, WireMessage)) -> Result<Message, Error> {
    let role = super::role(index, &wire.role)?;
    let at = format!("messages[{index}]");
    let mut content = Vec::new();
    match wire.content {
        None => {
            if role != Role::Assistant {
                return Err(Error::invalid_request(format!("{at}.content is required")));
            }
        }
        Some(Content::Text(text)) => content.push(Part::Text(text)),
        Some(Content::Parts(parts)) => {
            for (part_index, part) in parts.into_iter().enumerate() {
                let at = format!("{at}.content[{part_index}]");
                content.push(content_part(
                    &at,
                    part.kind.as_str(),
                    part.text,
                    part.image_url,
                    part.file,
                )?);
                if wants_cache(part.cache_control.as_ref(), &at)? {
                    content.push(Part::CachePoint);
                }
            }
        }
    }
    if wants_cache(wire.cache_control.as_ref(), &at)? {
        content.push(Part::CachePoint);
    }
    let mut tool_calls = Vec::new();
    for (call_index, call) in wire.tool_calls.unwrap_or_default().into_iter().enumerate() {
        let at = format!("{at}.tool_calls[{call_index}].function.arguments");
        // OpenAI sends arguments as a JSON string; some clients send the object itself.
        let arguments = match call.function.arguments {
            Value::Null => "{}".to_owned(),
            Value::String(text) => {
                if text.trim().is_empty() {
                    "{}".to_owned()
                } else {
                    serde_json::from_str::<Value>(&text)
                        .map_err(|e| Error::invalid_request(format!("{at} is not JSON: {e}")))?;
                    text
                }
            }
            other => other.to_string(),
        };
        tool_calls.push(ToolCall {
            id: call.id,
            name: call.function.name,
            arguments,
        });
    }
    if !tool_calls.is_empty() && role != Role::Assistant {
        return Err(Error::invalid_request(format!(
            "{at}.tool_calls: only assistant messages call tools"
        )));
    }
    let tool_call_id = match (role, wire.tool_call_id) {
        (Role::Tool, None) => {
            return Err(Error::invalid_request(format!(
                "{at}.tool_call_id is required in a tool message"
            )));
        }
        (_, id) => id,
    };
    let reasoning = match wire.thinking_blocks.and_then(|b| b.into_iter().next()) {
        Some(block) => Some(Reasoning {
            text: block
                .thinking
                .or(wire.reasoning_content)
                .unwrap_or_default(),
            signature: block.signature,
        }),
        None => wire.reasoning_content.map(|text| Reasoning {
            text,
            signature: None,
        }),
    };
    if content.is_empty() && tool_calls.is_empty() {
        // Kept so the driver names the blank message in its refusal.
        content.push(Part::Text(String::new()));
    }
    Ok(Message {
        role,
        content,
        tool_calls,
        tool_call_id,
        tool_failed: false,
        reasoning,
    })
}

/// One content part at `at`.
fn content_part(
    at: &str,
    kind: &str,
    text: Option<String>,
    image_url: Option<WireImageUrl>,
    file: Option<WireFile>,
) -> Result<Part, Error> {
    match kind {
        "text" => text
            .map(Part::Text)
            .ok_or_else(|| Error::invalid_request(format!("{at}.text is required"))),
        "image_url" => {
            let url = match image_url {
                Some(WireImageUrl::Object { url } | WireImageUrl::Url(url)) => url,
                None => {
                    return Err(Error::invalid_request(format!(
                        "{at}.image_url is required"
                    )));
                }
            };
            image_part(at, &url)
        }
        "file" => {
            let file =
                file.ok_or_else(|| Error::invalid_request(format!("{at}.file is required")))?;
            if file.file_id.is_some() && file.file_data.is_none() {
                return Err(Error::invalid_request(format!(
                    "{at}.file.file_id: uploaded files are not supported; send file_data as a \
                     data: URI"
                )));
            }
            let data = file.file_data.unwrap_or_default();
            let (mime, bytes) = data_uri(&data).ok_or_else(|| {
                Error::invalid_request(format!("{at}.file.file_data: expected a base64 data: URI"))
            })?;
            if !mime.eq_ignore_ascii_case("application/pdf") {
                return Err(Error::invalid_request(format!(
                    "{at}.file: only PDF documents are supported, got {mime}"
                )));
            }
            Ok(Part::Document(Document {
                name: file.filename.unwrap_or_else(|| "document.pdf".to_owned()),
                bytes: bytes.into(),
            }))
        }
        other => Err(Error::invalid_request(format!(
            "{at}: content part of type {other:?} is not supported; text, image_url and file are"
        ))),
    }
}

/// An image from a `data:` URI. URLs of other schemes are refused here; a route that
/// fetches them resolves them before this point.
fn image_part(at: &str, url: &str) -> Result<Part, Error> {
    if let Some((mime, bytes)) = data_uri(url) {
        let format = ImageFormat::from_mime(mime).ok_or_else(|| {
            Error::invalid_request(format!(
                "{at}.image_url: image type {mime} is not supported; png, jpeg, gif and webp are"
            ))
        })?;
        return Ok(Part::Image(Image {
            format,
            bytes: bytes.into(),
        }));
    }
    if url.starts_with("data:") {
        return Err(Error::invalid_request(format!(
            "{at}.image_url: a data: URI must be base64 (data:image/png;base64,…)"
        )));
    }
    Err(Error::invalid_request(format!(
        "{at}.image_url: image URLs are not fetched on this route; send the image inline \
         as a data: URI (data:image/png;base64,…), or give the route the tag \
         aigw-image-url-fetch"
    )))
}

/// The media type and decoded bytes of a base64 `data:` URI.
fn data_uri(url: &str) -> Option<(&str, Vec<u8>)> {
    use base64::Engine;
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    Some((mime, bytes))
}

#[derive(Serialize)]
struct WireResponse<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [WireChoice<'a>; 1],
    usage: WireUsage,
}

#[derive(Serialize)]
struct WireChoice<'a> {
    index: u32,
    message: WireAnswer<'a>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct WireAnswer<'a> {
    role: &'static str,
    /// `null` when the answer is only tool calls, as OpenAI sends it.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    /// The reasoning with its signature, in LiteLLM's shape, to be sent back as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_blocks: Option<[WireThinking<'a>; 1]>,
}

#[derive(Serialize)]
struct WireCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireCallFunction<'a>,
}

#[derive(Serialize)]
struct WireCallFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireThinking<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    thinking: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a str>,
}

#[derive(Serialize)]
struct WireUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    prompt_tokens_details: PromptDetails,
    /// Prompt tokens written to the provider's cache (Anthropic's and LiteLLM's name);
    /// left out when there were none.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u32>,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u32,
}

impl From<Usage> for WireUsage {
    fn from(u: Usage) -> Self {
        WireUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
            prompt_tokens_details: PromptDetails {
                cached_tokens: u.cache_read_tokens,
            },
            cache_creation_input_tokens: (u.cache_write_tokens > 0).then_some(u.cache_write_tokens),
        }
    }
}

fn encode_complete(answer: &ChatCompletion) -> Response {
    let only_calls = answer.content.is_empty() && !answer.tool_calls.is_empty();
    let wire = WireResponse {
        id: &answer.id,
        object: "chat.completion",
        created: answer.created,
        model: &answer.model,
        choices: [WireChoice {
            index: 0,
            message: WireAnswer {
                role: Role::Assistant.as_str(),
                content: (!only_calls).then_some(answer.content.as_str()),
                tool_calls: answer
                    .tool_calls
                    .iter()
                    .map(|c| WireCall {
                        id: &c.id,
                        kind: "function",
                        function: WireCallFunction {
                            name: &c.name,
                            arguments: &c.arguments,
                        },
                    })
                    .collect(),
                reasoning_content: answer.reasoning.as_ref().map(|r| r.text.as_str()),
                thinking_blocks: answer.reasoning.as_ref().map(|r| {
                    [WireThinking {
                        kind: "thinking",
                        thinking: &r.text,
                        signature: r.signature.as_deref(),
                    }]
                }),
            },
            finish_reason: answer.finish_reason.as_str(),
        }],
        usage: answer.usage.into(),
    };
    axum::Json(wire).into_response()
}

fn encode_reply(reply: ChatReply, include_usage: bool, broken: Option<StreamBreak>) -> Response {
    match reply.body {
        ReplyBody::Complete(answer) => encode_complete(&answer),
        ReplyBody::Stream(chunks) => {
            let mut response = Sse::new(sse_events(chunks, include_usage, broken)).into_response();
            // Reverse proxies such as nginx buffer responses unless told not to, which would
            // hold every token back until the answer is complete.
            response
                .headers_mut()
                .insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
    }
}

/// One `chat.completion.chunk`, shaped as OpenAI sends it: `logprobs` and `finish_reason`
/// present (null) on every choice, and with `include_usage` a `usage` key on every chunk,
/// null until the last one.
#[derive(Serialize)]
struct WireChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<WireChunkChoice<'a>>,
    /// Left out without `include_usage`; `Some(None)` is the `null` OpenAI sends before the
    /// usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<WireUsage>>,
}

#[derive(Serialize)]
struct WireChunkChoice<'a> {
    index: u32,
    delta: WireDelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct WireDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[WireCallDelta<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    /// The reasoning's signature when it arrives, in LiteLLM's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_blocks: Option<[WireThinking<'a>; 1]>,
}

/// A piece of a tool call: the first has its id, type and name; `index` counts the
/// answer's tool calls.
#[derive(Serialize)]
struct WireCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: WireCallFunctionDelta<'a>,
}

#[derive(Serialize)]
struct WireCallFunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// The JSON of one chunk, or `None` when the client would see nothing in it (the usage
/// chunk of a client that did not ask for usage).
fn chunk_json(chunk: &ChatChunk, include_usage: bool) -> Option<String> {
    let has_choice = chunk.has_choice();
    let choices = if has_choice {
        let role = chunk.role.map(Role::as_str);
        // OpenAI's first chunk carries `"content": ""` beside the role; some clients
        // concatenate `delta.content` without a null check.
        let content = chunk.content.as_deref().or(role.map(|_| ""));
        let tool_calls = chunk.tool_call.as_ref().map(|call| {
            [WireCallDelta {
                index: call.index,
                id: call.id.as_deref(),
                kind: call.id.as_ref().map(|_| "function"),
                function: WireCallFunctionDelta {
                    name: call.name.as_deref(),
                    arguments: &call.arguments,
                },
            }]
        });
        let reasoning = chunk.reasoning.as_ref();
        let reasoning_content = reasoning.map(|r| r.text.as_str()).filter(|t| !t.is_empty());
        let thinking_blocks = reasoning.and_then(|r| {
            r.signature.as_deref().map(|signature| {
                [WireThinking {
                    kind: "thinking",
                    thinking: "",
                    signature: Some(signature),
                }]
            })
        });
        vec![WireChunkChoice {
            index: 0,
            delta: WireDelta {
                role,
                content,
                tool_calls,
                reasoning_content,
                thinking_blocks,
            },
            logprobs: None,
            finish_reason: chunk.finish_reason.map(|f| f.as_str()),
        }]
    } else {
        Vec::new()
    };
    let usage = include_usage.then(|| chunk.usage.map(WireUsage::from));
    let usage_chunk = matches!(usage, Some(Some(_)));
    if !has_choice && !usage_chunk {
        return None;
    }
    let wire = WireChunk {
        id: &chunk.id,
        object: "chat.completion.chunk",
        created: chunk.created,
        model: &chunk.model,
        choices,
        usage,
    };
    serde_json::to_string(&wire).ok()
}

/// OpenAI's SSE framing: one `data:` event per chunk, pulled from upstream only as fast as
/// the client takes them (nothing is read ahead or buffered here), then `data: [DONE]`
/// after a clean end. If the upstream breaks, the last event is an OpenAI error body and
/// `[DONE]` is never sent, so SDKs raise instead of returning a truncated answer; the
/// break is recorded with `broken`.
fn sse_events(
    chunks: aigw_core::ChunkStream,
    include_usage: bool,
    broken: Option<StreamBreak>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    enum State {
        Streaming(aigw_core::ChunkStream, Option<StreamBreak>),
        Done,
    }
    futures_util::stream::unfold(State::Streaming(chunks, broken), move |state| async move {
        let State::Streaming(mut chunks, broken) = state else {
            return None;
        };
        loop {
            match chunks.next().await {
                Some(Ok(chunk)) => {
                    if let Some(json) = chunk_json(&chunk, include_usage) {
                        let event = Event::default().data(json);
                        return Some((Ok(event), State::Streaming(chunks, broken)));
                    }
                }
                Some(Err(error)) => {
                    // The response went out as a 200 long ago, so no error-logging layer
                    // sees this failure; it is logged here or nowhere.
                    tracing::warn!(kind = %error.kind(), %error, "upstream stream broke off; ending the client's stream with an error event");
                    if let Some(broken) = &broken {
                        broken.record(&error);
                    }
                    let body = ApiError(error).body().to_string();
                    return Some((Ok(Event::default().data(body)), State::Done));
                }
                None => return Some((Ok(Event::default().data("[DONE]")), State::Done)),
            }
        }
    })
}

#[cfg(test)]
#[path = "http_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aigw_core::FinishReason;

    use super::*;

    fn chunk() -> ChatChunk {
        ChatChunk {
            id: Arc::from("chatcmpl-1"),
            created: 7,
            model: Arc::from("m"),
            role: None,
            content: None,
            tool_call: None,
            reasoning: None,
            finish_reason: None,
            usage: None,
        }
    }

    fn json_of(chunk: &ChatChunk, include_usage: bool) -> Option<serde_json::Value> {
        chunk_json(chunk, include_usage).map(|j| serde_json::from_str(&j).expect("valid JSON"))
    }

    #[test]
    fn each_unsupported_field_is_refused_by_its_own_name() {
        for (field, harmless) in UNSUPPORTED {
            let body = serde_json::json!({
                "messages": [{"role": "user", "content": "hi"}],
                field: "not harmless",
            });
            let wire: WireRequest = decode_json(body.to_string().as_bytes()).expect("decodes");
            let error = wire.check_unsupported(false).expect_err(field);
            assert!(error.message().starts_with(&format!("{field}:")), "{error}");
            assert!(wire.check_unsupported(true).is_ok());
            assert!(!harmless(&Value::from("not harmless")));
        }
        let harmless = serde_json::json!({
            "messages": [{"role": "user", "content": "hi"}],
            "logprobs": false, "presence_penalty": 0, "modalities": ["text"], "n": 1
        });
        let wire: WireRequest = decode_json(harmless.to_string().as_bytes()).expect("decodes");
        assert!(wire.check_unsupported(false).is_ok());
    }

    #[test]
    fn first_chunk_has_role_and_empty_content_like_openai() {
        let first = ChatChunk {
            role: Some(Role::Assistant),
            ..chunk()
        };
        let json = json_of(&first, false).expect("a chunk");
        assert_eq!(
            json["choices"][0],
            serde_json::json!({
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": null,
                "finish_reason": null
            })
        );
        assert_eq!(json["object"], "chat.completion.chunk");
    }

    #[test]
    fn usage_chunk_only_when_asked() {
        let usage = ChatChunk {
            usage: Some(Usage {
                prompt_tokens: 1,
                completion_tokens: 2,
                total_tokens: 3,
                ..Usage::default()
            }),
            ..chunk()
        };
        assert!(chunk_json(&usage, false).is_none());
        let json = json_of(&usage, true).expect("a usage chunk");
        assert_eq!(json["choices"], serde_json::json!([]));
        assert_eq!(json["usage"]["total_tokens"], 3);
        let finish = ChatChunk {
            finish_reason: Some(FinishReason::Length),
            ..chunk()
        };
        let json = json_of(&finish, true).expect("finish chunk");
        assert!(json["usage"].is_null() && json.get("usage").is_some());
        assert_eq!(json["choices"][0]["finish_reason"], "length");
        assert!(json_of(&finish, false).is_some_and(|j| j.get("usage").is_none()));
    }

    #[tokio::test]
    async fn events_pull_one_chunk_at_a_time() {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let endless: aigw_core::ChunkStream =
            Box::pin(futures_util::stream::repeat_with(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(ChatChunk {
                    content: Some("word".into()),
                    ..chunk()
                })
            }));
        let mut events = std::pin::pin!(sse_events(endless, false, None));
        for taken in 1..=3 {
            let _event = events.next().await.expect("an event");
            // Nothing is read ahead of what the client has taken.
            assert_eq!(pulled.load(Ordering::SeqCst), taken);
        }
    }

    #[tokio::test]
    async fn a_broken_stream_ends_with_an_error_event_and_no_done() {
        let broken: aigw_core::ChunkStream = Box::pin(futures_util::stream::iter([
            Ok(ChatChunk {
                content: Some("a".into()),
                ..chunk()
            }),
            Err(Error::new(ErrorKind::UpstreamProtocol, "cut")),
        ]));
        let events: Vec<_> = sse_events(broken, true, None).collect().await;
        assert_eq!(events.len(), 2, "the content, then the error, then nothing");
    }
}
