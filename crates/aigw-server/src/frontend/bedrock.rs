//! The front end in Bedrock Runtime's native format (Kong's `llm_format: bedrock`), what
//! the AWS SDKs speak with only `endpoint_url` changed: one decoder (a Converse request into
//! a core `ChatRequest`) and one encoder (the Converse answer). InvokeModel with Anthropic
//! Claude's body borrows the Anthropic front end's decoder and encoder and frames them as
//! Bedrock does; CountTokens reads either input. Admission, the stack and everything after
//! are the OpenAI front end's. A request SigV4-signed with a consumer's
//! AWS key pair is verified here (`sigv4.rs`) before admission, which then lets it in as
//! that consumer.

use std::sync::Arc;
use std::time::SystemTime;

use aigw_config::LlmFormat;
use aigw_core::{
    ChatCompletion, ChatReply, ChatRequest, Error, ErrorKind, FinishReason, Message, Part,
    ReplyBody, Role, Tool, ToolCall, ToolChoice,
};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{
    ANSWERING, Refused, answer, decode_json, error_in_shape, read_json_for, read_route_json,
    require_post,
};
use crate::admission::{Admission, Caller, Entry, RouteKey};
use crate::recent::StreamBreak;
use crate::sigv4;
use crate::{ApiError, SharedRoutes};

/// The header Bedrock names its error's type in; the SDKs pick their exception by it.
pub(crate) const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// What a path under the route asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    /// InvokeModel, with Anthropic Claude's Messages body.
    Invoke,
    /// InvokeModelWithResponseStream, likewise.
    InvokeStream,
    /// CountTokens, of a Converse input or of Claude's InvokeModel body.
    CountTokens,
}

impl Operation {
    fn streams(self) -> bool {
        matches!(self, Operation::ConverseStream | Operation::InvokeStream)
    }
}

/// The operation and the (percent-decoded) model id of `…/model/{modelId}/{operation}`.
fn operation(path: &str) -> Option<(Operation, String)> {
    let path = path.trim_end_matches('/');
    let (rest, op) = [
        ("/converse-stream", Operation::ConverseStream),
        ("/converse", Operation::Converse),
        ("/invoke-with-response-stream", Operation::InvokeStream),
        ("/invoke", Operation::Invoke),
        ("/count-tokens", Operation::CountTokens),
    ]
    .into_iter()
    .find_map(|(suffix, op)| path.strip_suffix(suffix).map(|rest| (rest, op)))?;
    let at = rest.rfind("/model/")?;
    let id = &rest[at + "/model/".len()..];
    if id.is_empty() || id.contains('/') {
        return None;
    }
    let id = percent_encoding::percent_decode_str(id)
        .decode_utf8()
        .ok()?
        .into_owned();
    Some((op, id))
}

/// A request whose SigV4 signature was verified with a consumer's key pair.
pub(super) struct Signed {
    /// The consumer whose pair signed it.
    pub(super) consumer: Arc<str>,
    /// The body the signature covers, read under the route's limit.
    pub(super) body: Bytes,
}

/// The request's signer, when it is SigV4-signed with a key pair a consumer holds on the
/// Bedrock route `key` names and key-auth protects; the body is read to check the
/// signature. `None` leaves the request to key-auth as any other: no such route, no
/// signature, or an access key id no consumer holds (a client with its own AWS
/// credentials and a key header).
pub(super) async fn signed(
    admission: &Admission,
    key: RouteKey<'_>,
    parts: &http::request::Parts,
    body: &mut Option<Body>,
) -> Result<Option<Signed>, Refused> {
    let Some(value) = sigv4::claimed(&parts.headers) else {
        return Ok(None);
    };
    let Some(route) = admission.named(key) else {
        return Ok(None);
    };
    let pairs = route.key_auth.as_ref().filter(|auth| auth.has_aws_pairs());
    let Some(pairs) = pairs.filter(|_| route.llm_format == LlmFormat::Bedrock) else {
        return Ok(None);
    };
    // As admission names it, so a refused signature still carries its route in logs.
    aigw_telemetry::record_route(&route.name);
    let signature = sigv4::Signature::parse(value)?;
    let Some(pair) = pairs.aws_pair(signature.access_key_id) else {
        return Ok(None);
    };
    require_post(&parts.method, "converse")?;
    let body = read_json_for(admission, &route, &parts.headers, body).await?;
    let request = sigv4::Signed {
        method: parts.method.as_str(),
        uri: &parts.uri,
        headers: &parts.headers,
        body: &body,
    };
    sigv4::verify(&signature, &pair.secret, request, SystemTime::now())?;
    Ok(Some(Signed {
        consumer: pair.consumer.clone(),
        body,
    }))
}

