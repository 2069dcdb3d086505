//! Reading a Converse request body and making the deterministic answer to it.

use serde_json::{Map, Value};

use crate::rich::{Extras, ToolConfig, ToolUse, reasoning_wanted, tool_config};

/// The parts of a Converse request the answer depends on, borrowed from the decoded body.
#[derive(Debug)]
pub(crate) struct Prompt<'a> {
    /// Text blocks of the last user message.
    question: Vec<&'a str>,
    /// Words in the system prompt and all messages, our stand-in for input tokens.
    pub(crate) input_tokens: u64,
    max_tokens: Option<u64>,
    stop_sequences: Vec<&'a str>,
    /// Tool results, images and cache points seen in the conversation.
    pub(crate) extras: Extras,
    /// The tools offered, if any.
    pub(crate) tools: Option<ToolConfig<'a>>,
    /// The answer shows reasoning.
    pub(crate) reasoning: bool,
    /// The request names a guardrail.
    pub(crate) guardrail: bool,
}

impl Prompt<'_> {
    /// How many words the question has.
    pub(crate) fn question_words(&self) -> usize {
        self.question
            .iter()
            .map(|t| t.split_whitespace().count())
            .sum()
    }
}

/// Why the answer ended, spelled as the Converse API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    GuardrailIntervened,
}

impl StopReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::EndTurn => "end_turn",
            Self::MaxTokens => "max_tokens",
            Self::StopSequence => "stop_sequence",
            Self::ToolUse => "tool_use",
            Self::GuardrailIntervened => "guardrail_intervened",
        }
    }
}

/// The answer: its text, why it stopped, and its token counts.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) text: String,
    pub(crate) stop_reason: StopReason,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    /// Prompt tokens read from and written to the prompt cache.
    pub(crate) cache_read: u64,
    pub(crate) cache_write: u64,
    /// Tool calls after the text.
    pub(crate) tool_uses: Vec<ToolUse>,
    /// Reasoning text and its signature, before the text.
    pub(crate) reasoning: Option<(String, String)>,
}

/// Checks the body the way Bedrock's validation would and borrows what the answer needs.
/// The error is the `ValidationException` message.
pub(crate) fn parse_prompt<'a>(model_id: &str, body: &'a Value) -> Result<Prompt<'a>, String> {
    let body = body
        .as_object()
        .ok_or_else(|| "Malformed input request: the body must be a JSON object.".to_owned())?;

    let messages = match body.get("messages") {
        Some(Value::Array(messages)) => messages,
        None | Some(Value::Null) => {
            return Err(constraint("null", "messages", "Member must not be null"));
        }
        Some(_) => return Err("Malformed input request: 'messages' must be an array.".to_owned()),
    };
    if messages.is_empty() {
        return Err(constraint(
            "[]",
            "messages",
            "Member must have length greater than or equal to 1",
        ));
    }

    let mut input_tokens = 0u64;
    let mut question = Vec::new();
    let mut extras = Extras::default();
    let mut previous_role = "";
    // The system prompt comes first in what a cache point caches.
    if let Some(Value::Array(system)) = body.get("system") {
        for block in system {
            if let Some(Value::String(text)) = block.get("text") {
                extras.read(text);
            }
            if block.get("cachePoint").is_some() {
                extras.cache_point();
            }
        }
    }
    for (i, message) in messages.iter().enumerate() {
        let at = |field: &str| format!("messages.{}.member.{field}", i + 1);
        let message = message
            .as_object()
            .ok_or_else(|| format!("Malformed input request: {} must be an object.", at("")))?;
        let role = match message.get("role") {
            Some(Value::String(role)) if role == "user" || role == "assistant" => role.as_str(),
            Some(Value::String(role)) => {
                return Err(constraint(
                    &format!("'{role}'"),
                    &at("role"),
                    "Member must satisfy enum value set: [user, assistant]",
                ));
            }
            _ => return Err(constraint("null", &at("role"), "Member must not be null")),
        };
        if i == 0 && role != "user" {
            return Err(
                "A conversation must start with a user message. Try again with a \
                        conversation that starts with a user message."
                    .to_owned(),
            );
        }
        let Some(Value::Array(content)) = message.get("content") else {
            return Err(constraint(
                "null",
                &at("content"),
                "Member must not be null",
            ));
        };
        if role == previous_role {
            return Err(
                "A conversation must alternate between user and assistant roles. Make \
                        sure the conversation alternates between user and assistant roles and \
                        try again."
                    .to_owned(),
            );
        }
        previous_role = role;
        extras.turn(role);
        let mut texts = text_blocks(content, &at("content"))?;
        for text in &texts {
            extras.read(text);
        }
        for (j, block) in content.iter().enumerate() {
            if let Some(block) = block.as_object() {
                let at = format!("{}.{}", at("content"), j + 1);
                extras.block(role, block, &at, &mut texts)?;
            }
        }
        input_tokens += texts.iter().map(|t| word_count(t)).sum::<u64>();
        if role == "user" {
            extras.end_user_turn(&format!("messages.{}", i + 1))?;
            question = texts;
        } else {
            extras.end_assistant_turn(content, &format!("messages.{}", i + 1));
        }
    }

    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::Array(system)) => {
            let texts = text_blocks(system, "system")?;
            input_tokens += texts.iter().map(|t| word_count(t)).sum::<u64>();
        }
        Some(_) => return Err("Malformed input request: 'system' must be an array.".to_owned()),
    }

    let (max_tokens, stop_sequences) = match body.get("inferenceConfig") {
        None | Some(Value::Null) => (None, Vec::new()),
        Some(Value::Object(config)) => inference_config(config)?,
        Some(_) => {
            return Err("Malformed input request: 'inferenceConfig' must be an object.".to_owned());
        }
    };

    let tools = tool_config(body, &mut extras)?;
    let reasoning = reasoning_wanted(model_id, body, &extras)?;
    let guardrail = match body.get("guardrailConfig") {
        None | Some(Value::Null) => false,
        Some(g)
            if g.get("guardrailIdentifier").is_some() && g.get("guardrailVersion").is_some() =>
        {
            true
        }
        Some(_) => {
            return Err(
                "guardrailConfig needs a guardrailIdentifier and a guardrailVersion.".to_owned(),
            );
        }
    };

    Ok(Prompt {
        question,
        input_tokens,
        max_tokens,
        stop_sequences,
        extras,
        tools,
        reasoning,
        guardrail,
    })
}

