//! Property test: any chat request maps to Converse input Bedrock accepts, or to a clear
//! invalid-request error; never a panic.

use std::sync::Arc;

use aigw_core::{ChatRequest, ErrorKind, Message as ChatMessage, RequestDefaults, Role};
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole};
use proptest::prelude::*;

use super::to_converse;

fn chat_message() -> impl Strategy<Value = ChatMessage> {
    let role = prop_oneof![Just(Role::System), Just(Role::User), Just(Role::Assistant)];
    let content = prop_oneof![any::<String>(), Just(String::new()), Just(" \n".to_owned())];
    (role, content).prop_map(|(role, content)| ChatMessage::new(role, content))
}

fn chat_request() -> impl Strategy<Value = ChatRequest> {
    (
        prop::collection::vec(chat_message(), 0..6),
        any::<Option<u32>>(),
        any::<Option<f32>>(),
        any::<Option<f32>>(),
        prop::collection::vec(any::<String>(), 0..3),
    )
        .prop_map(
            |(messages, max_tokens, temperature, top_p, stop)| ChatRequest {
                messages: messages.into(),
                max_tokens,
                temperature,
                top_p,
                stop: Arc::from(stop),
                ..ChatRequest::default()
            },
        )
}

proptest! {
    // Bounded so the whole suite stays quick on CI's two cores.
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_request_maps_or_fails_cleanly(mut request in chat_request(), max_tokens in any::<Option<u32>>()) {
        // As the driver shell hands it over: with the target's defaults filled in.
        RequestDefaults { max_tokens, temperature: None, top_p: None }.fill(&mut request);
        match to_converse(&request, "m") {
            Ok(parts) => {
                // What Bedrock insists on: starts with a user turn, roles alternate, and
                // no text block is blank.
                prop_assert_eq!(parts.messages.first().map(|m| m.role().clone()), Some(ConversationRole::User));
                for pair in parts.messages.windows(2) {
                    prop_assert_ne!(pair[0].role(), pair[1].role());
                }
                for message in &parts.messages {
                    for block in message.content() {
                        if let ContentBlock::Text(text) = block {
                            prop_assert!(!text.trim().is_empty());
                        }
                    }
                }
            }
            Err(error) => prop_assert_eq!(error.kind(), ErrorKind::InvalidRequest),
        }
    }
}
