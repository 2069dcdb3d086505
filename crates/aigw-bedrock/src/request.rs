//! OpenAI-shaped [`ChatRequest`] → Converse input.
//!
//! Pure and synchronous so it can be unit-tested without a client; the same parts feed
//! both Converse and ConverseStream. docs/chat-api.md describes the mapping field by field.

use aigw_core::{
    ChatRequest, Error, ErrorKind, ImageFormat, Message as ChatMessage, Part, ReasoningEffort,
    ResponseFormat, Role, ToolChoice as ChatToolChoice,
};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    AnyToolChoice, CachePointBlock, CachePointType, ContentBlock, ConversationRole, DocumentBlock,
    DocumentFormat, DocumentSource, GuardrailConfiguration, GuardrailStreamConfiguration,
    GuardrailStreamProcessingMode, GuardrailTrace, ImageBlock, ImageFormat as BedrockImageFormat,
    ImageSource, InferenceConfiguration, Message, ReasoningContentBlock, ReasoningTextBlock,
    SpecificToolChoice, SystemContentBlock, Tool, ToolChoice, ToolConfiguration, ToolInputSchema,
    ToolResultBlock, ToolResultContentBlock, ToolResultStatus, ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::Document;

use crate::json::to_document;

/// The tool a `response_format` becomes: the model is made to call it, and its input is
/// the answer's content.
pub(crate) const RESPONSE_FORMAT_TOOL: &str = "json_response";

/// The pieces of a Converse (or ConverseStream) call that come from the client's request.
#[derive(Debug, Clone, PartialEq)]
pub struct ConverseParts {
    /// Alternating user/assistant turns, starting with a user turn.
    pub messages: Vec<Message>,
    /// System prompts, hoisted out of the conversation because Converse takes them apart.
    pub system: Option<Vec<SystemContentBlock>>,
    /// Sampling and length settings; `None` when the request sets none.
    pub inference: Option<InferenceConfiguration>,
    /// Tools and the tool choice; `None` without tools.
    pub tools: Option<ToolConfiguration>,
    /// Model-specific fields (the thinking budget of a reasoning model).
    pub additional: Option<Document>,
    /// The guardrail to apply, as Converse takes it.
    pub guardrail: Option<GuardrailConfiguration>,
    /// The same guardrail, as ConverseStream takes it.
    pub stream_guardrail: Option<GuardrailStreamConfiguration>,
    /// What the answer must be mapped back with.
    pub answer: AnswerShape,
}

/// What the answer mapping needs to know about the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerShape {
    /// The answer's content is the input of the [`RESPONSE_FORMAT_TOOL`] call.
    pub json_via_tool: bool,
    /// Only the first tool call is kept (`parallel_tool_calls: false`, which Bedrock has
    /// no switch for).
    pub single_tool_call: bool,
}

