//! Property tests: the OpenAI request parser never panics, whatever the body, and what it
//! accepts is a request the rest of the gateway can rely on.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{WireRequest, decode_json};
use aigw_core::{ChatRequest, ErrorKind};

/// Mostly the right shape with wrong values here and there, so cases reach deep into the
/// decoder rather than failing on the first byte.
fn content() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::from),
        Just(Value::from("")),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        prop::collection::vec(
            (
                prop_oneof![Just("text"), Just("image_url"), Just("")],
                any::<Option<String>>()
            )
                .prop_map(|(kind, text)| json!({"type": kind, "text": text})),
            0..3,
        )
        .prop_map(Value::from),
    ]
}

fn message() -> impl Strategy<Value = Value> {
    let role = prop_oneof![
        Just(Value::from("user")),
        Just(Value::from("assistant")),
        Just(Value::from("system")),
        Just(Value::from("developer")),
        any::<String>().prop_map(Value::from),
        any::<u8>().prop_map(Value::from),
    ];
    (role, content()).prop_map(|(role, content)| json!({"role": role, "content": content}))
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u32>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn request_json() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(message(), 0..4),
        number(),
        number(),
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<String>().prop_map(Value::from)
        ],
        prop_oneof![
            Just(Value::Null),
            any::<String>().prop_map(Value::from),
            prop::collection::vec(any::<String>(), 0..3).prop_map(Value::from)
        ],
        prop_oneof![Just(Value::Null), any::<u32>().prop_map(Value::from)],
    )
        .prop_map(|(messages, max_tokens, temperature, stream, stop, n)| {
            json!({
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "stream": stream,
                "stop": stop,
                "n": n,
            })
        })
}

fn parse(body: &[u8]) -> Result<ChatRequest, aigw_core::Error> {
    let wire: WireRequest = decode_json(body)?;
    ChatRequest::try_from(wire)
}

fn check(body: &[u8]) -> Result<(), TestCaseError> {
    match parse(body) {
        Ok(request) => {
            prop_assert!(!request.messages.is_empty());
        }
        Err(error) => {
            prop_assert_eq!(error.kind(), ErrorKind::InvalidRequest);
            prop_assert!(!error.message().is_empty());
        }
    }
    Ok(())
}

proptest! {
    // Bounded so the whole suite stays quick on CI's two cores.
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn shaped_requests_parse_or_fail_cleanly(value in request_json(), cut in any::<prop::sample::Index>()) {
        let body = serde_json::to_vec(&value).unwrap_or_default();
        check(&body)?;
        // The same body truncated anywhere, as a client that died mid-send leaves it.
        let at = cut.index(body.len() + 1);
        check(&body[..at])?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        check(&body)?;
    }
}
