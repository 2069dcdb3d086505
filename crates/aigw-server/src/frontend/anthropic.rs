//! The front end in Anthropic's Messages format (Kong's `llm_format: anthropic`), what
//! Claude Code and the Anthropic SDKs speak: one decoder (a Messages request into a core
//! `ChatRequest`) and one encoder (the answer as a message object or as Anthropic's SSE
//! events). Admission, the stack and everything after are the OpenAI front end's.

use std::convert::Infallible;
use std::sync::Arc;

use aigw_config::KeyAuthConfig;
use aigw_core::{
    ChatChunk, ChatCompletion, ChatReply, ChatRequest, Document, Error, ErrorKind, FinishReason,
    Image, ImageFormat, Message, Part, Reasoning, ReasoningEffort, ReplyBody, Role, Tool, ToolCall,
    ToolChoice, Usage,
};
use axum::body::Body;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::{Stream, StreamExt};
use http::HeaderValue;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{
    ANSWERING, Refused, answer, decode_json, error_in_shape, read_route_json, require_post,
};
use crate::admission::{Admission, Caller, Entry};
use crate::recent::StreamBreak;
use crate::{ApiError, SharedRoutes};

/// The Messages path under a route's path.
const MESSAGES_PATH: &str = "/v1/messages";

/// The token-counting path under a route's path.
const COUNT_TOKENS_PATH: &str = "/v1/messages/count_tokens";

/// The header Anthropic clients carry their key in.
const API_KEY_HEADER: &str = "x-api-key";

/// A route's key-auth for Anthropic clients: besides the route's `key_names` and
/// `Authorization: Bearer` (Claude Code's `ANTHROPIC_AUTH_TOKEN`), the `x-api-key` header
/// the SDKs send, so a consumer key works whichever variable holds it.
pub(crate) fn key_auth(config: &KeyAuthConfig) -> KeyAuthConfig {
    let mut config = config.clone();
    if config.key_in_header
        && !config
            .key_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(API_KEY_HEADER))
    {
        config.key_names.push(API_KEY_HEADER.to_owned());
    }
    config
}

/// One request to an Anthropic-format route, already admitted by path and key.
pub(super) async fn messages(
    routes: &SharedRoutes,
    admission: &Admission,
    caller: Caller<'_>,
    parts: &http::request::Parts,
    body: &mut Option<Body>,
    entry: Entry,
) -> Result<Response, Refused> {
    let path = crate::router::normalize(parts.uri.path());
    let path = path.trim_end_matches('/');
    if path.ends_with(COUNT_TOKENS_PATH) {
        require_post(&parts.method, "count_tokens")?;
        let body = read_route_json(admission, &entry, &parts.headers, body).await?;
        let wire: WireRequest = decode_json(&body)?;
        let request = wire.into_core(Purpose::Count)?;
        let input_tokens = Admission::count_tokens(&entry, request, body.len()).await?;
        return Ok(axum::Json(json!({ "input_tokens": input_tokens })).into_response());
    }
    if !path.ends_with(MESSAGES_PATH) {
        return Err(Error::new(
            ErrorKind::RouteNotFound,
            format!(
                "this route speaks Anthropic's Messages API; POST to <route path>{MESSAGES_PATH}, not {path}"
            ),
        )
        .into());
    }
    require_post(&parts.method, "messages")?;
    let body = read_route_json(admission, &entry, &parts.headers, body).await?;
    let wire: WireRequest = decode_json(&body)?;
    let request = wire.into_core(Purpose::Answer)?;
    let stops = StopSequences::of(&request);
    let admitted = Admission::call(&entry, caller, ANSWERING, request, body.len()).await?;
    Ok(answer(
        routes,
        entry.route.clone(),
        admitted,
        move |reply, broken| encode_reply(reply, broken, stops),
    ))
}

/// An error as Anthropic sends it, `{"type":"error","error":{"type":…,"message":…}}`,
/// with the status and headers (`Retry-After`, `WWW-Authenticate`) of the OpenAI answer.
pub(super) fn error_response(error: Error) -> Response {
    error_in_shape(
        error,
        |status, message| json!({"type": "error", "error": {"type": error_type(status), "message": message}}),
    )
}