/// Translates a chat request for `model_id`, whose unset settings the driver shell already
/// filled with the target's defaults.
pub fn to_converse(request: &ChatRequest, model_id: &str) -> Result<ConverseParts, Error> {
    let json_format = request.response_format.as_deref();
    // Bedrock refuses a conversation with toolUse/toolResult blocks but no toolConfig; when
    // the client sends no tools (or `tool_choice: none`, which Converse cannot express)
    // those turns are rendered as text instead, so the model sees what happened and cannot
    // call a tool.
    let tools_off =
        request.tools.is_empty() || matches!(request.tool_choice, Some(ChatToolChoice::None));
    let tool_blocks = !tools_off || json_format.is_some();

    let mut system = Vec::new();
    // Bedrock requires strict user/assistant alternation, while OpenAI clients freely send
    // several turns of one role in a row (and tool results as turns of their own); those
    // become one message with several blocks.
    let mut turns: Vec<(ConversationRole, Vec<ContentBlock>)> = Vec::new();
    // The ids of the tool calls of the latest assistant turn, which tool results answer.
    let mut open_calls: Vec<&str> = Vec::new();
    for (index, message) in request.messages.iter().enumerate() {
        let role = match message.role {
            Role::System => {
                system.extend(system_blocks(index, message)?);
                continue;
            }
            Role::User => ConversationRole::User,
            Role::Assistant => ConversationRole::Assistant,
            Role::Tool => ConversationRole::User,
        };
        let blocks = content_blocks(index, message, tool_blocks)?;
        if tool_blocks {
            answered_calls(index, message, &turns, &mut open_calls)?;
        }
        match turns.last_mut() {
            Some((last_role, last)) if *last_role == role => last.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }

    match turns.first() {
        None => {
            return Err(Error::invalid_request(
                "the conversation needs at least one user message",
            ));
        }
        Some((ConversationRole::User, _)) => {}
        Some(_) => {
            return Err(Error::invalid_request(
                "bedrock requires the conversation to start with a user message \
                 (after any system messages), but it starts with an assistant message",
            ));
        }
    }

    unanswered_calls(&turns)?;
    let messages = turns
        .into_iter()
        .map(|(role, content)| {
            Message::builder()
                .role(role)
                .set_content(Some(content))
                .build()
                .map_err(internal)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let (mut inference, thinking) = reasoning(request, model_id)?;
    let additional = additional_fields(request, thinking);
    if inference.is_none() {
        inference = inference_config(request, None)?;
    }
    let tools = match json_format {
        Some(format) => Some(response_format_tools(request, format)?),
        None if tools_off => None,
        None => Some(tool_config(request)?),
    };
    let (guardrail, stream_guardrail) = guardrail(request);
    Ok(ConverseParts {
        messages,
        system: (!system.is_empty()).then_some(system),
        inference,
        tools,
        additional,
        guardrail,
        stream_guardrail,
        answer: AnswerShape {
            json_via_tool: json_format.is_some(),
            single_tool_call: request.parallel_tool_calls == Some(false),
        },
    })
}

/// Keeps `open_calls` as the calls of the latest assistant turn, and refuses a tool result
/// that answers none of them: Bedrock requires each toolResult to answer a toolUse of the
/// assistant turn just before.
fn answered_calls<'m>(
    index: usize,
    message: &'m ChatMessage,
    turns: &[(ConversationRole, Vec<ContentBlock>)],
    open_calls: &mut Vec<&'m str>,
) -> Result<(), Error> {
    match message.role {
        Role::Assistant => {
            let continues = turns
                .last()
                .is_some_and(|(role, _)| *role == ConversationRole::Assistant);
            if !continues {
                open_calls.clear();
            }
            open_calls.extend(message.tool_calls.iter().map(|c| c.id.as_str()));
        }
        Role::Tool => {
            let id = message.tool_call_id.as_deref().unwrap_or_default();
            if !open_calls.contains(&id) {
                return Err(Error::invalid_request(format!(
                    "messages[{index}].tool_call_id {id:?} does not answer a tool call of the \
                     assistant message before it"
                )));
            }
        }
        Role::User | Role::System => {}
    }
    Ok(())
}

/// Refuses an assistant turn whose tool calls the next turn does not all answer, as
/// Bedrock (Anthropic models) does.
fn unanswered_calls(turns: &[(ConversationRole, Vec<ContentBlock>)]) -> Result<(), Error> {
    for pair in turns.windows(2) {
        let [(_, asked), (_, next)] = pair else {
            continue;
        };
        for block in asked {
            let ContentBlock::ToolUse(call) = block else {
                continue;
            };
            let answered = next.iter().any(|b| {
                matches!(b, ContentBlock::ToolResult(r) if r.tool_use_id() == call.tool_use_id())
            });
            if !answered {
                return Err(Error::invalid_request(format!(
                    "the assistant's tool call {:?} is not answered by a tool message right \
                     after it; bedrock needs a result for every call",
                    call.tool_use_id()
                )));
            }
        }
    }
    Ok(())
}

fn internal(err: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("could not build a bedrock request: {err}"),
    )
}

fn cache_point() -> Result<CachePointBlock, Error> {
    CachePointBlock::builder()
        .r#type(CachePointType::Default)
        .build()
        .map_err(internal)
}

fn system_blocks(index: usize, message: &ChatMessage) -> Result<Vec<SystemContentBlock>, Error> {
    let mut blocks = Vec::new();
    for part in &message.content {
        match part {
            Part::Text(text) if text.trim().is_empty() => {}
            Part::Text(text) => blocks.push(SystemContentBlock::Text(text.clone())),
            // A cache point needs something before it to cache.
            Part::CachePoint if blocks.is_empty() => {}
            Part::CachePoint => blocks.push(SystemContentBlock::CachePoint(cache_point()?)),
            Part::Image(_) | Part::Document(_) => {
                return Err(Error::invalid_request(format!(
                    "messages[{index}]: a system message may hold only text"
                )));
            }
        }
    }
    if !blocks
        .iter()
        .any(|b| matches!(b, SystemContentBlock::Text(_)))
    {
        return Err(blank(index));
    }
    Ok(blocks)
}

fn blank(index: usize) -> Error {
    // Bedrock refuses blank text blocks with a ValidationException; saying so here names
    // the message and spares a round trip.
    Error::invalid_request(format!(
        "messages[{index}].content is empty; bedrock does not accept blank messages"
    ))
}

/// The blocks of one user, assistant or tool message. With `tool_blocks` false, tool calls
/// and results become text (see [`to_converse`]).
fn content_blocks(
    index: usize,
    message: &ChatMessage,
    tool_blocks: bool,
) -> Result<Vec<ContentBlock>, Error> {
    let mut blocks = Vec::new();
    if let Some(reasoning) = &message.reasoning {
        // Bedrock refuses reasoning without its signature; an unsigned one (from a model
        // that does not sign) is left out rather than failing the turn.
        if let Some(signature) = &reasoning.signature {
            let text = ReasoningTextBlock::builder()
                .text(&reasoning.text)
                .signature(signature)
                .build()
                .map_err(internal)?;
            blocks.push(ContentBlock::ReasoningContent(
                ReasoningContentBlock::ReasoningText(text),
            ));
        }
    }
    let mut parts = Vec::new();
    for part in &message.content {
        match part {
            Part::Text(text) if text.trim().is_empty() => {}
            Part::Text(text) => parts.push(ContentBlock::Text(text.clone())),
            Part::Image(image) => {
                let format = match image.format {
                    ImageFormat::Png => BedrockImageFormat::Png,
                    ImageFormat::Jpeg => BedrockImageFormat::Jpeg,
                    ImageFormat::Gif => BedrockImageFormat::Gif,
                    ImageFormat::Webp => BedrockImageFormat::Webp,
                };
                let block = ImageBlock::builder()
                    .format(format)
                    .source(ImageSource::Bytes(Blob::new(image.bytes.to_vec())))
                    .build()
                    .map_err(internal)?;
                parts.push(ContentBlock::Image(block));
            }
            Part::Document(document) => {
                let block = DocumentBlock::builder()
                    .format(DocumentFormat::Pdf)
                    .name(document_name(&document.name))
                    .source(DocumentSource::Bytes(Blob::new(document.bytes.to_vec())))
                    .build()
                    .map_err(internal)?;
                parts.push(ContentBlock::Document(block));
            }
            Part::CachePoint => {
                // A cache point needs something before it to cache.
                if !parts.is_empty() || !blocks.is_empty() {
                    parts.push(ContentBlock::CachePoint(cache_point()?));
                }
            }
        }
    }

    if message.role == Role::Tool {
        let id = message.tool_call_id.as_deref().ok_or_else(|| {
            Error::invalid_request(format!("messages[{index}].tool_call_id is required"))
        })?;
        if !tool_blocks {
            let mut text = if message.tool_failed {
                format!("[error from tool call {id}]")
            } else {
                format!("[result of tool call {id}]")
            };
            for part in &parts {
                if let ContentBlock::Text(t) = part {
                    text.push('\n');
                    text.push_str(t);
                }
            }
            blocks.push(ContentBlock::Text(text));
            return Ok(blocks);
        }
        let mut result = Vec::new();
        let mut trailing_cache = false;
        for part in parts {
            match part {
                ContentBlock::Text(t) => result.push(ToolResultContentBlock::Text(t)),
                ContentBlock::Image(i) => result.push(ToolResultContentBlock::Image(i)),
                ContentBlock::Document(d) => result.push(ToolResultContentBlock::Document(d)),
                ContentBlock::CachePoint(_) => trailing_cache = true,
                _ => {}
            }
        }
        if result.is_empty() {
            // An empty tool output is legitimate; Bedrock wants some content.
            result.push(ToolResultContentBlock::Text("(empty)".to_owned()));
        }
        let block = ToolResultBlock::builder()
            .tool_use_id(id)
            .set_content(Some(result))
            .set_status(message.tool_failed.then_some(ToolResultStatus::Error))
            .build()
            .map_err(internal)?;
        blocks.push(ContentBlock::ToolResult(block));
        if trailing_cache {
            blocks.push(ContentBlock::CachePoint(cache_point()?));
        }
        return Ok(blocks);
    }

    blocks.extend(parts);
    for (call_index, call) in message.tool_calls.iter().enumerate() {
        if !tool_blocks {
            blocks.push(ContentBlock::Text(format!(
                "[called tool {} (call {}) with arguments {}]",
                call.name, call.id, call.arguments
            )));
            continue;
        }
        let arguments: serde_json::Value = if call.arguments.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(&call.arguments).map_err(|e| {
                Error::invalid_request(format!(
                    "messages[{index}].tool_calls[{call_index}].function.arguments is not JSON: {e}"
                ))
            })?
        };
        let block = ToolUseBlock::builder()
            .tool_use_id(&call.id)
            .name(&call.name)
            .input(to_document(&arguments))
            .build()
            .map_err(internal)?;
        blocks.push(ContentBlock::ToolUse(block));
    }
    if !blocks
        .iter()
        .any(|b| !matches!(b, ContentBlock::CachePoint(_)))
    {
        return Err(blank(index));
    }
    Ok(blocks)
}

