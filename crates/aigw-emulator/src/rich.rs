//! What a Converse request says beyond text: tools, tool results, images, cache points,
//! reasoning and guardrails. Checked the way Bedrock's validation checks them, and turned
//! into the deterministic tool calls, reasoning and cache counts of the answer.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value, json};

use crate::answer::{Answer, Prompt, StopReason};

/// The image formats Converse accepts.
const IMAGE_FORMATS: [&str; 4] = ["gif", "jpeg", "png", "webp"];

/// What the conversation's non-text blocks told us, gathered while validating it.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// Some message holds a toolUse or toolResult block.
    pub(crate) tool_blocks: bool,
    /// The last user turn holds a toolResult: the model now answers in text.
    pub(crate) answered_tool: bool,
    /// The ids of toolUse blocks in the latest assistant turn.
    last_tool_uses: Vec<String>,
    /// The ids the current user turn's toolResult blocks answer.
    answered: Vec<String>,
    /// The latest assistant turn (its `messages.N` path) calls tools without starting
    /// with a reasoning block, which Claude refuses when thinking is on.
    pub(crate) unreasoned_tool_turn: Option<String>,
    /// Words read so far, and a hash of them, for the prefix a cache point caches.
    words: u64,
    hasher: DefaultHasher,
    /// The prefix before the last cache point: its size in words and its hash.
    pub(crate) cached_prefix: Option<(u64, u64)>,
}

impl Extras {
    /// Counts `text` as prompt read so far.
    pub(crate) fn read(&mut self, text: &str) {
        for word in text.split_whitespace() {
            word.hash(&mut self.hasher);
            self.words += 1;
        }
    }

    /// The prompt read so far may be cached.
    pub(crate) fn cache_point(&mut self) {
        if self.words > 0 {
            self.cached_prefix = Some((self.words, self.hasher.finish()));
        }
    }

    /// A new message begins with `role`; a user turn resets what "the last user turn" holds.
    pub(crate) fn turn(&mut self, role: &str) {
        if role == "user" {
            self.answered_tool = false;
            self.answered.clear();
        } else {
            self.last_tool_uses.clear();
            self.unreasoned_tool_turn = None;
        }
    }

    /// An assistant turn at `at` with `content` ended.
    pub(crate) fn end_assistant_turn(&mut self, content: &[Value], at: &str) {
        let calls = content.iter().any(|b| b.get("toolUse").is_some());
        let reasoned = content
            .first()
            .is_some_and(|b| b.get("reasoningContent").is_some());
        if calls && !reasoned {
            self.unreasoned_tool_turn = Some(at.to_owned());
        }
    }