/// Checks an OpenAI chat completions body the way OpenAI's validation would and borrows
/// what the answer needs. The error is the `invalid_request_error` message.
pub(crate) fn parse_chat_prompt(body: &Value) -> Result<Prompt<'_>, String> {
    let body = body
        .as_object()
        .ok_or_else(|| "We could not parse the JSON body of your request.".to_owned())?;
    let messages = match body.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        Some(Value::Array(_)) => {
            return Err(
                "Invalid 'messages': empty array. Expected an array with minimum \
                        length 1, but got an empty array instead."
                    .to_owned(),
            );
        }
        _ => return Err("Missing required parameter: 'messages'.".to_owned()),
    };
    let mut input_tokens = 0u64;
    let mut question = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str);
        let role = match role {
            Some(role @ ("system" | "developer" | "user" | "assistant" | "tool")) => role,
            Some(other) => {
                return Err(format!(
                    "Invalid value: '{other}'. Supported values are: 'system', 'developer', \
                     'user', 'assistant', and 'tool'."
                ));
            }
            None => return Err(format!("Missing required parameter: 'messages[{i}].role'.")),
        };
        // Content is a string, or an array of parts of which the text ones count.
        let texts: Vec<&str> = match message.get("content") {
            Some(Value::String(text)) => vec![text.as_str()],
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
            None | Some(Value::Null) if role == "assistant" => Vec::new(),
            _ => {
                return Err(format!(
                    "Invalid type for 'messages[{i}].content': expected a string or an array."
                ));
            }
        };
        input_tokens += texts.iter().map(|t| word_count(t)).sum::<u64>();
        if role == "user" {
            question = texts;
        }
    }
    let max_tokens = match body.get("max_completion_tokens").or(body.get("max_tokens")) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(format!(
                    "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, \
                     but got {v} instead."
                ));
            }
        },
    };
    let stop_sequences = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(stop)) => vec![stop.as_str()],
        Some(Value::Array(stops)) => stops
            .iter()
            .map(|s| {
                s.as_str()
                    .ok_or_else(|| "Invalid type for 'stop': expected strings.".to_owned())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("Invalid type for 'stop': expected a string or an array.".to_owned()),
    };
    Ok(Prompt {
        question,
        input_tokens,
        max_tokens,
        stop_sequences,
        extras: Extras::default(),
        tools: None,
        reasoning: false,
        guardrail: false,
    })
}