/// Bedrock allows letters, digits, single spaces, hyphens, parentheses and brackets in a
/// document name; anything else becomes a hyphen.
fn document_name(name: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-()[] ".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if cleaned.is_empty() {
        "document".to_owned()
    } else {
        cleaned
    }
}

fn tool_specs(request: &ChatRequest) -> Result<Vec<Tool>, Error> {
    let mut tools = Vec::with_capacity(request.tools.len());
    for tool in request.tools.iter() {
        let spec = ToolSpecification::builder()
            .name(&tool.name)
            .set_description(tool.description.clone())
            .input_schema(ToolInputSchema::Json(to_document(&tool.parameters)))
            .build()
            .map_err(internal)?;
        tools.push(Tool::ToolSpec(spec));
        if tool.cache_point {
            tools.push(Tool::CachePoint(cache_point()?));
        }
    }
    Ok(tools)
}

fn tool_config(request: &ChatRequest) -> Result<ToolConfiguration, Error> {
    let choice = match &request.tool_choice {
        None | Some(ChatToolChoice::Auto) | Some(ChatToolChoice::None) => None,
        Some(ChatToolChoice::Required) => Some(ToolChoice::Any(AnyToolChoice::builder().build())),
        Some(ChatToolChoice::Function(name)) => {
            if !request.tools.iter().any(|t| &t.name == name) {
                return Err(Error::invalid_request(format!(
                    "tool_choice names the function {name:?}, which is not among the tools"
                )));
            }
            Some(specific(name)?)
        }
    };
    // `auto` is Bedrock's default; leaving it out keeps models that accept tools but not
    // an explicit tool choice working.
    ToolConfiguration::builder()
        .set_tools(Some(tool_specs(request)?))
        .set_tool_choice(choice)
        .build()
        .map_err(internal)
}