/// One request to a Bedrock-format route, already admitted by path and key; its body is
/// still to be read, or was read to verify its signature.
pub(super) async fn converse(
    routes: &SharedRoutes,
    admission: &Admission,
    caller: Caller<'_>,
    parts: &http::request::Parts,
    (body, read): (&mut Option<Body>, Option<Bytes>),
    entry: Entry,
) -> Result<Response, Refused> {
    let path = crate::router::normalize(parts.uri.path());
    let Some((op, model_id)) = operation(&path) else {
        return Err(Error::new(
            ErrorKind::RouteNotFound,
            format!(
                "this route speaks Bedrock Runtime's API; POST to <route path>/model/{{modelId}}/converse (or converse-stream, invoke, invoke-with-response-stream), not {path}"
            ),
        )
        .into());
    };
    require_post(&parts.method, "converse")?;
    let body = match read {
        Some(read) => read,
        None => read_route_json(admission, &entry, &parts.headers, body).await?,
    };
    let started = std::time::Instant::now();
    let route = entry.route.clone();
    if op == Operation::CountTokens {
        let request = count_tokens_request(&body, model_id)?;
        let input_tokens = Admission::count_tokens(&entry, request, body.len()).await?;
        return Ok(axum::Json(json!({ "inputTokens": input_tokens })).into_response());
    }
    if matches!(op, Operation::Invoke | Operation::InvokeStream) {
        let (request, stops) = super::anthropic::decode_invoke(&body, model_id, op.streams())?;
        let admitted = Admission::call(&entry, caller, ANSWERING, request, body.len()).await?;
        return Ok(answer(routes, route, admitted, move |reply, broken| {
            encode_invoke_reply(reply, broken, stops, started)
        }));
    }
    let wire: WireRequest = decode_json(&body)?;
    let mut request = wire.into_core(model_id)?;
    request.stream = op.streams();
    let admitted = Admission::call(&entry, caller, ANSWERING, request, body.len()).await?;
    Ok(answer(routes, route, admitted, move |reply, broken| {
        encode_reply(reply, broken, started)
    }))
}

/// CountTokens' input: `{"input": {"converse": <Converse request>}}` or `{"input":
/// {"invokeModel": {"body": <base64 of Claude's InvokeModel body>}}}`.
fn count_tokens_request(body: &[u8], model_id: String) -> Result<ChatRequest, Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CountTokens {
        input: CountInput,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    enum CountInput {
        Converse(Box<WireRequest>),
        InvokeModel(InvokeBody),
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct InvokeBody {
        body: String,
    }
    let count: CountTokens = decode_json(body)?;
    match count.input {
        CountInput::Converse(wire) => wire.into_core(model_id),
        CountInput::InvokeModel(invoke) => {
            let body = base64::engine::general_purpose::STANDARD
                .decode(invoke.body.as_bytes())
                .map_err(|_| invalid("input.invokeModel.body: not base64".to_owned()))?;
            Ok(super::anthropic::decode_invoke(&body, model_id, false)?.0)
        }
    }
}

/// An error as Bedrock sends it: the status, `x-amzn-ErrorType` and `{"message": …}`, with
/// the headers (`Retry-After`) of the OpenAI answer.
pub(super) fn error_response(error: Error) -> Response {
    let mut response = error_in_shape(error, |_, message| json!({ "message": message }));
    let error_type = HeaderValue::from_static(error_type(response.status()));
    let headers = response.headers_mut();
    headers.remove(header::WWW_AUTHENTICATE);
    // A signature refusal names its own exception (`sigv4.rs`); a status names the rest.
    if !headers.contains_key(ERROR_TYPE_HEADER) {
        headers.insert(ERROR_TYPE_HEADER, error_type);
    }
    response
}

/// Bedrock's exception name for a status.
fn error_type(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "UnrecognizedClientException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 | 504 => "ModelTimeoutException",
        429 => "ThrottlingException",
        400..=499 => "ValidationException",
        503 => "ServiceUnavailableException",
        502 => "ModelErrorException",
        _ => "InternalServerException",
    }
}

// ---------------------------------------------------------------------------------------
// The decoder.