/// Anthropic's error type for a status, which its SDKs map to their exception classes
/// by status.
fn error_type(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 405 | 415 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

// ---------------------------------------------------------------------------------------
// The decoder.

/// A Messages request. Fields aigw does not know are ignored, since clients such as Claude
/// Code add new ones faster than gateways learn them; fields it knows but cannot carry
/// (`top_k`) are refused by name.
#[derive(Deserialize)]
struct WireRequest {
    model: Option<String>,
    max_tokens: Option<u32>,
    messages: Vec<WireMessage>,
    system: Option<WireContent>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    #[serde(default)]
    stream: bool,
    tools: Option<Vec<WireTool>>,
    tool_choice: Option<WireToolChoice>,
    thinking: Option<WireThinkingConfig>,
    /// InvokeModel's body only: its format's version, and the betas Bedrock passes on to
    /// Claude.
    anthropic_version: Option<String>,
    anthropic_beta: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    content: WireContent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    Blocks(Vec<WireBlock>),
}

#[derive(Deserialize)]
struct WireBlock {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    source: Option<WireSource>,
    id: Option<String>,
    name: Option<String>,
    input: Option<Value>,
    tool_use_id: Option<String>,
    is_error: Option<bool>,
    content: Option<WireContent>,
    thinking: Option<String>,
    signature: Option<String>,
    cache_control: Option<Value>,
    title: Option<String>,
}

#[derive(Deserialize)]
struct WireSource {
    #[serde(rename = "type")]
    kind: String,
    media_type: Option<String>,
    data: Option<String>,
}

#[derive(Deserialize)]
struct WireTool {
    name: String,
    description: Option<String>,
    input_schema: Option<Value>,
    cache_control: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct WireToolChoice {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
struct WireThinkingConfig {
    #[serde(rename = "type")]
    kind: String,
    budget_tokens: Option<u32>,
}

/// InvokeModel's body for Anthropic Claude on Bedrock (what the Bedrock-format route's
/// `/invoke` and `/invoke-with-response-stream` take): the Messages body with
/// `anthropic_version` and no `model`, which the path names. Its `anthropic_beta` goes to
/// Bedrock among the additional model fields, as Bedrock takes it.
pub(super) fn decode_invoke(
    body: &[u8],
    model_id: String,
    stream: bool,
) -> Result<(ChatRequest, StopSequences), Error> {
    let not_claudes = || {
        Error::invalid_request(
            "anthropic_version: field required; aigw serves InvokeModel for Anthropic Claude's \
             Messages body (\"anthropic_version\": \"bedrock-2023-05-31\"); call Converse for \
             other models",
        )
    };
    let mut wire: WireRequest = match decode_json(body) {
        Ok(wire) => wire,
        // A body of another model family fails as a Messages body in ways that would only
        // puzzle its client; read again (on this error path only) for what it lacks.
        Err(error) => {
            #[derive(Deserialize)]
            struct Version {
                anthropic_version: Option<String>,
            }
            let version: Result<Version, _> = decode_json(body);
            return Err(match version {
                Ok(Version {
                    anthropic_version: None,
                }) => not_claudes(),
                _ => error,
            });
        }
    };
    if wire.anthropic_version.is_none() {
        return Err(not_claudes());
    }
    let betas = wire.anthropic_beta.take().filter(|b| !b.is_empty());
    let mut request = wire.into_core(Purpose::Answer)?;
    if let Some(betas) = betas {
        let mut fields = request.model_fields.as_deref().cloned().unwrap_or_default();
        fields.insert("anthropic_beta".to_owned(), Value::from(betas));
        request.model_fields = Some(Arc::new(fields));
    }
    request.model = Some(model_id);
    request.stream = stream;
    let stops = StopSequences::of(&request);
    Ok((request, stops))
}

/// What a Messages body is sent for: `count_tokens` takes the same body without
/// `max_tokens`, since nothing is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Answer,
    Count,
}

impl WireRequest {
    fn into_core(self, purpose: Purpose) -> Result<ChatRequest, Error> {
        let max_tokens = match (self.max_tokens, purpose) {
            (None, Purpose::Answer) => {
                return Err(Error::invalid_request("max_tokens: field required"));
            }
            (max_tokens, _) => max_tokens,
        };
        // Anthropic models on Bedrock take top_k among the additional model fields.
        let model_fields = self.top_k.map(|top_k| {
            let mut fields = serde_json::Map::new();
            fields.insert("top_k".to_owned(), Value::from(top_k));
            Arc::new(fields)
        });
        let mut messages = Vec::with_capacity(self.messages.len() + 1);
        if let Some(system) = self.system {
            let mut message = Message::new(Role::System, "");
            message.content = parts(system, "system", false)?;
            messages.push(message);
        }
        if self.messages.is_empty() {
            return Err(Error::invalid_request(
                "messages must hold at least one message",
            ));
        }
        for (index, wire) in self.messages.into_iter().enumerate() {
            decode_message(index, wire, &mut messages)?;
        }
        let tools = self
            .tools
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, tool)| decode_tool(i, tool))
            .collect::<Result<Vec<_>, _>>()?;
        let (tool_choice, parallel_tool_calls) = match self.tool_choice {
            None => (None, None),
            Some(choice) => decode_tool_choice(choice)?,
        };
        let reasoning_effort = match self.thinking {
            None => None,
            Some(thinking) => decode_thinking(thinking)?,
        };
        Ok(ChatRequest {
            model: self.model,
            messages: messages.into(),
            max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            stop: self.stop_sequences.into(),
            stream: self.stream,
            tools: tools.into(),
            tool_choice,
            parallel_tool_calls,
            reasoning_effort,
            model_fields,
            ..ChatRequest::default()
        })
    }
}