    /// A user turn at `at` ended: it must answer every toolUse of the assistant turn before
    /// it, as Anthropic models on Bedrock require.
    pub(crate) fn end_user_turn(&self, at: &str) -> Result<(), String> {
        let missing: Vec<&str> = self
            .last_tool_uses
            .iter()
            .filter(|id| !self.answered.contains(id))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{at}: `tool_use` ids were found without `tool_result` blocks immediately after: \
             {}. Each `tool_use` block must have a corresponding `tool_result` block in the \
             next message.",
            missing.join(", ")
        ))
    }

    /// Checks one content block of a `role` message at `at`, collecting its text (and a tool
    /// result's text) into `texts`.
    pub(crate) fn block<'a>(
        &mut self,
        role: &str,
        block: &'a Map<String, Value>,
        at: &str,
        texts: &mut Vec<&'a str>,
    ) -> Result<(), String> {
        if let Some(image) = block.get("image") {
            image_block(image, &format!("{at}.member.image"))?;
        }
        if block.contains_key("cachePoint") {
            self.cache_point();
        }
        if let Some(tool_use) = block.get("toolUse") {
            self.tool_blocks = true;
            if role != "assistant" {
                return Err(format!(
                    "A toolUse block at {at} is only allowed in an assistant message."
                ));
            }
            let id = tool_use.get("toolUseId").and_then(Value::as_str).ok_or_else(|| {
                format!("1 validation error detected: Value null at '{at}.member.toolUse.toolUseId' failed to satisfy constraint: Member must not be null")
            })?;
            self.last_tool_uses.push(id.to_owned());
            if let Some(input) = tool_use.get("input") {
                self.read(&input.to_string());
            }
        }
        if let Some(result) = block.get("toolResult") {
            self.tool_blocks = true;
            if role != "user" {
                return Err(format!(
                    "A toolResult block at {at} is only allowed in a user message."
                ));
            }
            let id = result
                .get("toolUseId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !self.last_tool_uses.iter().any(|u| u == id) {
                return Err(format!(
                    "The toolUseId {id:?} of the toolResult at {at} does not match any toolUse \
                     block of the previous assistant turn."
                ));
            }
            match result.get("status") {
                None => {}
                Some(Value::String(status)) if status == "success" || status == "error" => {}
                Some(other) => {
                    return Err(format!(
                        "1 validation error detected: Value {other} at '{at}.member.toolResult.status' \
                         failed to satisfy constraint: Member must satisfy enum value set: [success, error]"
                    ));
                }
            }
            self.answered_tool = true;
            self.answered.push(id.to_owned());
            if let Some(Value::Array(content)) = result.get("content") {
                for (k, item) in content.iter().enumerate() {
                    if let Some(Value::String(text)) = item.get("text") {
                        self.read(text);
                        texts.push(text);
                    }
                    if let Some(image) = item.get("image") {
                        image_block(image, &format!("{at}.member.toolResult.content.{}", k + 1))?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn image_block(image: &Value, at: &str) -> Result<(), String> {
    let format = image.get("format").and_then(Value::as_str);
    match format {
        Some(f) if IMAGE_FORMATS.contains(&f) => {}
        other => {
            return Err(format!(
                "1 validation error detected: Value '{}' at '{at}.format' failed to satisfy \
                 constraint: Member must satisfy enum value set: [gif, jpeg, png, webp]",
                other.unwrap_or("null")
            ));
        }
    }
    let bytes = image
        .get("source")
        .and_then(|s| s.get("bytes"))
        .and_then(Value::as_str);
    if bytes.is_none_or(str::is_empty) {
        return Err(format!(
            "The image at {at} has no bytes; Converse takes images as base64 source.bytes."
        ));
    }
    Ok(())
}

/// One tool the request offers.
#[derive(Debug)]
pub(crate) struct Offered<'a> {
    name: &'a str,
    schema: Option<&'a Value>,
}

/// Which tool the model must call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice<'a> {
    Auto,
    Any,
    Tool(&'a str),
}

/// The request's `toolConfig`, checked.
#[derive(Debug)]
pub(crate) struct ToolConfig<'a> {
    pub(crate) tools: Vec<Offered<'a>>,
    pub(crate) choice: Choice<'a>,
}

/// Reads `toolConfig`; `extras` says whether the conversation needs one.
pub(crate) fn tool_config<'a>(
    body: &'a Map<String, Value>,
    extras: &mut Extras,
) -> Result<Option<ToolConfig<'a>>, String> {
    let config = match body.get("toolConfig") {
        None | Some(Value::Null) => {
            if extras.tool_blocks {
                return Err(
                    "The toolConfig field must be defined when using toolUse and \
                            toolResult content blocks."
                        .to_owned(),
                );
            }
            return Ok(None);
        }
        Some(Value::Object(config)) => config,
        Some(_) => return Err("Malformed input request: 'toolConfig' must be an object.".into()),
    };
    let Some(Value::Array(list)) = config.get("tools") else {
        return Err(
            "1 validation error detected: Value null at 'toolConfig.tools' failed to satisfy \
             constraint: Member must not be null"
                .to_owned(),
        );
    };
    let mut tools = Vec::new();
    for (i, tool) in list.iter().enumerate() {
        if tool.get("cachePoint").is_some() {
            extras.cache_point();
            continue;
        }
        let spec = tool.get("toolSpec").ok_or_else(|| {
            format!(
                "Malformed input request: toolConfig.tools.{} must hold a toolSpec.",
                i + 1
            )
        })?;
        let name = spec.get("name").and_then(Value::as_str).ok_or_else(|| {
            format!(
                "1 validation error detected: Value null at 'toolConfig.tools.{}.member.toolSpec.name' failed to satisfy constraint: Member must not be null",
                i + 1
            )
        })?;
        let schema = spec.get("inputSchema").and_then(|s| s.get("json"));
        if schema.is_none() {
            return Err(format!(
                "The toolSpec {name:?} needs an inputSchema with a json schema."
            ));
        }
        extras.read(name);
        tools.push(Offered { name, schema });
    }
    if tools.is_empty() {
        return Err(
            "1 validation error detected: Value '[]' at 'toolConfig.tools' failed to satisfy \
             constraint: Member must have length greater than or equal to 1"
                .to_owned(),
        );
    }
    let choice = match config.get("toolChoice") {
        None | Some(Value::Null) => Choice::Auto,
        Some(c) if c.get("auto").is_some() => Choice::Auto,
        Some(c) if c.get("any").is_some() => Choice::Any,
        Some(c) => {
            let name = c
                .get("tool")
                .and_then(|t| t.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| "toolChoice must be one of auto, any or tool.".to_owned())?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(format!(
                    "The tool {name:?} named in toolChoice is not among the tools in toolConfig."
                ));
            }
            Choice::Tool(name)
        }
    };
    Ok(Some(ToolConfig { tools, choice }))
}