fn specific(name: &str) -> Result<ToolChoice, Error> {
    Ok(ToolChoice::Tool(
        SpecificToolChoice::builder()
            .name(name)
            .build()
            .map_err(internal)?,
    ))
}

/// `response_format` as a forced tool whose input schema is the wanted shape; the client's
/// own tools stay listed so tool turns in the conversation remain valid.
fn response_format_tools(
    request: &ChatRequest,
    format: &ResponseFormat,
) -> Result<ToolConfiguration, Error> {
    let (description, schema) = match format {
        ResponseFormat::JsonObject => (
            "Answer with a JSON object.".to_owned(),
            serde_json::json!({"type": "object"}),
        ),
        ResponseFormat::JsonSchema { name, schema } => (
            format!("Answer with JSON matching the schema {name:?}."),
            schema.clone(),
        ),
    };
    let spec = ToolSpecification::builder()
        .name(RESPONSE_FORMAT_TOOL)
        .description(description)
        .input_schema(ToolInputSchema::Json(to_document(&schema)))
        .build()
        .map_err(internal)?;
    let mut tools = tool_specs(request)?;
    tools.push(Tool::ToolSpec(spec));
    ToolConfiguration::builder()
        .set_tools(Some(tools))
        .tool_choice(specific(RESPONSE_FORMAT_TOOL)?)
        .build()
        .map_err(internal)
}