/// A Converse request. Fields the core cannot carry are refused by name, and so are
/// fields aigw does not know (as Bedrock refuses them), rather than dropped unseen.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireRequest {
    messages: Vec<WireMessage>,
    system: Option<Vec<Value>>,
    inference_config: Option<WireInference>,
    tool_config: Option<WireToolConfig>,
    guardrail_config: Option<WireGuardrail>,
    additional_model_request_fields: Option<Value>,
    additional_model_response_field_paths: Option<Value>,
    prompt_variables: Option<Value>,
    request_metadata: Option<Value>,
    performance_config: Option<Value>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    content: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireInference {
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    #[serde(default)]
    stop_sequences: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireToolConfig {
    tools: Vec<Value>,
    tool_choice: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireGuardrail {
    guardrail_identifier: String,
    guardrail_version: String,
    trace: Option<String>,
    stream_processing_mode: Option<String>,
}

fn invalid(message: String) -> Error {
    Error::invalid_request(message)
}

impl WireRequest {
    fn into_core(self, model_id: String) -> Result<ChatRequest, Error> {
        let model_fields = match self.additional_model_request_fields {
            None | Some(Value::Null) => None,
            Some(Value::Object(fields)) => Some(std::sync::Arc::new(fields)),
            Some(_) => {
                return Err(invalid(
                    "additionalModelRequestFields: must be a JSON object".to_owned(),
                ));
            }
        };
        for (name, present) in [
            (
                "additionalModelResponseFieldPaths",
                self.additional_model_response_field_paths.is_some(),
            ),
            ("promptVariables", self.prompt_variables.is_some()),
            ("requestMetadata", self.request_metadata.is_some()),
            ("performanceConfig", self.performance_config.is_some()),
        ] {
            if present {
                return Err(invalid(format!(
                    "{name}: not supported by aigw yet (its core request cannot carry it); leave it out"
                )));
            }
        }
        if self.messages.is_empty() {
            return Err(invalid("messages must hold at least one message".into()));
        }
        let mut messages = Vec::with_capacity(self.messages.len() + 1);
        if let Some(system) = self.system {
            let mut message = Message::new(Role::System, "");
            message.content.clear();
            for (i, block) in system.iter().enumerate() {
                message
                    .content
                    .push(text_or_cache(block, &format!("system[{i}]"))?);
            }
            messages.push(message);
        }
        for (index, wire) in self.messages.into_iter().enumerate() {
            decode_message(index, wire, &mut messages)?;
        }
        let inference = self.inference_config.unwrap_or(WireInference {
            max_tokens: None,
            temperature: None,
            top_p: None,
            stop_sequences: Vec::new(),
        });
        let (tools, tool_choice) = match self.tool_config {
            None => (Vec::new(), None),
            Some(config) => decode_tools(config)?,
        };
        Ok(ChatRequest {
            model: Some(model_id),
            messages: messages.into(),
            max_tokens: inference.max_tokens,
            temperature: inference.temperature,
            top_p: inference.top_p,
            stop: inference.stop_sequences.into(),
            stream: false,
            tools: tools.into(),
            tool_choice,
            guardrail: self.guardrail_config.map(|g| {
                std::sync::Arc::new(aigw_core::Guardrail {
                    identifier: g.guardrail_identifier,
                    version: g.guardrail_version,
                    trace: g.trace,
                    stream_processing_mode: g.stream_processing_mode,
                })
            }),
            model_fields,
            ..ChatRequest::default()
        })
    }
}

/// A `{"text": …}` or `{"cachePoint": …}` block.
fn text_or_cache(block: &Value, at: &str) -> Result<Part, Error> {
    if let Some(text) = block.get("text").and_then(Value::as_str) {
        return Ok(Part::Text(text.to_owned()));
    }
    if block.get("cachePoint").is_some() {
        return Ok(Part::CachePoint);
    }
    Err(invalid(format!(
        "{at}: only text and cachePoint blocks are supported here"
    )))
}

/// The single key of a content block, which names its kind.
fn block_kind(block: &Value) -> Option<&str> {
    let object = block.as_object()?;
    let mut keys = object.keys();
    let key = keys.next()?;
    keys.next().is_none().then_some(key.as_str())
}

/// One Converse message into core messages: a user turn's `toolResult` blocks become
/// tool turns of their own (the core's shape, which drivers regroup), in order.
fn decode_message(index: usize, wire: WireMessage, out: &mut Vec<Message>) -> Result<(), Error> {
    let at = format!("messages[{index}]");
    let role = match wire.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(invalid(format!(
                "{at}.role: unknown role {other:?}, expected user or assistant"
            )));
        }
    };
    let mut message = Message::new(role, "");
    message.content.clear();
    for (b, block) in wire.content.iter().enumerate() {
        let at = format!("{at}.content[{b}]");
        match (block_kind(block), role) {
            (Some("text" | "cachePoint"), _) => message.content.push(text_or_cache(block, &at)?),
            (Some("image"), _) => message.content.push(image(&block["image"], &at)?),
            (Some("document"), _) => message.content.push(document(&block["document"], &at)?),
            (Some("reasoningContent"), Role::Assistant) => {
                let Some(reasoning) = block["reasoningContent"].get("reasoningText") else {
                    return Err(invalid(format!(
                        "{at}.reasoningContent: only reasoningText is supported (not redactedContent)"
                    )));
                };
                message.reasoning = Some(aigw_core::Reasoning {
                    text: reasoning
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    signature: reasoning
                        .get("signature")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                });
            }
            (Some("toolUse"), Role::Assistant) => {
                let tool_use = &block["toolUse"];
                let (Some(id), Some(name)) = (
                    tool_use.get("toolUseId").and_then(Value::as_str),
                    tool_use.get("name").and_then(Value::as_str),
                ) else {
                    return Err(invalid(format!("{at}.toolUse: needs toolUseId and name")));
                };
                let input = tool_use.get("input").cloned().unwrap_or_else(|| json!({}));
                message.tool_calls.push(ToolCall {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    arguments: input.to_string(),
                });
            }
            (Some("toolResult"), Role::User) => {
                let result = &block["toolResult"];
                let Some(id) = result.get("toolUseId").and_then(Value::as_str) else {
                    return Err(invalid(format!(
                        "{at}.toolResult.toolUseId: field required"
                    )));
                };
                // What the user turn said before the result keeps its place.
                if !message.content.is_empty() {
                    out.push(std::mem::replace(&mut message, Message::new(role, "")));
                    message.content.clear();
                }
                let mut tool = Message::new(Role::Tool, "");
                tool.tool_call_id = Some(id.to_owned());
                tool.tool_failed = match result.get("status") {
                    None => false,
                    Some(status) => match status.as_str() {
                        Some("success") => false,
                        Some("error") => true,
                        _ => {
                            return Err(invalid(format!(
                                "{at}.toolResult.status: must be \"success\" or \"error\""
                            )));
                        }
                    },
                };
                tool.content.clear();
                let content = result.get("content").and_then(Value::as_array);
                for (c, part) in content.into_iter().flatten().enumerate() {
                    let at = format!("{at}.toolResult.content[{c}]");
                    if let Some(text) = part.get("text").and_then(Value::as_str) {
                        tool.content.push(Part::Text(text.to_owned()));
                    } else if let Some(value) = part.get("json") {
                        tool.content.push(Part::Text(value.to_string()));
                    } else {
                        return Err(invalid(format!(
                            "{at}: only text and json tool results are supported"
                        )));
                    }
                }
                out.push(tool);
            }
            (Some(kind), _) => {
                return Err(invalid(format!(
                    "{at}: a {kind:?} block is not supported here by aigw yet"
                )));
            }
            (None, _) => {
                return Err(invalid(format!(
                    "{at}: a content block holds exactly one member"
                )));
            }
        }
    }
    if !message.content.is_empty() || !message.tool_calls.is_empty() || message.reasoning.is_some()
    {
        out.push(message);
    }
    Ok(())
}