/// One Anthropic message into core messages: a user turn's `tool_result` blocks become
/// tool turns of their own (the core's shape, which drivers regroup), in order.
fn decode_message(index: usize, wire: WireMessage, out: &mut Vec<Message>) -> Result<(), Error> {
    let at = format!("messages[{index}]");
    let role = match wire.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(Error::invalid_request(format!(
                "{at}.role: unknown role {other:?}, expected user or assistant"
            )));
        }
    };
    let blocks = match wire.content {
        WireContent::Text(text) => {
            out.push(Message::new(role, text));
            return Ok(());
        }
        WireContent::Blocks(blocks) => blocks,
    };
    let mut message = Message::new(role, "");
    message.content.clear();
    for (b, block) in blocks.into_iter().enumerate() {
        let at = format!("{at}.content[{b}]");
        match (block.kind.as_str(), role) {
            ("tool_use", Role::Assistant) => {
                let (Some(id), Some(name)) = (block.id, block.name) else {
                    return Err(Error::invalid_request(format!(
                        "{at}: a tool_use block needs id and name"
                    )));
                };
                let input = block.input.unwrap_or_else(|| json!({}));
                message.tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments: input.to_string(),
                });
            }
            ("thinking", Role::Assistant) => {
                message.reasoning = Some(Reasoning {
                    text: block.thinking.unwrap_or_default(),
                    signature: block.signature,
                });
            }
            ("tool_result", Role::User) => {
                let Some(id) = block.tool_use_id else {
                    return Err(Error::invalid_request(format!(
                        "{at}: a tool_result block needs tool_use_id"
                    )));
                };
                // What the user turn said before the result keeps its place.
                if !message.content.is_empty() {
                    out.push(std::mem::replace(&mut message, Message::new(role, "")));
                    message.content.clear();
                }
                let mut result = Message::new(Role::Tool, "");
                result.tool_call_id = Some(id);
                result.tool_failed = block.is_error.unwrap_or(false);
                result.content = match block.content {
                    Some(content) => parts(content, &at, true)?,
                    None => Vec::new(),
                };
                if block.cache_control.is_some() {
                    result.content.push(Part::CachePoint);
                }
                out.push(result);
            }
            _ => message.content.extend(block_parts(block, &at, false)?),
        }
    }
    if !message.content.is_empty() || !message.tool_calls.is_empty() || message.reasoning.is_some()
    {
        out.push(message);
    }
    Ok(())
}

/// The parts of content that holds only text, images and documents (a system prompt, a
/// tool result).
fn parts(content: WireContent, at: &str, images: bool) -> Result<Vec<Part>, Error> {
    match content {
        WireContent::Text(text) => Ok(vec![Part::Text(text)]),
        WireContent::Blocks(blocks) => {
            let mut parts = Vec::new();
            for (i, block) in blocks.into_iter().enumerate() {
                parts.extend(block_parts(block, &format!("{at}[{i}]"), !images)?);
            }
            Ok(parts)
        }
    }
}

