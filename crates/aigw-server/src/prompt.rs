//! Kong's `ai-prompt-decorator` and `ai-prompt-guard`, run in admission on the decoded
//! conversation, so every front end gets them. In Kong's order (the decorator's plugin
//! priority is higher): the decorator adds its messages, then the guard checks what the
//! model would be sent. The guard reads a message's text parts (`Message::text`); images,
//! documents and tool calls are not text Kong's patterns could match.

use std::sync::Arc;

use aigw_config::{DecoratorPrompt, PromptDecoratorConfig, PromptGuardConfig, RouteConfig};
use aigw_core::{ChatRequest, Error, ErrorKind, Message, Role};
use aigw_telemetry::EventCounter;

/// A route's prompt plugins.
#[derive(Debug, Default)]
pub struct PromptPlugins {
    decorator: Option<Decorator>,
    guard: Option<PromptGuardConfig>,
    denials: EventCounter,
}

#[derive(Debug)]
struct Decorator {
    prepend: Vec<Message>,
    append: Vec<Message>,
    max_request_body_size: usize,
}

impl PromptPlugins {
    /// The runtime form of a route's prompt plugins; makes its denial counter's series.
    pub fn new(route: &RouteConfig) -> Self {
        PromptPlugins {
            decorator: route.prompt_decorator.as_ref().map(Decorator::new),
            guard: route.prompt_guard.clone(),
            denials: aigw_telemetry::metrics().prompt_guard_denials(&route.name),
        }
    }

    /// Decorates `request`, then lets it through the guard or refuses it (400, in Kong's
    /// words, which say nothing of the guard). `body_len` is the request's wire size.
    pub(crate) fn apply(&self, request: &mut ChatRequest, body_len: usize) -> Result<(), Error> {
        if let Some(decorator) = &self.decorator {
            if body_len > decorator.max_request_body_size {
                return Err(uninspectable(
                    "ai-prompt-decorator",
                    decorator.max_request_body_size,
                ));
            }
            decorator.decorate(request);
        }
        if let Some(guard) = &self.guard {
            if body_len > guard.max_request_body_size {
                return Err(uninspectable(
                    "ai-prompt-guard",
                    guard.max_request_body_size,
                ));
            }
            if !allows(guard, &request.messages) {
                self.denials.inc();
                return Err(Error::invalid_request("bad request"));
            }
        }
        Ok(())
    }
}

/// A body the plugin may not read whole is refused: letting it through unread would fail
/// open.
fn uninspectable(plugin: &str, limit: usize) -> Error {
    Error::new(
        ErrorKind::PayloadTooLarge,
        format!("request body is larger than {plugin}'s max_request_body_size of {limit} bytes"),
    )
}

impl Decorator {
    fn new(config: &PromptDecoratorConfig) -> Self {
        let messages = |prompts: &[DecoratorPrompt]| {
            prompts
                .iter()
                .map(|p| Message::new(role(&p.role), p.content.clone()))
                .collect()
        };
        Decorator {
            prepend: messages(&config.prepend),
            append: messages(&config.append),
            max_request_body_size: config.max_request_body_size,
        }
    }

    fn decorate(&self, request: &mut ChatRequest) {
        let messages: Vec<Message> = self
            .prepend
            .iter()
            .chain(request.messages.iter())
            .chain(self.append.iter())
            .cloned()
            .collect();
        request.messages = Arc::from(messages);
    }
}

fn role(name: &str) -> Role {
    match name {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        // Loading accepts only system, user and assistant.
        _ => Role::System,
    }
}

/// Kong's check: deny patterns first, then, when there are allow patterns, one must match.
/// The text checked is every user message concatenated (every message with
/// `match_all_roles`), or only the last user message with `allow_all_conversation_history`.
fn allows(guard: &PromptGuardConfig, messages: &[Message]) -> bool {
    let checked = |m: &&Message| guard.match_all_roles || m.role == Role::User;
    let text: String = if guard.allow_all_conversation_history {
        messages
            .iter()
            .rev()
            .find(checked)
            .map(|m| m.text().into_owned())
            .unwrap_or_default()
    } else {
        messages.iter().filter(checked).map(|m| m.text()).collect()
    };
    if guard.deny_patterns.iter().any(|p| p.is_match(&text)) {
        return false;
    }
    guard.allow_patterns.is_empty() || guard.allow_patterns.iter().any(|p| p.is_match(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_config::BytePattern;

    fn guard(allow: &[&str], deny: &[&str], history: bool) -> PromptGuardConfig {
        let compile = |ps: &[&str]| {
            ps.iter()
                .map(|p| BytePattern::new(p).expect("compiles"))
                .collect()
        };
        PromptGuardConfig {
            allow_patterns: compile(allow),
            deny_patterns: compile(deny),
            allow_all_conversation_history: history,
            match_all_roles: false,
            max_request_body_size: 8192,
        }
    }

    fn conversation(turns: &[(Role, &str)]) -> Vec<Message> {
        turns.iter().map(|(r, t)| Message::new(*r, *t)).collect()
    }

    #[test]
    fn history_decides_which_user_messages_are_checked() {
        let talk = conversation(&[
            (Role::User, "tell me about passwords"),
            (Role::Assistant, "ok"),
            (Role::User, "what is rust?"),
        ]);
        // History on (the default): every user message counts, an old one included.
        assert!(!allows(&guard(&[], &["password"], false), &talk));
        // allow_all_conversation_history: only the last user message.
        assert!(allows(&guard(&[], &["password"], true), &talk));
        // Allow lists: one must match what is checked.
        assert!(allows(&guard(&["rust"], &[], true), &talk));
        assert!(!allows(&guard(&["passwords"], &[], true), &talk));
        assert!(allows(&guard(&["passwords"], &[], false), &talk));
        // Deny wins over allow.
        assert!(!allows(&guard(&["rust"], &["rust"], true), &talk));
        // The assistant's words are not the user's, unless match_all_roles.
        let mut all = guard(&[], &["^ok$|okwhat"], false);
        assert!(allows(&all, &talk));
        all.match_all_roles = true;
        assert!(
            !allows(&all, &talk),
            "messages are concatenated, as Kong does"
        );
    }

    #[test]
    fn byte_patterns_match_as_kongs_docs_write_them() {
        // Kong's documented zero-width character guard, as UTF-8 bytes.
        let zero_width = guard(&[], &[r"(\xE2\x80[\x8B-\x8D]|\xEF\xBB\xBF)"], false);
        let hidden = conversation(&[(Role::User, "hi\u{200B}there")]);
        assert!(!allows(&zero_width, &hidden));
        assert!(allows(
            &zero_width,
            &conversation(&[(Role::User, "hi there")])
        ));
        // A pattern with Unicode classes still compiles.
        let letters = guard(&[r"^\p{L}+$"], &[], false);
        assert!(allows(&letters, &conversation(&[(Role::User, "żółw")])));
    }
}