/// The bytes of a `{"source": {"bytes": <base64>}}` (what the SDKs send; S3 locations
/// are the target account's, which the gateway cannot vouch for).
fn source_bytes(block: &Value, at: &str) -> Result<Vec<u8>, Error> {
    let Some(data) = block
        .get("source")
        .and_then(|s| s.get("bytes"))
        .and_then(Value::as_str)
    else {
        return Err(invalid(format!(
            "{at}.source.bytes: field required (s3Location sources are not supported)"
        )));
    };
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| invalid(format!("{at}.source.bytes: not base64: {e}")))
}

fn image(block: &Value, at: &str) -> Result<Part, Error> {
    let at = format!("{at}.image");
    let format = block
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let format =
        aigw_core::ImageFormat::from_mime(&format!("image/{format}")).ok_or_else(|| {
            invalid(format!(
                "{at}.format: {format:?} is not png, jpeg, gif or webp"
            ))
        })?;
    Ok(Part::Image(aigw_core::Image {
        format,
        bytes: source_bytes(block, &at)?.into(),
    }))
}

fn document(block: &Value, at: &str) -> Result<Part, Error> {
    let at = format!("{at}.document");
    let format = block
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if format != "pdf" {
        return Err(invalid(format!(
            "{at}.format: only pdf documents are supported, not {format:?}"
        )));
    }
    Ok(Part::Document(aigw_core::Document {
        name: block
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("document")
            .to_owned(),
        bytes: source_bytes(block, &at)?.into(),
    }))
}