/// A text, image or document block, followed by a cache point when it has `cache_control`.
fn block_parts(block: WireBlock, at: &str, text_only: bool) -> Result<Vec<Part>, Error> {
    let part = match block.kind.as_str() {
        "text" => Part::Text(block.text.unwrap_or_default()),
        "image" if !text_only => {
            let (media_type, bytes) = base64_source(block.source, at)?;
            let format = ImageFormat::from_mime(&media_type).ok_or_else(|| {
                Error::invalid_request(format!(
                    "{at}.source.media_type: {media_type:?} is not image/png, image/jpeg, image/gif or image/webp"
                ))
            })?;
            Part::Image(Image {
                format,
                bytes: bytes.into(),
            })
        }
        "document" if !text_only => {
            let (media_type, bytes) = base64_source(block.source, at)?;
            if media_type != "application/pdf" {
                return Err(Error::invalid_request(format!(
                    "{at}.source.media_type: only application/pdf documents are supported, not {media_type:?}"
                )));
            }
            Part::Document(Document {
                name: block.title.unwrap_or_else(|| "document".to_owned()),
                bytes: bytes.into(),
            })
        }
        other => {
            return Err(Error::invalid_request(format!(
                "{at}.type: a {other:?} block is not supported here"
            )));
        }
    };
    let mut parts = vec![part];
    if block.cache_control.is_some() {
        parts.push(Part::CachePoint);
    }
    Ok(parts)
}

/// The media type and bytes of a `{"type": "base64", …}` source.
fn base64_source(source: Option<WireSource>, at: &str) -> Result<(String, Vec<u8>), Error> {
    let Some(source) = source else {
        return Err(Error::invalid_request(format!(
            "{at}.source: field required"
        )));
    };
    if source.kind != "base64" {
        return Err(Error::invalid_request(format!(
            "{at}.source.type: {:?} sources are not supported; send the data as base64",
            source.kind
        )));
    }
    let (Some(media_type), Some(data)) = (source.media_type, source.data) else {
        return Err(Error::invalid_request(format!(
            "{at}.source: a base64 source needs media_type and data"
        )));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Error::invalid_request(format!("{at}.source.data: not base64: {e}")))?;
    Ok((media_type, bytes))
}

fn decode_tool(index: usize, tool: WireTool) -> Result<Tool, Error> {
    if let Some(kind) = tool.kind.filter(|k| k != "custom") {
        return Err(Error::invalid_request(format!(
            "tools[{index}].type: Anthropic's server tool {kind:?} is not supported; define client tools with input_schema"
        )));
    }
    let parameters = tool.input_schema.ok_or_else(|| {
        Error::invalid_request(format!("tools[{index}].input_schema: field required"))
    })?;
    Ok(Tool {
        name: tool.name,
        description: tool.description,
        parameters,
        cache_point: tool.cache_control.is_some(),
    })
}

fn decode_tool_choice(choice: WireToolChoice) -> Result<(Option<ToolChoice>, Option<bool>), Error> {
    let parallel = choice.disable_parallel_tool_use.map(|disable| !disable);
    let choice = match choice.kind.as_str() {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => ToolChoice::Function(choice.name.ok_or_else(|| {
            Error::invalid_request("tool_choice.name: required when type is \"tool\"")
        })?),
        other => {
            return Err(Error::invalid_request(format!(
                "tool_choice.type: unknown value {other:?}, expected auto, any, tool or none"
            )));
        }
    };
    Ok((Some(choice), parallel))
}

