//! Kong's `ai-prompt-guard` and `ai-prompt-decorator`, read from the decK file unchanged.
//!
//! The guard's patterns are compiled once, here, with the `regex` crate (linear-time
//! matching, so a prompt cannot make a pattern backtrack). Kong runs them with PCRE over
//! the prompt's bytes, so they are compiled over bytes too, without Unicode classes, and
//! `\xE2\x80[\x8B-\x8D]`, as Kong's docs write zero-width characters, means those bytes; a
//! pattern that needs Unicode (`\p{L}`) is compiled with it. A pattern the crate cannot
//! compile either way is refused at its `config.deny_patterns[i]` with file:line.

use std::fmt;

use serde::Deserialize;

use crate::ConfigError;
use crate::path::FieldPath;
use crate::raw::Int;
use crate::validate::Cx;

/// Kong's `ai-prompt-guard`.
pub(crate) const AI_PROMPT_GUARD: &str = "ai-prompt-guard";
/// Kong's `ai-prompt-decorator`.
pub(crate) const AI_PROMPT_DECORATOR: &str = "ai-prompt-decorator";

/// Kong's schema limits: at most 10 patterns a list, each 1 to 500 characters.
const MAX_PATTERNS: usize = 10;
const MAX_PATTERN_LEN: usize = 500;
/// Kong's schema limits for the decorator: at most 15 messages a list, each 1 to 100 000
/// characters.
const MAX_PROMPTS: usize = 15;
const MAX_PROMPT_LEN: usize = 100_000;
/// Both plugins' `max_request_body_size` default, 8 KiB.
const DEFAULT_BODY_SIZE: usize = 8 * 1024;

/// A guard pattern compiled over bytes; compares by its source.
#[derive(Clone)]
pub struct BytePattern(regex::bytes::Regex);

impl BytePattern {
    /// Compiles `source` over bytes, with Unicode classes only when it needs them.
    pub fn new(source: &str) -> Result<Self, String> {
        let bytes = regex::bytes::RegexBuilder::new(source)
            .unicode(false)
            .build();
        match bytes {
            Ok(regex) => Ok(BytePattern(regex)),
            Err(_) => regex::bytes::Regex::new(source)
                .map(BytePattern)
                .map_err(|err| err.to_string()),
        }
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text.as_bytes())
    }

    /// The pattern's source.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for BytePattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for BytePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BytePattern({:?})", self.as_str())
    }
}

/// An `ai-prompt-guard` config with Kong's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptGuardConfig {
    /// `allow_patterns`: when any, the prompt must match one.
    pub allow_patterns: Vec<BytePattern>,
    /// `deny_patterns`: a prompt matching one is refused, whatever the allow list says.
    pub deny_patterns: Vec<BytePattern>,
    /// `allow_all_conversation_history` (default false): when true only the last user
    /// message is checked, else every user message, concatenated.
    pub allow_all_conversation_history: bool,
    /// `match_all_roles` (default false): check every role's messages, not only `user`.
    pub match_all_roles: bool,
    /// `max_request_body_size` (default 8192): the largest body the plugin inspects.
    pub max_request_body_size: usize,
}

/// An `ai-prompt-decorator` config with Kong's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptDecoratorConfig {
    /// `prompts.prepend`: put before the conversation, in this order.
    pub prepend: Vec<DecoratorPrompt>,
    /// `prompts.append`: put after the conversation, in this order.
    pub append: Vec<DecoratorPrompt>,
    /// `max_request_body_size` (default 8192): the largest body the plugin decorates.
    pub max_request_body_size: usize,
}