fn decode_tools(config: WireToolConfig) -> Result<(Vec<Tool>, Option<ToolChoice>), Error> {
    let mut tools: Vec<Tool> = Vec::with_capacity(config.tools.len());
    for (i, tool) in config.tools.iter().enumerate() {
        let at = format!("toolConfig.tools[{i}]");
        if tool.get("cachePoint").is_some() {
            match tools.last_mut() {
                Some(last) => last.cache_point = true,
                None => {
                    return Err(invalid(format!(
                        "{at}: a cachePoint needs a tool before it"
                    )));
                }
            }
            continue;
        }
        let Some(spec) = tool.get("toolSpec") else {
            return Err(invalid(format!(
                "{at}: only toolSpec and cachePoint are supported"
            )));
        };
        let Some(name) = spec.get("name").and_then(Value::as_str) else {
            return Err(invalid(format!("{at}.toolSpec.name: field required")));
        };
        let Some(schema) = spec.get("inputSchema").and_then(|s| s.get("json")) else {
            return Err(invalid(format!(
                "{at}.toolSpec.inputSchema.json: field required"
            )));
        };
        tools.push(Tool {
            name: name.to_owned(),
            description: spec
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: schema.clone(),
            cache_point: false,
        });
    }
    let choice = match &config.tool_choice {
        None => None,
        Some(choice) => Some(match block_kind(choice) {
            Some("auto") => ToolChoice::Auto,
            Some("any") => ToolChoice::Required,
            Some("tool") => {
                let name = choice["tool"].get("name").and_then(Value::as_str);
                ToolChoice::Function(
                    name.ok_or_else(|| {
                        invalid("toolConfig.toolChoice.tool.name: field required".into())
                    })?
                    .to_owned(),
                )
            }
            _ => {
                return Err(invalid(
                    "toolConfig.toolChoice: expected one of auto, any or tool".into(),
                ));
            }
        }),
    };
    Ok((tools, choice))
}

// ---------------------------------------------------------------------------------------
// The encoder.

fn stop_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "end_turn",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "content_filtered",
        FinishReason::GuardrailIntervened => "guardrail_intervened",
    }
}

/// A tool call's arguments as the `input` document the SDKs expect.
fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

/// Bedrock's usage: `inputTokens` leaves the cached tokens out (the core counts them in),
/// `totalTokens` counts everything, and the cache counts appear only when there are any.
fn usage_json(usage: aigw_core::Usage) -> Value {
    let cached = usage.cache_read_tokens + usage.cache_write_tokens;
    let mut json = json!({
        "inputTokens": usage.prompt_tokens.saturating_sub(cached),
        "outputTokens": usage.completion_tokens,
        "totalTokens": usage.prompt_tokens + usage.completion_tokens,
    });
    if cached > 0 {
        json["cacheReadInputTokens"] = usage.cache_read_tokens.into();
        json["cacheWriteInputTokens"] = usage.cache_write_tokens.into();
    }
    json
}

fn complete_json(answer: &ChatCompletion, latency_ms: u64) -> Value {
    let mut content = Vec::new();
    if let Some(reasoning) = &answer.reasoning {
        let mut text = json!({"text": reasoning.text});
        if let Some(signature) = &reasoning.signature {
            text["signature"] = json!(signature);
        }
        content.push(json!({"reasoningContent": {"reasoningText": text}}));
    }
    if !answer.content.is_empty() || answer.tool_calls.is_empty() {
        content.push(json!({"text": answer.content}));
    }
    for call in &answer.tool_calls {
        content.push(json!({"toolUse": {
            "toolUseId": call.id,
            "name": call.name,
            "input": tool_input(&call.arguments),
        }}));
    }
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason(answer.finish_reason),
        "usage": usage_json(answer.usage),
        "metrics": {"latencyMs": latency_ms},
    })
}