fn inference_config(config: &Map<String, Value>) -> Result<(Option<u64>, Vec<&str>), String> {
    let max_tokens = match config.get("maxTokens") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(constraint(
                    &v.to_string(),
                    "inferenceConfig.maxTokens",
                    "Member must have value greater than or equal to 1",
                ));
            }
        },
    };
    for key in ["temperature", "topP"] {
        match config.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_f64() {
                Some(x) if (0.0..=1.0).contains(&x) => {}
                _ => {
                    return Err(constraint(
                        &v.to_string(),
                        &format!("inferenceConfig.{key}"),
                        "Member must be a number between 0 and 1",
                    ));
                }
            },
        }
    }
    let stop_sequences = match config.get("stopSequences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(seqs)) => seqs
            .iter()
            .map(|s| {
                s.as_str().ok_or_else(|| {
                    "Malformed input request: 'inferenceConfig.stopSequences' must hold strings."
                        .to_owned()
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(
                "Malformed input request: 'inferenceConfig.stopSequences' must be an array."
                    .to_owned(),
            );
        }
    };
    Ok((max_tokens, stop_sequences))
}

/// The text of the `{"text": ..}` blocks; other block kinds (images, tool use, cache points)
/// are accepted and ignored, as they do not change the emulated answer.
fn text_blocks<'a>(blocks: &'a [Value], at: &str) -> Result<Vec<&'a str>, String> {
    let mut texts = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.iter().enumerate() {
        let block = block
            .as_object()
            .ok_or_else(|| format!("Malformed input request: {at}.{} must be an object.", j + 1))?;
        // A content block is a union: exactly one member, as Bedrock's validation says.
        if block.len() != 1 {
            return Err(format!(
                "Malformed input request: {at}.{} must hold exactly one member, not {}.",
                j + 1,
                block.len()
            ));
        }
        match block.get("text") {
            None => {}
            Some(Value::String(text)) if text.trim().is_empty() => {
                return Err(format!(
                    "The text field in the ContentBlock object at {at}.{} is blank. Add text to \
                     the text field, and try again.",
                    j
                ));
            }
            Some(Value::String(text)) => texts.push(text.as_str()),
            Some(_) => {
                return Err(format!(
                    "Malformed input request: {at}.{}.text must be a string.",
                    j + 1
                ));
            }
        }
    }
    Ok(texts)
}

fn constraint(value: &str, at: &str, rule: &str) -> String {
    format!(
        "1 validation error detected: Value {value} at '{at}' failed to satisfy constraint: {rule}"
    )
}

fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Words the answer is padded with after the echoed question, cycled as needed.
const FILLER: &[&str] = &[
    "This",
    "is",
    "a",
    "deterministic",
    "answer",
    "from",
    "the",
    "aigw",
    "Bedrock",
    "emulator,",
    "repeated",
    "until",
    "the",
    "requested",
    "length",
    "is",
    "reached.",
];

/// `"[<model>] You asked: <question>. <filler…>"`, cut to `answer_words` words (at least one),
/// then to `maxTokens`, then before the first stop sequence found in it.
pub(crate) fn answer(model_id: &str, prompt: &Prompt<'_>, answer_words: usize) -> Answer {
    let full = answer_words.max(1) as u64;
    let limit = prompt.max_tokens.map_or(full, |max| max.min(full));
    let mut out = Words::new(limit, model_id.len() + 8 * limit as usize);

    out.push(&["[", model_id, "]"]);
    out.push(&["You"]);
    out.push(&["asked:"]);
    let mut words = prompt
        .question
        .iter()
        .flat_map(|t| t.split_whitespace())
        .peekable();
    if words.peek().is_none() {
        out.push(&["nothing."]);
    }
    while let Some(word) = words.next() {
        let ends_sentence = word.ends_with(['.', '?', '!']);
        if words.peek().is_none() && !ends_sentence {
            out.push(&[word, "."]);
        } else {
            out.push(&[word]);
        }
    }
    for word in FILLER.iter().cycle() {
        if out.is_full() {
            break;
        }
        out.push(&[word]);
    }

    let mut text = out.text;
    let mut stop_reason = if limit < full {
        StopReason::MaxTokens
    } else {
        StopReason::EndTurn
    };
    let first_stop = prompt
        .stop_sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s))
        .min();
    if let Some(at) = first_stop {
        text.truncate(at);
        stop_reason = StopReason::StopSequence;
    }
    let output_tokens = deltas(&text).count() as u64;
    Answer {
        text,
        stop_reason,
        input_tokens: prompt.input_tokens,
        output_tokens,
        cache_read: 0,
        cache_write: 0,
        tool_uses: Vec::new(),
        reasoning: None,
    }
}

