//! The HTTP/JSON facade in OpenAI's chat-completions format: decode, call the route's
//! stack, encode. Nothing else happens here.

use std::convert::Infallible;
use std::sync::Arc;

use aigw_config::ResponseStreaming;
use aigw_core::{
    ChatChunk, ChatReply, ChatRequest, ChatResponse, Error, ErrorKind, Message, ReplyBody, Role,
    Usage,
};
use axum::extract::{Request, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, Method, header};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use crate::{ApiError, Route, RouteTable};

/// Header naming the target that served an answer, like Kong's `X-Kong-LLM-Model`.
pub(crate) const MODEL_HEADER: &str = "x-aigw-llm-model";

/// Serves a POST to any configured route path; every other path is an OpenAI-style 404.
pub(crate) async fn route_path(
    State(table): State<Arc<RouteTable>>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = request.uri().path();
    if is_grpc(&request) {
        // A gRPC call to a service we do not serve: answer in gRPC's terms.
        let status = tonic::Status::unimplemented(format!("no gRPC method {path}"));
        return Ok(status.into_http());
    }
    let route = table.by_path(path).cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::RouteNotFound,
            format!("no route for path {path}"),
        )
    })?;
    aigw_telemetry::record_route(&route.name);
    if request.method() != Method::POST {
        return Ok(method_not_allowed(request.method()));
    }
    chat(&route, request).await
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn method_not_allowed(method: &Method) -> Response {
    let error = ApiError(Error::invalid_request(format!(
        "method {method} is not allowed; send chat requests with POST"
    )));
    let mut response = (
        http::StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(error.body()),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn chat(route: &Route, request: Request) -> Result<Response, ApiError> {
    let body = axum::body::to_bytes(request.into_body(), route.max_request_body_size)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "request body is larger than this route's max_request_body_size of {} bytes",
                    route.max_request_body_size
                ),
            )
        })?;
    let wire: WireRequest = decode_json(&body)?;
    let include_usage = wire
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let mut request = ChatRequest::try_from(wire)?;
    request.stream = match (route.response_streaming, request.stream) {
        (ResponseStreaming::Deny, true) => {
            return Err(Error::invalid_request(
                "streaming is disabled on this route (response_streaming: deny); send \"stream\": false",
            )
            .into());
        }
        (ResponseStreaming::Always, _) => true,
        (_, wanted) => wanted,
    };

    let reply = route.service.clone().oneshot(request).await?;
    let served_by = route
        .model_name_header
        .then(|| HeaderValue::from_str(&reply.served_by.to_string()).ok())
        .flatten();
    let mut response = encode_reply(reply, include_usage);
    if let Some(value) = served_by {
        response.headers_mut().insert(MODEL_HEADER, value);
    }
    Ok(response)
}

/// Decodes a JSON body, naming the offending field on error.
fn decode_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            Error::invalid_request(format!("invalid JSON body: {inner}"))
        } else {
            Error::invalid_request(format!("invalid JSON body at {path}: {inner}"))
        }
    })
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
        if wire.messages.is_empty() {
            return Err(Error::invalid_request(
                "messages must hold at least one message",
            ));
        }
        if wire.n.is_some_and(|n| n != 1) {
            return Err(Error::invalid_request("only n = 1 is supported"));
        }
        let messages = wire
            .messages
            .into_iter()
            .enumerate()
            .map(|(index, m)| message(index, m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChatRequest {
            model: wire.model,
            messages: messages.into(),
            max_tokens: wire.max_completion_tokens.or(wire.max_tokens),
            temperature: wire.temperature,
            top_p: wire.top_p,
            stop: match wire.stop {
                None => Arc::from([]),
                Some(Stop::One(s)) => Arc::from([s]),
                Some(Stop::Many(v)) => v.into(),
            },
            stream: wire.stream,
        })
    }
}

pub(crate) fn parse_role(index: usize, role: &str) -> Result<Role, Error> {
    match role {
        "system" | "developer" => Ok(Role::System),
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        other => Err(Error::invalid_request(format!(
            "messages[{index}].role: unknown role {other:?}, expected one of system, developer, user, assistant"
        ))),
    }
}

fn message(index: usize, wire: WireMessage) -> Result<Message, Error> {
    let role = parse_role(index, &wire.role)?;
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

fn encode_complete(answer: &ChatResponse) -> Response {
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

fn encode_reply(reply: ChatReply, include_usage: bool) -> Response {
    match reply.body {
        ReplyBody::Complete(answer) => encode_complete(&answer),
        ReplyBody::Stream(chunks) => Sse::new(sse_events(chunks, include_usage)).into_response(),
    }
}

#[derive(Serialize)]
struct WireChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<WireChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<WireUsage>,
}

#[derive(Serialize)]
struct WireChunkChoice<'a> {
    index: u32,
    delta: WireDelta<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct WireDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

fn chunk_event(chunk: &ChatChunk, include_usage: bool) -> Option<Event> {
    let choices =
        if chunk.role.is_some() || chunk.content.is_some() || chunk.finish_reason.is_some() {
            vec![WireChunkChoice {
                index: 0,
                delta: WireDelta {
                    role: chunk.role.map(Role::as_str),
                    content: chunk.content.as_deref(),
                },
                finish_reason: chunk.finish_reason.map(|f| f.as_str()),
            }]
        } else {
            Vec::new()
        };
    let usage = chunk.usage.filter(|_| include_usage).map(WireUsage::from);
    if choices.is_empty() && usage.is_none() {
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
    serde_json::to_string(&wire)
        .ok()
        .map(|json| Event::default().data(json))
}

/// OpenAI's SSE framing: one `data:` event per chunk, an error event if the upstream
/// breaks (never a silent truncated success), and `[DONE]` only after a clean end.
fn sse_events(
    chunks: aigw_core::ChunkStream,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    enum State {
        Streaming(aigw_core::ChunkStream),
        Done,
    }
    futures_util::stream::unfold(State::Streaming(chunks), move |state| async move {
        let State::Streaming(mut chunks) = state else {
            return None;
        };
        loop {
            match chunks.next().await {
                Some(Ok(chunk)) => {
                    if let Some(event) = chunk_event(&chunk, include_usage) {
                        return Some((Ok(event), State::Streaming(chunks)));
                    }
                }
                Some(Err(error)) => {
                    let body = ApiError(error).body().to_string();
                    return Some((Ok(Event::default().data(body)), State::Done));
                }
                None => return Some((Ok(Event::default().data("[DONE]")), State::Done)),
            }
        }
    })
}

/// The health probe: 200 once the routes are loaded (they are before the port opens).
pub(crate) async fn health(State(table): State<Arc<RouteTable>>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "routes": table.routes().iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
    }))
    .into_response()
}