/// Milliseconds since `started`, saturating.
fn millis_since(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn encode_reply(reply: ChatReply, broken: StreamBreak, started: std::time::Instant) -> Response {
    match reply.body {
        ReplyBody::Complete(answer) => {
            axum::Json(complete_json(&answer, millis_since(started))).into_response()
        }
        ReplyBody::Stream(chunks) => {
            let mut response = Response::new(Body::from_stream(frames(chunks, broken, started)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
            response
        }
    }
}

/// The content block a stream has open.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Reasoning,
    /// A toolUse block, for the core's tool call of this index.
    Tool(u32),
}

/// An event before framing: its type and its JSON.
type Named = (&'static str, Value);

/// Turns core chunks into ConverseStream's events: it opens and closes content blocks as
/// the kind of what arrives changes, and keeps the end (stop reason, usage) for
/// `messageStop` and `metadata`.
struct Encoder {
    /// Whether `messageStart` went out.
    started_stream: bool,
    open: Option<Open>,
    /// The index of the open block, or of the next one.
    index: u32,
    stop: Option<FinishReason>,
    usage: aigw_core::Usage,
    /// When the gateway began the call: `metadata.metrics.latencyMs` counts from here.
    started: std::time::Instant,
}

impl Encoder {
    fn chunk(&mut self, chunk: &aigw_core::ChatChunk, out: &mut Vec<Named>) {
        if !self.started_stream {
            self.started_stream = true;
            out.push(("messageStart", json!({"role": "assistant"})));
        }
        if let Some(reasoning) = &chunk.reasoning {
            self.open_block(Open::Reasoning, out, None);
            if !reasoning.text.is_empty() {
                self.delta(out, json!({"reasoningContent": {"text": reasoning.text}}));
            }
            if let Some(signature) = &reasoning.signature {
                self.delta(out, json!({"reasoningContent": {"signature": signature}}));
            }
        }
        if let Some(text) = chunk.content.as_deref().filter(|t| !t.is_empty()) {
            self.open_block(Open::Text, out, None);
            self.delta(out, json!({"text": text}));
        }
        if let Some(call) = &chunk.tool_call {
            if self.open != Some(Open::Tool(call.index)) {
                let start = json!({"toolUse": {
                    "toolUseId": call.id.as_deref().unwrap_or_default(),
                    "name": call.name.as_deref().unwrap_or_default(),
                }});
                self.open_block(Open::Tool(call.index), out, Some(start));
            }
            if !call.arguments.is_empty() {
                self.delta(out, json!({"toolUse": {"input": call.arguments}}));
            }
        }
        if let Some(reason) = chunk.finish_reason {
            self.stop = Some(reason);
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage;
        }
    }

    /// Text and reasoning blocks start with their first delta; only a toolUse block has a
    /// `contentBlockStart`, as Bedrock sends them.
    fn open_block(&mut self, kind: Open, out: &mut Vec<Named>, start: Option<Value>) {
        if self.open == Some(kind) {
            return;
        }
        self.close_block(out);
        self.open = Some(kind);
        if let Some(start) = start {
            out.push((
                "contentBlockStart",
                json!({"contentBlockIndex": self.index, "start": start}),
            ));
        }
    }

    fn close_block(&mut self, out: &mut Vec<Named>) {
        if self.open.take().is_some() {
            out.push(("contentBlockStop", json!({"contentBlockIndex": self.index})));
            self.index += 1;
        }
    }

    fn delta(&self, out: &mut Vec<Named>, delta: Value) {
        out.push((
            "contentBlockDelta",
            json!({"contentBlockIndex": self.index, "delta": delta}),
        ));
    }

    fn end(&mut self, out: &mut Vec<Named>) {
        self.close_block(out);
        let stop = self.stop.unwrap_or(FinishReason::Stop);
        out.push(("messageStop", json!({"stopReason": stop_reason(stop)})));
        out.push((
            "metadata",
            json!({
                "usage": usage_json(self.usage),
                "metrics": {"latencyMs": millis_since(self.started)},
            }),
        ));
    }
}

// ---------------------------------------------------------------------------------------
// InvokeModel with Anthropic Claude's body: the Anthropic front end's decoder and encoder,
// framed as Bedrock frames them.

/// Bedrock's headers on a whole InvokeModel answer.
const INPUT_TOKENS_HEADER: &str = "x-amzn-bedrock-input-token-count";
const OUTPUT_TOKENS_HEADER: &str = "x-amzn-bedrock-output-token-count";
const LATENCY_HEADER: &str = "x-amzn-bedrock-invocation-latency";

fn encode_invoke_reply(
    reply: ChatReply,
    broken: StreamBreak,
    stops: super::anthropic::StopSequences,
    started: std::time::Instant,
) -> Response {
    match reply.body {
        ReplyBody::Complete(answer) => {
            let message = super::anthropic::complete_json(&answer, &stops);
            let mut response = axum::Json(message).into_response();
            let headers = response.headers_mut();
            for (name, value) in [
                (INPUT_TOKENS_HEADER, u64::from(answer.usage.prompt_tokens)),
                (
                    OUTPUT_TOKENS_HEADER,
                    u64::from(answer.usage.completion_tokens),
                ),
                (LATENCY_HEADER, millis_since(started)),
            ] {
                headers.insert(name, HeaderValue::from(value));
            }
            response
        }
        ReplyBody::Stream(chunks) => {
            let encoder = super::anthropic::Encoder::new(stops);
            let mut first_byte: Option<u64> = None;
            // Anthropic's message_delta carries the usage that message_stop's metrics repeat.
            let mut usage = Value::Null;
            use super::anthropic::Outgoing;
            // Bedrock's stream carries no pings.
            let events = super::anthropic::events(chunks, Some(broken), encoder)
                .filter(|o| std::future::ready(!matches!(o, Outgoing::Event(("ping", _)))));
            let frames = events.map(move |outgoing| {
                let frame = match outgoing {
                    Outgoing::Event((name, mut data)) => {
                        let latency = millis_since(started);
                        let first = *first_byte.get_or_insert(latency);
                        match name {
                            "message_delta" => usage = data["usage"].clone(),
                            "message_stop" => {
                                data["amazon-bedrock-invocationMetrics"] = json!({
                                    "inputTokenCount": usage["input_tokens"],
                                    "outputTokenCount": usage["output_tokens"],
                                    "invocationLatency": latency,
                                    "firstByteLatency": first,
                                });
                            }
                            _ => {}
                        }
                        chunk_frame(&data)
                    }
                    Outgoing::Broke(error) => exception_frame(&error),
                };
                Ok::<_, std::convert::Infallible>(frame)
            });
            let mut response = Response::new(Body::from_stream(frames));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
            response
        }
    }
}

/// One event of InvokeModelWithResponseStream: a `chunk` whose `bytes` are the model's
/// own event (here Anthropic's), base64-encoded as the SDKs expect.
fn chunk_frame(event: &Value) -> Bytes {
    let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    event_frame("chunk", json!({ "bytes": bytes }))
}

/// The frames of one event, or none when it cannot be encoded (only beyond the format's
/// 16 MB limits): a frame is left out rather than sent broken.
fn event_frame(event_type: &'static str, payload: Value) -> Bytes {
    let mut buf = Vec::new();
    if let Err(error) =
        aigw_eventstream::write_event(&mut buf, event_type, Bytes::from(payload.to_string()))
    {
        tracing::warn!(%error, "an event-stream frame could not be encoded");
        buf.clear();
    }
    Bytes::from(buf)
}

/// The stream's exception frame for an error, named as the SDKs' event-stream
/// exceptions are (`throttlingException`, …).
fn exception_frame(error: &Error) -> Bytes {
    let status = ApiError(error.clone()).into_response().status();
    let exception = match error_type(status) {
        "ThrottlingException" => "throttlingException",
        "ValidationException" => "validationException",
        "ServiceUnavailableException" => "serviceUnavailableException",
        "InternalServerException" => "internalServerException",
        _ => "modelStreamErrorException",
    };
    let mut buf = Vec::new();
    let payload = Bytes::from(json!({"message": error.message()}).to_string());
    if let Err(error) = aigw_eventstream::write_exception(&mut buf, exception, payload) {
        tracing::warn!(%error, "an event-stream exception frame could not be encoded");
        buf.clear();
    }
    Bytes::from(buf)
}

/// ConverseStream's frames, pulled from upstream only as fast as the client reads. A
/// broken upstream ends the stream with an exception frame and no `messageStop`, so SDKs
/// raise instead of returning a truncated answer.
fn frames(
    chunks: aigw_core::ChunkStream,
    broken: StreamBreak,
    started: std::time::Instant,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    struct State {
        chunks: aigw_core::ChunkStream,
        broken: StreamBreak,
        encoder: Encoder,
        done: bool,
    }
    let state = State {
        chunks,
        broken,
        encoder: Encoder {
            started,
            started_stream: false,
            open: None,
            index: 0,
            stop: None,
            usage: aigw_core::Usage::default(),
        },
        done: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        let mut out = Vec::new();
        let mut body = Vec::new();
        while out.is_empty() && body.is_empty() {
            match state.chunks.next().await {
                Some(Ok(chunk)) => state.encoder.chunk(&chunk, &mut out),
                Some(Err(error)) => {
                    tracing::warn!(kind = %error.kind(), %error, "upstream stream broke off; ending the client's stream with an exception frame");
                    state.broken.record(&error);
                    for (name, data) in out.drain(..) {
                        body.extend_from_slice(&event_frame(name, data));
                    }
                    body.extend_from_slice(&exception_frame(&error));
                    state.done = true;
                }
                None => {
                    state.encoder.end(&mut out);
                    state.done = true;
                }
            }
        }
        for (name, data) in out {
            body.extend_from_slice(&event_frame(name, data));
        }
        Some((Ok(Bytes::from(body)), state))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_id_is_read_from_the_path_percent_decoded() {
        assert_eq!(
            operation("/bedrock/model/us.anthropic.claude%3A0/converse"),
            Some((Operation::Converse, "us.anthropic.claude:0".to_owned()))
        );
        assert_eq!(
            operation("/model/m1/converse-stream"),
            Some((Operation::ConverseStream, "m1".to_owned()))
        );
        assert_eq!(operation("/bedrock/model//converse"), None);
        assert_eq!(operation("/bedrock/v1/messages"), None);
    }

    #[test]
    fn usage_counts_cached_tokens_apart_as_bedrock_does() {
        let usage = aigw_core::Usage {
            prompt_tokens: 110,
            completion_tokens: 7,
            total_tokens: 117,
            cache_read_tokens: 100,
            cache_write_tokens: 0,
        };
        assert_eq!(
            usage_json(usage),
            json!({"inputTokens": 10, "outputTokens": 7, "totalTokens": 117,
                   "cacheReadInputTokens": 100, "cacheWriteInputTokens": 0})
        );
    }

    fn decode(body: Value) -> Result<ChatRequest, Error> {
        let wire: WireRequest = serde_json::from_value(body).map_err(|e| invalid(e.to_string()))?;
        wire.into_core("m".to_owned())
    }

    #[test]
    fn every_block_kind_reaches_the_core_and_the_rest_is_refused_by_name() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG");
        let request = decode(json!({
            "system": [{"text": "be brief"}, {"cachePoint": {"type": "default"}}],
            "messages": [
                {"role": "user", "content": [
                    {"text": "look"},
                    {"image": {"format": "png", "source": {"bytes": png}}},
                    {"document": {"format": "pdf", "name": "a", "source": {"bytes": png}}},
                ]},
                {"role": "assistant", "content": [
                    {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "s"}}},
                    {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"x": 1}}},
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"ok": true}}]}},
                ]},
            ],
            "inferenceConfig": {"maxTokens": 9, "temperature": 0.5, "topP": 0.9, "stopSequences": ["x"]},
            "toolConfig": {"tools": [
                {"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}},
                {"cachePoint": {"type": "default"}},
            ], "toolChoice": {"tool": {"name": "f"}}},
            "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.model.as_deref(), Some("m"));
        assert_eq!(request.messages.len(), 4);
        assert_eq!(request.messages[0].content[1], Part::CachePoint);
        assert!(matches!(request.messages[1].content[1], Part::Image(_)));
        assert!(matches!(request.messages[1].content[2], Part::Document(_)));
        let reasoning = request.messages[2]
            .reasoning
            .as_ref()
            .map(|r| r.signature.as_deref());
        assert_eq!(reasoning, Some(Some("s")));
        assert_eq!(request.messages[2].tool_calls[0].arguments, r#"{"x":1}"#);
        assert_eq!(request.messages[3].tool_call_id.as_deref(), Some("t1"));
        assert_eq!((request.max_tokens, request.top_p), (Some(9), Some(0.9)));
        assert_eq!(&*request.stop, ["x".to_owned()]);
        assert!(request.tools[0].cache_point);
        assert_eq!(request.tool_choice, Some(ToolChoice::Function("f".into())));
        assert_eq!(
            request.guardrail.as_ref().map(|g| g.version.as_str()),
            Some("1")
        );

        let refused = |body: Value| {
            decode(body)
                .map(|_| ())
                .expect_err("refused")
                .message()
                .to_owned()
        };
        let hi = json!([{"role": "user", "content": [{"text": "hi"}]}]);
        let message = refused(json!({"messages": hi, "additionalModelRequestFields": [1]}));
        assert!(
            message.starts_with("additionalModelRequestFields:"),
            "{message}"
        );
        let message = refused(json!({"messages": hi, "requestMetadata": {"k": "v"}}));
        assert!(message.starts_with("requestMetadata:"), "{message}");
        let message = refused(json!({"messages": hi, "serviceTier": {"type": "flex"}}));
        assert!(message.contains("unknown field `serviceTier`"), "{message}");
        let message = refused(json!({"messages": [{"role": "user", "content": [{"video": {}}]}]}));
        assert!(
            message.starts_with("messages[0].content[0]: a \"video\" block"),
            "{message}"
        );
    }
}