/// The thinking budget a `reasoning_effort` buys on Anthropic Claude models.
pub(crate) fn thinking_budget(effort: ReasoningEffort) -> u32 {
    match effort {
        // Anthropic's minimum budget.
        ReasoningEffort::Minimal | ReasoningEffort::Low => 1024,
        ReasoningEffort::Medium => 4096,
        ReasoningEffort::High => 16384,
    }
}

/// Room for the visible answer when the client set no `max_tokens` but asked for thinking,
/// which Anthropic counts inside `max_tokens`.
const ANSWER_ROOM: u32 = 4096;

/// Whether `model_id` (a model id, an inference profile or an ARN) is an Anthropic Claude
/// model that takes a thinking budget: Claude 3.7 Sonnet and the Claude 4 family on.
pub(crate) fn takes_thinking_budget(model_id: &str) -> bool {
    let id = model_id.to_ascii_lowercase();
    if !id.contains("anthropic.claude") {
        return false;
    }
    id.contains("claude-3-7")
        || ["sonnet-4", "opus-4", "haiku-4", "claude-4"]
            .iter()
            .any(|family| id.contains(family))
}

/// Whether `model_id` reasons on its own, without a budget (DeepSeek-R1).
fn reasons_by_itself(model_id: &str) -> bool {
    model_id.to_ascii_lowercase().contains("deepseek.r1")
}

/// Whether the latest assistant turn (its consecutive assistant messages, merged into one
/// turn) calls tools without starting with signed reasoning to send back.
fn unsigned_tool_turn(request: &ChatRequest) -> bool {
    let mut turn = request
        .messages
        .iter()
        .rev()
        .skip_while(|m| m.role != Role::Assistant)
        .take_while(|m| matches!(m.role, Role::Assistant | Role::System))
        .filter(|m| m.role == Role::Assistant)
        .collect::<Vec<_>>();
    turn.reverse();
    let calls = turn.iter().any(|m| !m.tool_calls.is_empty());
    let signed = turn
        .first()
        .and_then(|m| m.reasoning.as_ref())
        .is_some_and(|r| r.signature.is_some());
    calls && !signed
}

/// Additional model request fields, as JSON.
type ModelFields = serde_json::Map<String, serde_json::Value>;

/// The client's model fields with the ones `reasoning_effort` adds, as Converse's
/// `additionalModelRequestFields`.
fn additional_fields(request: &ChatRequest, thinking: Option<ModelFields>) -> Option<Document> {
    let mut fields = request.model_fields.as_deref().cloned().unwrap_or_default();
    fields.extend(thinking.unwrap_or_default());
    (!fields.is_empty()).then(|| to_document(&serde_json::Value::Object(fields)))
}

/// The inference settings and additional fields `reasoning_effort` needs for `model_id`.
fn reasoning(
    request: &ChatRequest,
    model_id: &str,
) -> Result<(Option<InferenceConfiguration>, Option<ModelFields>), Error> {
    let Some(effort) = request.reasoning_effort else {
        return Ok((None, None));
    };
    if reasons_by_itself(model_id) {
        return Ok((None, None));
    }
    if unsigned_tool_turn(request) {
        // Claude with thinking on refuses a tool-use turn that does not start with its
        // signed reasoning (a client that dropped it, or a turn from another model); such
        // a request is answered without thinking rather than refused.
        return Ok((None, None));
    }
    if !takes_thinking_budget(model_id) {
        return Err(Error::invalid_request(format!(
            "reasoning_effort is not supported for the model {model_id}; on bedrock it is \
             honoured for Anthropic Claude 3.7 and Claude 4 models"
        )));
    }
    let mut budget = thinking_budget(effort);
    let max_tokens = match request.max_tokens {
        None => budget + ANSWER_ROOM,
        Some(max) if max > budget => max,
        // The budget must stay below max_tokens and at or above Anthropic's 1024.
        Some(max) if max > 1024 => {
            budget = max - 1;
            max
        }
        Some(max) => {
            return Err(Error::invalid_request(format!(
                "reasoning_effort needs max_tokens above 1024 (the smallest thinking budget), \
                 but max_tokens is {max}"
            )));
        }
    };
    let mut thinking = ModelFields::new();
    thinking.insert(
        "thinking".to_owned(),
        serde_json::json!({"type": "enabled", "budget_tokens": budget}),
    );
    // Anthropic refuses thinking with a temperature other than 1 or a changed top_p.
    let inference = inference_config(request, Some(max_tokens))?;
    let inference = inference.map(|c| {
        InferenceConfiguration::builder()
            .set_max_tokens(c.max_tokens())
            .set_stop_sequences(Some(c.stop_sequences().to_vec()).filter(|s| !s.is_empty()))
            .build()
    });
    Ok((inference, Some(thinking)))
}