/// Anthropic's thinking budget as the core's effort, the nearest of the budgets the
/// Bedrock driver gives each effort (1024, 4096, 16384 tokens).
fn decode_thinking(thinking: WireThinkingConfig) -> Result<Option<ReasoningEffort>, Error> {
    match thinking.kind.as_str() {
        "disabled" => Ok(None),
        "enabled" => {
            let budget = thinking.budget_tokens.ok_or_else(|| {
                Error::invalid_request("thinking.budget_tokens: required when type is \"enabled\"")
            })?;
            Ok(Some(match budget {
                0..=2047 => ReasoningEffort::Low,
                2048..=8191 => ReasoningEffort::Medium,
                _ => ReasoningEffort::High,
            }))
        }
        other => Err(Error::invalid_request(format!(
            "thinking.type: unknown value {other:?}, expected enabled or disabled"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// The encoder.

/// Anthropic's message id for a core answer id (`chatcmpl-…` becomes `msg_…`).
fn message_id(id: &str) -> String {
    format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
}

fn stop_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "end_turn",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter | FinishReason::GuardrailIntervened => "refusal",
    }
}

/// Anthropic's `stop_sequence`: which of the request's sequences ended the answer. Bedrock
/// says only that one did, so it is known when the request had exactly one.
#[derive(Clone, Default)]
pub(super) struct StopSequences(Option<Arc<str>>);

impl StopSequences {
    pub(super) fn of(request: &ChatRequest) -> Self {
        match &*request.stop {
            [only] => StopSequences(Some(Arc::from(only.as_str()))),
            _ => StopSequences(None),
        }
    }

    fn matched(&self, reason: FinishReason) -> Value {
        match (&self.0, reason) {
            (Some(sequence), FinishReason::StopSequence) => Value::from(&**sequence),
            _ => Value::Null,
        }
    }
}

/// Anthropic counts `input_tokens` apart from the cached ones; the core counts them in.
fn usage_json(usage: Usage) -> Value {
    let cached = usage.cache_read_tokens + usage.cache_write_tokens;
    json!({
        "input_tokens": usage.prompt_tokens.saturating_sub(cached),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    })
}

/// A tool call's arguments as the `input` object Anthropic clients expect.
fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

pub(super) fn complete_json(answer: &ChatCompletion, stops: &StopSequences) -> Value {
    let mut content = Vec::new();
    if let Some(reasoning) = &answer.reasoning {
        content.push(json!({
            "type": "thinking",
            "thinking": reasoning.text,
            "signature": reasoning.signature.as_deref().unwrap_or_default(),
        }));
    }
    if !answer.content.is_empty() || answer.tool_calls.is_empty() {
        content.push(json!({"type": "text", "text": answer.content}));
    }
    for call in &answer.tool_calls {
        content.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": tool_input(&call.arguments),
        }));
    }
    json!({
        "id": message_id(&answer.id),
        "type": "message",
        "role": "assistant",
        "model": &*answer.model,
        "content": content,
        "stop_reason": stop_reason(answer.finish_reason),
        "stop_sequence": stops.matched(answer.finish_reason),
        "usage": usage_json(answer.usage),
    })
}

fn encode_reply(reply: ChatReply, broken: StreamBreak, stops: StopSequences) -> Response {
    match reply.body {
        ReplyBody::Complete(answer) => axum::Json(complete_json(&answer, &stops)).into_response(),
        ReplyBody::Stream(chunks) => {
            let encoder = Encoder::new(stops);
            let mut response = Sse::new(sse_events(chunks, Some(broken), encoder)).into_response();
            // As on the OpenAI path: proxies must not hold tokens back.
            response
                .headers_mut()
                .insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
    }
}

/// The content block a stream has open.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool_use block, for the core's tool call of this index.
    Tool(u32),
}

/// Turns core chunks into Anthropic's events: it opens and closes content blocks as the
/// kind of what arrives changes, and keeps the end (stop reason, usage) for
/// `message_delta`.
#[derive(Default)]
pub(super) struct Encoder {
    started: bool,
    open: Option<Open>,
    /// The index of the open block, or of the next one.
    index: u32,
    stop: Option<FinishReason>,
    stops: StopSequences,
    usage: Usage,
}