/// Whether `model_id` takes Anthropic's `thinking` field.
fn thinks_on_request(model_id: &str) -> bool {
    let id = model_id.to_ascii_lowercase();
    id.contains("anthropic.claude")
        && (id.contains("claude-3-7")
            || ["sonnet-4", "opus-4", "haiku-4", "claude-4"]
                .iter()
                .any(|f| id.contains(f)))
}

/// Whether the answer shows reasoning: a Claude model asked to think, or a model that always
/// reasons (DeepSeek-R1). `thinking` on any other model is Bedrock's 400.
pub(crate) fn reasoning_wanted(
    model_id: &str,
    body: &Map<String, Value>,
    extras: &Extras,
) -> Result<bool, String> {
    let thinking = body
        .get("additionalModelRequestFields")
        .and_then(|f| f.get("thinking"));
    let Some(thinking) = thinking else {
        return Ok(model_id.to_ascii_lowercase().contains("deepseek.r1"));
    };
    if !thinks_on_request(model_id) {
        return Err(
            "The model returned the following errors: thinking: Extra inputs are not \
                    permitted"
                .to_owned(),
        );
    }
    if thinking.get("type").and_then(Value::as_str) != Some("enabled") {
        return Ok(false);
    }
    if let Some(at) = &extras.unreasoned_tool_turn {
        return Err(format!(
            "The model returned the following errors: {at}.content.0.type: Expected \
             `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is \
             enabled, a final `assistant` message must start with a thinking block."
        ));
    }
    let budget = thinking.get("budget_tokens").and_then(Value::as_u64);
    if budget.is_none_or(|b| b < 1024) {
        return Err(
            "The model returned the following errors: thinking.enabled.budget_tokens: \
                    Input should be greater than or equal to 1024"
                .to_owned(),
        );
    }
    let max = body
        .get("inferenceConfig")
        .and_then(|c| c.get("maxTokens"))
        .and_then(Value::as_u64);
    if let (Some(budget), Some(max)) = (budget, max) {
        if max <= budget {
            return Err(
                "The model returned the following errors: `max_tokens` must be \
                        greater than `thinking.budget_tokens`."
                    .to_owned(),
            );
        }
    }
    Ok(true)
}

/// A tool call the answer makes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolUse {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) input: Value,
}

/// The prompt caches one emulator has written, by prefix hash.
#[derive(Debug, Default)]
pub(crate) struct Caches {
    written: Mutex<HashSet<u64>>,
}

impl Caches {
    /// `(read, write)` token counts for a prompt whose cached prefix is `prefix`: written
    /// the first time a prefix is seen, read after.
    fn use_prefix(&self, prefix: Option<(u64, u64)>) -> (u64, u64) {
        let Some((words, hash)) = prefix else {
            return (0, 0);
        };
        let fresh = self
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(hash);
        if fresh { (0, words) } else { (words, 0) }
    }
}