/// One message of `prompts.prepend` or `prompts.append`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoratorPrompt {
    /// `role`: `system` (the default), `user` or `assistant`.
    pub role: String,
    /// `content`.
    pub content: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct PromptGuardRaw {
    allow_patterns: Option<Vec<String>>,
    deny_patterns: Option<Vec<String>>,
    allow_all_conversation_history: Option<bool>,
    match_all_roles: Option<bool>,
    max_request_body_size: Option<Int>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct PromptDecoratorRaw {
    prompts: Option<PromptsRaw>,
    max_request_body_size: Option<Int>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
struct PromptsRaw {
    prepend: Option<Vec<PromptRaw>>,
    append: Option<Vec<PromptRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
struct PromptRaw {
    role: Option<String>,
    content: Option<String>,
}

impl Cx<'_> {
    pub(crate) fn prompt_guard(
        &self,
        base: &FieldPath,
        raw: PromptGuardRaw,
    ) -> Result<PromptGuardConfig, ConfigError> {
        let allow_patterns = self.patterns(base, "allow_patterns", raw.allow_patterns)?;
        let deny_patterns = self.patterns(base, "deny_patterns", raw.deny_patterns)?;
        if allow_patterns.is_empty() && deny_patterns.is_empty() {
            return Err(self.invalid(
                base,
                "at least one of allow_patterns or deny_patterns is required",
            ));
        }
        let history = raw.allow_all_conversation_history.unwrap_or(false);
        let all_roles = raw.match_all_roles.unwrap_or(false);
        if all_roles && history {
            // Kong's entity check: matching every role means reading the whole history.
            return Err(self.invalid(
                &base.key("match_all_roles"),
                "match_all_roles: true needs allow_all_conversation_history: false",
            ));
        }
        Ok(PromptGuardConfig {
            allow_patterns,
            deny_patterns,
            allow_all_conversation_history: history,
            match_all_roles: all_roles,
            max_request_body_size: self.body_size(base, raw.max_request_body_size)?,
        })
    }

    pub(crate) fn prompt_decorator(
        &self,
        base: &FieldPath,
        raw: PromptDecoratorRaw,
    ) -> Result<PromptDecoratorConfig, ConfigError> {
        let prompts = raw.prompts.unwrap_or_default();
        let at = base.key("prompts");
        let prepend = self.prompts(&at.key("prepend"), prompts.prepend)?;
        let append = self.prompts(&at.key("append"), prompts.append)?;
        if prepend.is_empty() && append.is_empty() {
            return Err(self.invalid(
                &at,
                "at least one of prompts.prepend or prompts.append is required",
            ));
        }
        Ok(PromptDecoratorConfig {
            prepend,
            append,
            max_request_body_size: self.body_size(base, raw.max_request_body_size)?,
        })
    }

    fn patterns(
        &self,
        base: &FieldPath,
        field: &str,
        sources: Option<Vec<String>>,
    ) -> Result<Vec<BytePattern>, ConfigError> {
        let at = base.key(field);
        let sources = sources.unwrap_or_default();
        if sources.len() > MAX_PATTERNS {
            return Err(self.invalid(
                &at,
                format!("at most {MAX_PATTERNS} patterns, got {}", sources.len()),
            ));
        }
        sources
            .iter()
            .enumerate()
            .map(|(i, source)| {
                let here = at.index(i);
                let chars = source.chars().count();
                if chars == 0 || chars > MAX_PATTERN_LEN {
                    return Err(self.invalid(
                        &here,
                        format!("a pattern is 1 to {MAX_PATTERN_LEN} characters, got {chars}"),
                    ));
                }
                BytePattern::new(source)
                    .map_err(|err| self.invalid(&here, format!("pattern does not compile: {err}")))
            })
            .collect()
    }

    fn prompts(
        &self,
        at: &FieldPath,
        raw: Option<Vec<PromptRaw>>,
    ) -> Result<Vec<DecoratorPrompt>, ConfigError> {
        let raw = raw.unwrap_or_default();
        if raw.len() > MAX_PROMPTS {
            return Err(self.invalid(
                at,
                format!("at most {MAX_PROMPTS} messages, got {}", raw.len()),
            ));
        }
        raw.into_iter()
            .enumerate()
            .map(|(i, prompt)| {
                let here = at.index(i);
                let role = prompt.role.unwrap_or_else(|| "system".to_owned());
                if !["system", "user", "assistant"].contains(&role.as_str()) {
                    return Err(self.invalid(
                        &here.key("role"),
                        format!("unknown value {role:?}, expected one of system, user, assistant"),
                    ));
                }
                let content = prompt
                    .content
                    .ok_or_else(|| self.invalid(&here.key("content"), "required field missing"))?;
                let chars = content.chars().count();
                if chars == 0 || chars > MAX_PROMPT_LEN {
                    return Err(self.invalid(
                        &here.key("content"),
                        format!("content is 1 to {MAX_PROMPT_LEN} characters, got {chars}"),
                    ));
                }
                Ok(DecoratorPrompt { role, content })
            })
            .collect()
    }

    fn body_size(&self, base: &FieldPath, raw: Option<Int>) -> Result<usize, ConfigError> {
        match raw {
            None => Ok(DEFAULT_BODY_SIZE),
            Some(Int(v)) if v > 0 => usize::try_from(v)
                .map_err(|_| self.invalid(&base.key("max_request_body_size"), "too large")),
            Some(Int(v)) => Err(self.invalid(
                &base.key("max_request_body_size"),
                format!("must be greater than 0, got {v}"),
            )),
        }
    }
}