/// An SSE event before framing: its name and its JSON.
pub(super) type Named = (&'static str, Value);

fn event(name: &'static str, data: Value) -> Named {
    (name, data)
}

impl Encoder {
    pub(super) fn new(stops: StopSequences) -> Self {
        Encoder {
            stops,
            ..Encoder::default()
        }
    }

    fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<Named>) {
        if !self.started {
            self.started = true;
            out.push(event(
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": message_id(&chunk.id),
                    "type": "message",
                    "role": "assistant",
                    "model": &*chunk.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": usage_json(Usage::default()),
                }}),
            ));
            out.push(event("ping", json!({"type": "ping"})));
        }
        if let Some(reasoning) = &chunk.reasoning {
            self.open_block(
                Open::Thinking,
                out,
                || json!({"type": "thinking", "thinking": "", "signature": ""}),
            );
            if !reasoning.text.is_empty() {
                self.delta(
                    out,
                    json!({"type": "thinking_delta", "thinking": reasoning.text}),
                );
            }
            if let Some(signature) = &reasoning.signature {
                self.delta(
                    out,
                    json!({"type": "signature_delta", "signature": signature}),
                );
            }
        }
        if let Some(text) = chunk.content.as_deref().filter(|t| !t.is_empty()) {
            self.open_block(Open::Text, out, || json!({"type": "text", "text": ""}));
            self.delta(out, json!({"type": "text_delta", "text": text}));
        }
        if let Some(call) = &chunk.tool_call {
            if self.open != Some(Open::Tool(call.index)) {
                let (id, name) = (
                    call.id.as_deref().unwrap_or_default(),
                    call.name.as_deref().unwrap_or_default(),
                );
                self.open_block(
                    Open::Tool(call.index),
                    out,
                    || json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                );
            }
            if !call.arguments.is_empty() {
                self.delta(
                    out,
                    json!({"type": "input_json_delta", "partial_json": call.arguments}),
                );
            }
        }
        if let Some(reason) = chunk.finish_reason {
            self.stop = Some(reason);
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage;
        }
    }

    fn open_block(&mut self, kind: Open, out: &mut Vec<Named>, block: impl FnOnce() -> Value) {
        if self.open == Some(kind) {
            return;
        }
        self.close_block(out);
        self.open = Some(kind);
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": self.index, "content_block": block()}),
        ));
    }

    fn close_block(&mut self, out: &mut Vec<Named>) {
        if self.open.take().is_some() {
            out.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.index}),
            ));
            self.index += 1;
        }
    }

    fn delta(&self, out: &mut Vec<Named>, delta: Value) {
        out.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
        ));
    }

    fn end(&mut self, out: &mut Vec<Named>) {
        self.close_block(out);
        let stop = self.stop.unwrap_or(FinishReason::Stop);
        out.push(event(
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(stop), "stop_sequence": self.stops.matched(stop)},
                "usage": usage_json(self.usage)}),
        ));
        out.push(event("message_stop", json!({"type": "message_stop"})));
    }
}

/// One piece of an Anthropic-shaped stream: an event, or the upstream's break, which ends
/// the stream without a `message_stop`.
pub(super) enum Outgoing {
    Event(Named),
    Broke(Error),
}

/// The events of an Anthropic-shaped stream, as chunks arrive, pulled from upstream only
/// as fast as the client reads; what frames them (SSE here, Bedrock's event stream for
/// InvokeModelWithResponseStream) is the caller's. A break is recorded with `broken`.
pub(super) fn events(
    chunks: aigw_core::ChunkStream,
    broken: Option<StreamBreak>,
    encoder: Encoder,
) -> impl Stream<Item = Outgoing> {
    struct State {
        chunks: aigw_core::ChunkStream,
        broken: Option<StreamBreak>,
        encoder: Encoder,
        done: bool,
    }
    let state = State {
        chunks,
        broken,
        encoder,
        done: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        let mut out = Vec::new();
        while out.is_empty() {
            match state.chunks.next().await {
                Some(Ok(chunk)) => {
                    let mut named = Vec::new();
                    state.encoder.chunk(&chunk, &mut named);
                    out.extend(named.into_iter().map(Outgoing::Event));
                }
                Some(Err(error)) => {
                    tracing::warn!(kind = %error.kind(), %error, "upstream stream broke off; ending the client's stream with an error");
                    if let Some(broken) = &state.broken {
                        broken.record(&error);
                    }
                    out.push(Outgoing::Broke(error));
                    state.done = true;
                }
                None => {
                    let mut named = Vec::new();
                    state.encoder.end(&mut named);
                    out.extend(named.into_iter().map(Outgoing::Event));
                    state.done = true;
                }
            }
        }
        Some((futures_util::stream::iter(out), state))
    })
    .flatten()
}

/// Anthropic's SSE framing of [`events`]. A broken upstream ends the stream with an
/// `error` event and no `message_stop`, so SDKs raise instead of returning a truncated
/// answer.
fn sse_events(
    chunks: aigw_core::ChunkStream,
    broken: Option<StreamBreak>,
    encoder: Encoder,
) -> impl Stream<Item = Result<Event, Infallible>> {
    events(chunks, broken, encoder).map(|outgoing| {
        let (name, data) = match outgoing {
            Outgoing::Event(named) => named,
            Outgoing::Broke(error) => {
                let status = ApiError(error.clone()).into_response().status();
                event(
                    "error",
                    json!({"type": "error", "error": {"type": error_type(status), "message": error.message()}}),
                )
            }
        };
        Ok(Event::default().event(name).data(data.to_string()))
    })
}

#[cfg(test)]
mod tests {