/// What the answer becomes beyond plain text.
#[derive(Debug)]
pub(crate) struct Dress<'p, 'a> {
    pub(crate) model_id: &'p str,
    pub(crate) prompt: &'p Prompt<'a>,
    pub(crate) guardrail_knob: bool,
    pub(crate) caches: &'p Caches,
}

/// Adds tool calls, reasoning, cache counts and guardrail interventions to `answer`.
pub(crate) fn dress(answer: &mut Answer, dress: Dress<'_, '_>) {
    let prompt = dress.prompt;
    let (read, write) = dress.caches.use_prefix(prompt.extras.cached_prefix);
    answer.cache_read = read;
    answer.cache_write = write;
    answer.input_tokens = answer.input_tokens.saturating_sub(read + write);

    if dress.guardrail_knob && prompt.guardrail {
        answer.text = "Sorry, the model cannot answer this question.".to_owned();
        answer.stop_reason = StopReason::GuardrailIntervened;
        answer.output_tokens = 8;
        return;
    }
    if prompt.reasoning {
        let text = format!(
            "The user asked {} words; answering plainly.",
            prompt.question_words()
        );
        let signature = format!("emulated-signature-{:08x}", text.len());
        answer.output_tokens += text.split_whitespace().count() as u64;
        answer.reasoning = Some((text, signature));
    }
    let Some(config) = &prompt.tools else {
        return;
    };
    if prompt.extras.answered_tool {
        return;
    }
    let called: Vec<&Offered<'_>> = match config.choice {
        // Deterministic and enough to exercise parallel calls: `auto` calls every tool.
        Choice::Auto => config.tools.iter().collect(),
        Choice::Any => config.tools.iter().take(1).collect(),
        Choice::Tool(name) => config.tools.iter().filter(|t| t.name == name).collect(),
    };
    answer.text = match config.choice {
        Choice::Auto => {
            let names: Vec<&str> = called.iter().map(|t| t.name).collect();
            format!("[{}] Calling {}.", dress.model_id, names.join(", "))
        }
        Choice::Any | Choice::Tool(_) => String::new(),
    };
    answer.tool_uses = called
        .iter()
        .enumerate()
        .map(|(i, tool)| ToolUse {
            id: format!("tooluse_emulated_{i}_{}", tool.name),
            name: tool.name.to_owned(),
            input: fill(tool.schema),
        })
        .collect();
    answer.output_tokens = answer.text.split_whitespace().count() as u64
        + answer
            .tool_uses
            .iter()
            .map(|t| t.input.to_string().len() as u64 / 4 + 1)
            .sum::<u64>();
    answer.stop_reason = StopReason::ToolUse;
}

/// An input that fits `schema`'s required properties: the first enum value, or a value of
/// the property's type.
fn fill(schema: Option<&Value>) -> Value {
    let Some(schema) = schema else {
        return json!({});
    };
    let mut input = Map::new();
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = schema.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        let property = properties.and_then(|p| p.get(name));
        input.insert(name.to_owned(), value_for(name, property));
    }
    Value::Object(input)
}

fn value_for(name: &str, property: Option<&Value>) -> Value {
    let Some(property) = property else {
        return Value::String(format!("{name}-value"));
    };
    if let Some(first) = property
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    match property.get("type").and_then(Value::as_str) {
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("object") => fill(Some(property)),
        Some("null") => Value::Null,
        _ => Value::String(format!("{name}-value")),
    }
}

/// The pieces a tool call's input JSON is streamed in: at least two when it is longer than
/// two characters, so clients must assemble them.
pub(crate) fn input_fragments(json: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = json;
    let size = (json.len() / 3).max(1);
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_meets_required_properties() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer"},
                "note": {"type": "string"}
            },
            "required": ["city", "unit", "days"]
        });
        assert_eq!(
            fill(Some(&schema)),
            json!({"city": "city-value", "unit": "c", "days": 1})
        );
    }

    #[test]
    fn fragments_rebuild_the_input() {
        let json = r#"{"city":"Kraków","days":1}"#;
        let pieces = input_fragments(json);
        assert!(pieces.len() >= 3);
        assert_eq!(pieces.concat(), json);
    }
}