/// The stream deltas of an answer, one per word, each after the first carrying its leading
/// space, so that their concatenation is exactly the unary answer's text.
pub(crate) fn deltas(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // Skip the first character (the leading space, or the first letter) so a piece
        // ends at the next space; a char boundary keeps non-ASCII text from splitting.
        let skip = rest.chars().next().map_or(0, char::len_utf8);
        let end = rest[skip..].find(' ').map_or(rest.len(), |i| i + skip);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// A space-separated word writer that stops accepting words at its limit.
struct Words {
    text: String,
    count: u64,
    limit: u64,
}

impl Words {
    fn new(limit: u64, capacity: usize) -> Self {
        Self {
            text: String::with_capacity(capacity),
            count: 0,
            limit,
        }
    }

    fn is_full(&self) -> bool {
        self.count >= self.limit
    }

    /// Appends one word made of `parts`, unless the limit is reached.
    fn push(&mut self, parts: &[&str]) {
        if self.is_full() {
            return;
        }
        if self.count > 0 {
            self.text.push(' ');
        }
        for part in parts {
            self.text.push_str(part);
        }
        self.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(text: &str) -> Value {
        json!({
            "system": [{"text": "be brief"}],
            "messages": [{"role": "user", "content": [{"text": text}]}]
        })
    }

    #[test]
    fn answer_names_model_and_echoes_question() {
        let body = body("what is  rust");
        let prompt = parse_prompt("m", &body).expect("valid");
        let a = answer("m:0", &prompt, 24);
        assert!(
            a.text
                .starts_with("[m:0] You asked: what is rust. This is a")
        );
        assert_eq!(a.text.split(' ').count(), 24);
        assert_eq!(a.output_tokens, 24);
        assert_eq!(a.input_tokens, 5);
        assert_eq!(a.stop_reason, StopReason::EndTurn);
    }

    #[test]
    fn max_tokens_truncates() {
        let mut body = body("hi");
        body["inferenceConfig"] = json!({"maxTokens": 3});
        let prompt = parse_prompt("m", &body).expect("valid");
        let a = answer("m", &prompt, 24);
        assert_eq!(a.text, "[m] You asked:");
        assert_eq!(a.output_tokens, 3);
        assert_eq!(a.stop_reason, StopReason::MaxTokens);
    }

    #[test]
    fn stop_sequence_truncates_before_it() {
        let mut body = body("hi");
        body["inferenceConfig"] = json!({"stopSequences": ["deterministic", "asked"]});
        let prompt = parse_prompt("m", &body).expect("valid");
        let a = answer("m", &prompt, 24);
        assert_eq!(a.text, "[m] You ");
        assert_eq!(a.stop_reason, StopReason::StopSequence);
    }

    #[test]
    fn deltas_concatenate_to_text() {
        let text = "[m] You asked: hi. This";
        let pieces: Vec<_> = deltas(text).collect();
        assert_eq!(pieces, ["[m]", " You", " asked:", " hi.", " This"]);
        assert_eq!(pieces.concat(), text);
        assert_eq!(deltas("").count(), 0);
        assert_eq!(deltas("a ").collect::<Vec<_>>(), ["a", " "]);
        assert_eq!(deltas("é ü").collect::<Vec<_>>(), ["é", " ü"]);
    }

    #[test]
    fn validation_rejects_bad_shapes() {
        for bad in [
            json!([]),
            json!({}),
            json!({"messages": []}),
            json!({"messages": [{"role": "bot", "content": []}]}),
            json!({"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}),
            json!({"messages": [{"role": "user"}]}),
            json!({"messages": [{"role": "user", "content": [{"text": 1}]}]}),
            json!({"messages": [{"role": "user", "content": []}], "inferenceConfig": {"maxTokens": 0}}),
            json!({"messages": [{"role": "user", "content": []}], "inferenceConfig": {"temperature": 3}}),
            // Roles must alternate.
            json!({"messages": [
                {"role": "user", "content": [{"text": "a"}]},
                {"role": "user", "content": [{"text": "b"}]}
            ]}),
            // A toolResult needs a toolConfig.
            json!({"messages": [
                {"role": "user", "content": [{"text": "a"}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": [{"text": "1"}]}}]}
            ]}),
            // Bitmaps are not among the image formats.
            json!({"messages": [{"role": "user", "content": [
                {"image": {"format": "bmp", "source": {"bytes": "AAAA"}}}
            ]}]}),
        ] {
            assert!(parse_prompt("m", &bad).is_err(), "accepted {bad}");
        }
    }
}