    use super::*;

    fn decode(body: Value) -> Result<ChatRequest, Error> {
        let wire: WireRequest = decode_json(body.to_string().as_bytes())?;
        wire.into_core(Purpose::Answer)
    }

    #[test]
    fn a_tool_loop_decodes_into_core_turns_in_order() {
        let request = decode(json!({
            "model": "claude", "max_tokens": 100,
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "tool_use", "id": "t1", "name": "get", "input": {"city": "Oslo"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "cold"},
                    {"type": "text", "text": "and so?"}
                ]}
            ],
            "tools": [{"name": "get", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
            "thinking": {"type": "enabled", "budget_tokens": 4096}
        }))
        .expect("decodes");
        let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::User
            ]
        );
        assert_eq!(request.messages[0].content[1], Part::CachePoint);
        let call = &request.messages[2].tool_calls[0];
        assert_eq!((call.id.as_str(), call.name.as_str()), ("t1", "get"));
        assert_eq!(call.arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(
            request.messages[2]
                .reasoning
                .as_ref()
                .and_then(|r| r.signature.as_deref()),
            Some("sig")
        );
        assert_eq!(request.messages[3].tool_call_id.as_deref(), Some("t1"));
        assert_eq!(request.messages[3].text(), "cold");
        assert_eq!(request.tool_choice, Some(ToolChoice::Required));
        assert_eq!(request.reasoning_effort, Some(ReasoningEffort::Medium));
    }

    #[test]
    fn what_the_core_cannot_carry_is_refused_by_field() {
        let base = json!({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        let mut top_k = base.clone();
        top_k["top_k"] = json!(3);
        let request = decode(top_k).expect("top_k is carried");
        assert_eq!(
            request.model_fields.as_deref().and_then(|f| f.get("top_k")),
            Some(&json!(3))
        );
        let mut no_max = base;
        no_max
            .as_object_mut()
            .map(|o| o.remove("max_tokens"))
            .expect("object");
        let error = decode(no_max).expect_err("max_tokens");
        assert!(error.message().starts_with("max_tokens:"), "{error}");
    }

    fn chunk() -> ChatChunk {
        aigw_core::ChunkSequence::new(Arc::from("chatcmpl-1"), 0, Arc::from("m")).chunk()
    }

    #[tokio::test]
    async fn a_stream_opens_and_closes_one_block_per_kind_of_content() {
        let chunks: aigw_core::ChunkStream = Box::pin(futures_util::stream::iter([
            Ok(ChatChunk {
                content: Some("a".into()),
                ..chunk()
            }),
            Ok(ChatChunk {
                content: Some("b".into()),
                ..chunk()
            }),
            Ok(ChatChunk {
                tool_call: Some(aigw_core::ToolCallDelta {
                    index: 0,
                    id: Some("t".into()),
                    name: Some("f".into()),
                    arguments: String::new(),
                }),
                ..chunk()
            }),
            Ok(ChatChunk {
                tool_call: Some(aigw_core::ToolCallDelta {
                    index: 0,
                    id: None,
                    name: None,
                    arguments: "{}".into(),
                }),
                finish_reason: Some(FinishReason::ToolCalls),
                ..chunk()
            }),
        ]));
        let mut encoder = Encoder::default();
        let mut out = Vec::new();
        let mut chunks = chunks;
        while let Some(Ok(c)) = chunks.next().await {
            encoder.chunk(&c, &mut out);
        }
        encoder.end(&mut out);
        let shown: Vec<String> = out
            .iter()
            .map(
                |(name, data)| match (&data["index"], &data["delta"]["type"]) {
                    (Value::Number(i), Value::String(delta)) => format!("{name}[{i}] {delta}"),
                    (Value::Number(i), _) => format!("{name}[{i}]"),
                    _ => (*name).to_owned(),
                },
            )
            .collect();
        assert_eq!(
            shown,
            [
                "message_start",
                "ping",
                "content_block_start[0]",
                "content_block_delta[0] text_delta",
                "content_block_delta[0] text_delta",
                "content_block_stop[0]",
                "content_block_start[1]",
                "content_block_delta[1] input_json_delta",
                "content_block_stop[1]",
                "message_delta",
                "message_stop",
            ]
        );
        assert_eq!(out[6].1["content_block"]["id"], "t");
        assert_eq!(out[9].1["delta"]["stop_reason"], "tool_use");
    }
}
