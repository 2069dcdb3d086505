//! OpenAI-shaped [`ChatRequest`] → Converse input.
//!
//! Pure and synchronous so it can be unit-tested without a client; the same parts feed
//! both Converse and ConverseStream.

use aigw_core::{ChatRequest, Error, ErrorKind, Role};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message, SystemContentBlock,
};

/// The pieces of a Converse (or ConverseStream) call that come from the client's request.
#[derive(Debug, Clone, PartialEq)]
pub struct ConverseParts {
    /// Alternating user/assistant turns, starting with a user turn.
    pub messages: Vec<Message>,
    /// System prompts, hoisted out of the conversation because Converse takes them apart.
    pub system: Option<Vec<SystemContentBlock>>,
    /// Sampling and length settings; `None` when the request sets none.
    pub inference: Option<InferenceConfiguration>,
}

/// Translates a chat request, whose unset settings the driver shell already filled with
/// the target's defaults.
pub fn to_converse(request: &ChatRequest) -> Result<ConverseParts, Error> {
    let mut system = Vec::new();
    // Bedrock requires strict user/assistant alternation, while OpenAI clients freely send
    // several turns of one role in a row; those become one message with several blocks.
    let mut turns: Vec<(ConversationRole, Vec<ContentBlock>)> = Vec::new();
    for (index, message) in request.messages.iter().enumerate() {
        // Bedrock refuses blank text blocks with a ValidationException; saying so here
        // names the message and spares a round trip.
        if message.content.trim().is_empty() {
            return Err(Error::invalid_request(format!(
                "messages[{index}].content is empty; bedrock does not accept blank messages"
            )));
        }
        let role = match message.role {
            Role::System => {
                system.push(SystemContentBlock::Text(message.content.clone()));
                continue;
            }
            Role::User => ConversationRole::User,
            Role::Assistant => ConversationRole::Assistant,
        };
        let block = ContentBlock::Text(message.content.clone());
        match turns.last_mut() {
            Some((last_role, blocks)) if *last_role == role => blocks.push(block),
            _ => turns.push((role, vec![block])),
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

    let messages = turns
        .into_iter()
        .map(|(role, content)| {
            Message::builder()
                .role(role)
                .set_content(Some(content))
                .build()
                .map_err(|err| {
                    Error::new(
                        ErrorKind::Internal,
                        format!("could not build a bedrock message: {err}"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;

    Ok(ConverseParts {
        messages,
        system: (!system.is_empty()).then_some(system),
        inference: inference_config(request)?,
    })
}

fn inference_config(request: &ChatRequest) -> Result<Option<InferenceConfiguration>, Error> {
    let max_tokens = request
        .max_tokens
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
        ChatMessage {
            role,
            content: content.to_owned(),
        }
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
        let parts = to_converse(&req).unwrap();
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
        let parts = to_converse(&request(vec![msg(Role::User, "hi")])).unwrap();
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
        let parts = to_converse(&req).unwrap();
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
        let err = to_converse(&request(vec![
            msg(Role::System, "s"),
            msg(Role::Assistant, "hello"),
        ]))
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        assert!(err.message().contains("start with a user message"), "{err}");
    }

    #[test]
    fn system_only_is_rejected() {
        let err = to_converse(&request(vec![msg(Role::System, "s")])).unwrap_err();
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
        let inference = to_converse(&req).unwrap().inference.unwrap();
        assert_eq!(inference.max_tokens(), Some(10));
        assert_eq!(inference.temperature(), Some(0.0));
        assert_eq!(inference.top_p(), Some(0.1));
        assert_eq!(inference.stop_sequences(), ["END"]);
    }

    #[test]
    fn huge_max_tokens_is_a_client_error() {
        let req = ChatRequest {
            max_tokens: Some(u32::MAX),
            ..request(vec![msg(Role::User, "hi")])
        };
        let err = to_converse(&req).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    }
}

#[cfg(test)]
#[path = "request_props.rs"]
mod props;