fn guardrail(
    request: &ChatRequest,
) -> (
    Option<GuardrailConfiguration>,
    Option<GuardrailStreamConfiguration>,
) {
    let Some(g) = request.guardrail.as_deref() else {
        return (None, None);
    };
    let trace = g.trace.as_deref().map(GuardrailTrace::from);
    let unary = GuardrailConfiguration::builder()
        .guardrail_identifier(&g.identifier)
        .guardrail_version(&g.version)
        .set_trace(trace.clone())
        .build();
    let stream = GuardrailStreamConfiguration::builder()
        .guardrail_identifier(&g.identifier)
        .guardrail_version(&g.version)
        .set_trace(trace)
        .set_stream_processing_mode(
            g.stream_processing_mode
                .as_deref()
                .map(GuardrailStreamProcessingMode::from),
        )
        .build();
    (Some(unary), Some(stream))
}

fn inference_config(
    request: &ChatRequest,
    max_tokens_override: Option<u32>,
) -> Result<Option<InferenceConfiguration>, Error> {
    let max_tokens = max_tokens_override
        .or(request.max_tokens)
        .map(|n| {
            i32::try_from(n).map_err(|_| {
                Error::invalid_request(format!("max_tokens {n} is larger than bedrock accepts"))
            })
        })
        .transpose()?;
    let temperature = request.temperature;
    let top_p = request.top_p;
    let stop = (!request.stop.is_empty()).then(|| request.stop.to_vec());

    if max_tokens.is_none() && temperature.is_none() && top_p.is_none() && stop.is_none() {
        // Leaving the field out lets the model's own defaults apply.
        return Ok(None);
    }
    Ok(Some(
        InferenceConfiguration::builder()
            .set_max_tokens(max_tokens)
            .set_temperature(temperature)
            .set_top_p(top_p)
            .set_stop_sequences(stop)
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aigw_core::Message as ChatMessage;

    use super::*;

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage::new(role, content.to_owned())
    }

    fn request(messages: Vec<ChatMessage>) -> ChatRequest {
        ChatRequest {
            messages: messages.into(),
            ..ChatRequest::default()
        }
    }

    fn texts(message: &Message) -> Vec<&str> {
        message
            .content()
            .iter()
            .map(|block| block.as_text().map(String::as_str).unwrap_or("<non-text>"))
            .collect()
    }

    #[test]
    fn system_messages_are_hoisted() {
        let req = request(vec![
            msg(Role::System, "be brief"),
            msg(Role::User, "hi"),
            msg(Role::System, "and kind"),
        ]);
        let parts = to_converse(&req, "m").unwrap();
        assert_eq!(
            parts.system,
            Some(vec![
                SystemContentBlock::Text("be brief".into()),
                SystemContentBlock::Text("and kind".into()),
            ])
        );
        assert_eq!(parts.messages.len(), 1);
        assert_eq!(parts.messages[0].role(), &ConversationRole::User);
        assert_eq!(texts(&parts.messages[0]), ["hi"]);
    }

    #[test]
    fn no_system_means_none_not_empty() {
        let parts = to_converse(&request(vec![msg(Role::User, "hi")]), "m").unwrap();
        assert_eq!(parts.system, None);
        assert_eq!(parts.inference, None);
    }

    #[test]
    fn consecutive_same_role_turns_merge() {
        let req = request(vec![
            msg(Role::User, "a"),
            msg(Role::User, "b"),
            msg(Role::Assistant, "c"),
            msg(Role::System, "s"),
            msg(Role::Assistant, "d"),
            msg(Role::User, "e"),
        ]);
        let parts = to_converse(&req, "m").unwrap();
        let roles: Vec<_> = parts.messages.iter().map(|m| m.role().clone()).collect();
        assert_eq!(
            roles,
            [
                ConversationRole::User,
                ConversationRole::Assistant,
                ConversationRole::User
            ]
        );
        assert_eq!(texts(&parts.messages[0]), ["a", "b"]);
        assert_eq!(texts(&parts.messages[1]), ["c", "d"]);
        assert_eq!(texts(&parts.messages[2]), ["e"]);
    }

    #[test]
    fn conversation_must_start_with_user() {
        let err = to_converse(
            &request(vec![msg(Role::System, "s"), msg(Role::Assistant, "hello")]),
            "m",
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        assert!(err.message().contains("start with a user message"), "{err}");
    }

    #[test]
    fn system_only_is_rejected() {
        let err = to_converse(&request(vec![msg(Role::System, "s")]), "m").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    }

    #[test]
    fn request_settings_become_the_inference_config() {
        let req = ChatRequest {
            max_tokens: Some(10),
            temperature: Some(0.0),
            top_p: Some(0.1),
            stop: Arc::from(vec!["END".to_owned()]),
            ..request(vec![msg(Role::User, "hi")])
        };
        let inference = to_converse(&req, "m").unwrap().inference.unwrap();
        assert_eq!(inference.max_tokens(), Some(10));
        assert_eq!(inference.temperature(), Some(0.0));
        assert_eq!(inference.top_p(), Some(0.1));
        assert_eq!(inference.stop_sequences(), ["END"]);
    }

    fn weather() -> aigw_core::Tool {
        aigw_core::Tool {
            name: "get_weather".into(),
            description: Some("weather".into()),
            parameters: serde_json::json!({"type": "object"}),
            cache_point: true,
        }
    }

    fn tool_loop() -> Vec<ChatMessage> {
        let mut asked = msg(Role::Assistant, "");
        asked.content.clear();
        asked.tool_calls = vec![
            aigw_core::ToolCall {
                id: "t1".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Krakow"}"#.into(),
            },
            aigw_core::ToolCall {
                id: "t2".into(),
                name: "get_weather".into(),
                arguments: String::new(),
            },
        ];
        let result = |id: &str, text: &str| {
            let mut m = msg(Role::Tool, text);
            m.tool_call_id = Some(id.into());
            m
        };
        vec![
            msg(Role::User, "weather?"),
            asked,
            result("t1", "sunny"),
            result("t2", ""),
            msg(Role::User, "thanks"),
        ]
    }

    #[test]
    fn tool_turns_become_tool_use_and_merged_tool_results() {
        let req = ChatRequest {
            tools: Arc::from([weather()]),
            tool_choice: Some(ChatToolChoice::Required),
            ..request(tool_loop())
        };
        let parts = to_converse(&req, "m").unwrap();
        assert_eq!(parts.messages.len(), 3, "user, assistant, merged user");
        let uses: Vec<_> = parts.messages[1]
            .content()
            .iter()
            .filter_map(|b| b.as_tool_use().ok())
            .map(|u| (u.tool_use_id(), crate::json::to_json(u.input())))
            .collect();
        assert_eq!(
            uses,
            [
                ("t1", serde_json::json!({"city": "Krakow"})),
                ("t2", serde_json::json!({}))
            ]
        );
        let results: Vec<_> = parts.messages[2]
            .content()
            .iter()
            .filter_map(|b| b.as_tool_result().ok())
            .map(|r| r.tool_use_id())
            .collect();
        assert_eq!(results, ["t1", "t2"]);
        assert_eq!(texts(&parts.messages[2]).last(), Some(&"thanks"));
        let tools = parts.tools.unwrap();
        assert!(tools.tool_choice().unwrap().is_any());
        // The tool's cache_control is a cache point after it.
        assert!(tools.tools()[1].is_cache_point());
    }

    #[test]
    fn tool_choice_none_renders_tool_turns_as_text() {
        let req = ChatRequest {
            tools: Arc::from([weather()]),
            tool_choice: Some(ChatToolChoice::None),
            ..request(tool_loop())
        };
        let parts = to_converse(&req, "m").unwrap();
        assert_eq!(parts.tools, None);
        for message in &parts.messages {
            for block in message.content() {
                assert!(block.is_text(), "{block:?}");
            }
        }
        assert!(texts(&parts.messages[1])[0].contains("called tool get_weather (call t1)"));
        assert!(texts(&parts.messages[2])[0].starts_with("[result of tool call t1]\nsunny"));
    }

    #[test]
    fn unanswered_or_unknown_tool_calls_are_refused() {
        let mut messages = tool_loop();
        messages.remove(3);
        let req = ChatRequest {
            tools: Arc::from([weather()]),
            ..request(messages)
        };
        let err = to_converse(&req, "m").unwrap_err();
        assert!(err.message().contains("\"t2\" is not answered"), "{err}");

        let mut messages = tool_loop();
        messages[2].tool_call_id = Some("t9".into());
        let req = ChatRequest {
            tools: Arc::from([weather()]),
            ..request(messages)
        };
        let err = to_converse(&req, "m").unwrap_err();
        assert!(
            err.message().starts_with("messages[2].tool_call_id \"t9\""),
            "{err}"
        );
    }

    #[test]
    fn reasoning_effort_sets_claudes_thinking_budget() {
        let claude = "us.anthropic.claude-sonnet-4-20250514-v1:0";
        let req = ChatRequest {
            reasoning_effort: Some(ReasoningEffort::Medium),
            temperature: Some(0.2),
            ..request(vec![msg(Role::User, "hi")])
        };
        let parts = to_converse(&req, claude).unwrap();
        let json = crate::json::to_json(parts.additional.as_ref().unwrap());
        assert_eq!(json["thinking"]["budget_tokens"], 4096);
        let inference = parts.inference.unwrap();
        assert_eq!(inference.max_tokens(), Some(4096 + 4096));
        assert_eq!(
            inference.temperature(),
            None,
            "Anthropic refuses it with thinking"
        );

        let small = ChatRequest {
            max_tokens: Some(512),
            ..req.clone()
        };
        assert!(to_converse(&small, claude).is_err());
        let err = to_converse(&req, "us.amazon.nova-micro-v1:0").unwrap_err();
        assert!(err.message().starts_with("reasoning_effort"), "{err}");
        let r1 = to_converse(&req, "us.deepseek.r1-v1:0").unwrap();
        assert_eq!(r1.additional, None);
    }

    #[test]
    fn response_format_is_a_forced_tool() {
        let req = ChatRequest {
            response_format: Some(Arc::new(ResponseFormat::JsonObject)),
            ..request(vec![msg(Role::User, "json please")])
        };
        let parts = to_converse(&req, "m").unwrap();
        let tools = parts.tools.unwrap();
        let forced = tools.tool_choice().unwrap().as_tool().unwrap();
        assert_eq!(forced.name(), RESPONSE_FORMAT_TOOL);
        assert!(parts.answer.json_via_tool);
    }

    #[test]
    fn cache_control_and_images_become_blocks() {
        let mut message = msg(Role::User, "look");
        message.content.push(Part::CachePoint);
        message.content.push(Part::Image(aigw_core::Image {
            format: ImageFormat::Webp,
            bytes: Arc::from(&b"RIFF"[..]),
        }));
        let parts = to_converse(&request(vec![message]), "m").unwrap();
        let blocks = parts.messages[0].content();
        assert!(blocks[0].is_text());
        assert!(blocks[1].is_cache_point());
        let image = blocks[2].as_image().unwrap();
        assert_eq!(image.format(), &BedrockImageFormat::Webp);
        assert_eq!(
            image.source().unwrap().as_bytes().unwrap().as_ref(),
            b"RIFF"
        );
    }

    #[test]
    fn huge_max_tokens_is_a_client_error() {
        let req = ChatRequest {
            max_tokens: Some(u32::MAX),
            ..request(vec![msg(Role::User, "hi")])
        };
        let err = to_converse(&req, "m").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    }
}

#[cfg(test)]
#[path = "request_props.rs"]
mod props;
