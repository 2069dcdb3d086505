//! The HTTP/JSON front end in OpenAI's chat-completions format: decode the body, hand it
//! to admission, encode the answer as JSON or as SSE events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aigw_core::{
    ChatChunk, ChatCompletion, ChatReply, ChatRequest, Error, ErrorKind, Message, ReplyBody, Role,
    Usage,
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

use crate::admission::{Admission, Answering, Caller, MODEL_HEADER, RouteKey, peer_ip};
use crate::front_door::BodyTimeout;
use crate::recent::{Answered, StreamBreak};
use crate::router::RequestHead;
use crate::{ApiError, Route, SharedRoutes, error::grpc_response};

/// OpenAI's own chat path, so OpenAI SDKs work with only `base_url` pointed at aigw.
pub(crate) const OPENAI_CHAT_PATH: &str = "/v1/chat/completions";

/// An HTTP client may ask for either shape, so `response_streaming: always` may stream.
const ANSWERING: Answering = Answering {
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
            let mut response = ApiError(refused.error).into_response();
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
struct Refused {
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
    let caller = Caller {
        headers: &parts.headers,
        query: parts.uri.query(),
        peer: peer_ip(&parts.extensions),
        path: Some(parts.uri.path()),
    };
    let head = RequestHead::of(parts);
    // At OpenAI's path the route, and so its key-auth, is known only from the body. The
    // path is compared as Kong's router sees it, so `//v1/chat/completions` is that path.
    let at_openai_path = crate::router::normalize(head.path) == OPENAI_CHAT_PATH;
    let route = if at_openai_path && !admission.serves(&head) {
        None
    } else {
        let key = RouteKey::Http(head);
        Some(
            admission
                .route(key, caller)
                .inspect_err(|_| *routed = admission.named(key))?,
        )
    };
    routed.clone_from(&route.as_ref().map(|entry| entry.route.clone()));
    if parts.method != Method::POST {
        return Err(Error::new(
            ErrorKind::MethodNotAllowed,
            format!(
                "method {} is not allowed; send chat requests with POST",
                parts.method
            ),
        )
        .into());
    }
    require_json(&parts.headers)?;
    require_identity(&parts.headers)?;
    let limit = admission.body_limit(route.as_ref().map(|e| &*e.route));
    let over = || admission.body_too_large(route.as_ref().map(|e| &*e.route));
    let body = read_body(body.take().unwrap_or_default(), limit, over).await?;
    let wire: WireRequest = decode_json(&body)?;
    let model = wire.model.clone();
    let include_usage = wire
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let request = ChatRequest::try_from(wire)?;
    let route = match route {
        Some(route) => route,
        None => {
            let key = RouteKey::Model(model.as_deref());
            admission
                .route(key, caller)
                .inspect_err(|_| *routed = admission.named(key))?
        }
    };
    *routed = Some(route.route.clone());
    let admitted = Admission::call(&route, caller, ANSWERING, request, body.len()).await?;
    let broken = StreamBreak::new(
        routes,
        route.route,
        admitted.reply.served_by.clone(),
        Answered::HttpStream,
    );
    let mut response = encode_reply(admitted.reply, include_usage, Some(broken));
    if let Some(value) = admitted.model_header {
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
fn decode_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Error> {
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
}

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
    content: Content,
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
}

impl TryFrom<WireRequest> for ChatRequest {
    type Error = Error;

    fn try_from(wire: WireRequest) -> Result<Self, Error> {
        let messages = super::conversation(wire.messages, message)?;
        if wire.n.is_some_and(|n| n != 1) {
            return Err(Error::invalid_request("only n = 1 is supported"));
        }
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
        })
    }
}

fn message((index, wire): (usize, WireMessage)) -> Result<Message, Error> {
    let role = super::role(index, &wire.role)?;
    let content = match wire.content {
        Content::Text(text) => text,
        Content::Parts(parts) => {
            let mut text = String::new();
            for (part_index, part) in parts.into_iter().enumerate() {
                match (part.kind.as_str(), part.text) {
                    ("text", Some(t)) => text.push_str(&t),
                    (kind, _) => {
                        return Err(Error::invalid_request(format!(
                            "messages[{index}].content[{part_index}]: content part of type {kind:?} is not supported; only text parts are"
                        )));
                    }
                }
            }
            text
        }
    };
    Ok(Message { role, content })
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
    content: &'a str,
}

#[derive(Serialize)]
struct WireUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

impl From<Usage> for WireUsage {
    fn from(u: Usage) -> Self {
        WireUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
        }
    }
}

fn encode_complete(answer: &ChatCompletion) -> Response {
    let wire = WireResponse {
        id: &answer.id,
        object: "chat.completion",
        created: answer.created,
        model: &answer.model,
        choices: [WireChoice {
            index: 0,
            message: WireAnswer {
                role: Role::Assistant.as_str(),
                content: &answer.content,
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
        vec![WireChunkChoice {
            index: 0,
            delta: WireDelta { role, content },
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
            finish_reason: None,
            usage: None,
        }
    }

    fn json_of(chunk: &ChatChunk, include_usage: bool) -> Option<serde_json::Value> {
        chunk_json(chunk, include_usage).map(|j| serde_json::from_str(&j).expect("valid JSON"))
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
