//! Core [`ChatRequest`] → OpenAI chat completions JSON body.
//!
//! Pure and synchronous so it can be unit-tested without a client.

use aigw_core::{ChatRequest, Error, ErrorKind};
use serde::Serialize;
use serde::ser::SerializeMap;

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    params: Params<'a>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// `auth.param_*` with `param_location: body`, as extra top-level fields.
struct Params<'a>(&'a [(String, String)]);

impl Serialize for Params<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The JSON body for `request` to `model`, with `body_params` added at the top level.
/// Settings the request leaves unset (after the driver shell filled in the target's
/// defaults) are left out, so the upstream's own defaults apply.
pub(crate) fn to_body(
    request: &ChatRequest,
    model: &str,
    body_params: &[(String, String)],
) -> Result<Vec<u8>, Error> {
    if request.messages.is_empty() {
        return Err(Error::invalid_request(
            "the conversation needs at least one message",
        ));
    }
    let body = Body {
        model,
        messages: request
            .messages
            .iter()
            .map(|m| WireMessage {
                role: m.role.as_str(),
                content: &m.content,
            })
            .collect(),
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        stop: &request.stop,
        stream: request.stream,
        // Without it OpenAI sends no token counts in a stream, and the core stream contract
        // ends with a usage chunk.
        stream_options: request.stream.then_some(StreamOptions {
            include_usage: true,
        }),
        params: Params(body_params),
    };
    serde_json::to_vec(&body).map_err(|err| {
        Error::new(
            ErrorKind::Internal,
            format!("could not encode the openai request: {err}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aigw_core::{Message, Role};
    use serde_json::{Value, json};

    use super::*;

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message {
                    role: Role::System,
                    content: "be brief".into(),
                },
                Message {
                    role: Role::User,
                    content: "hi".into(),
                },
            ]
            .into(),
            ..ChatRequest::default()
        }
    }

    fn body(request: &ChatRequest, params: &[(String, String)]) -> Value {
        serde_json::from_slice(&to_body(request, "gpt-4o-mini", params).unwrap()).unwrap()
    }

    #[test]
    fn plain_request_has_only_what_was_asked() {
        let value = body(&request(), &[]);
        assert_eq!(
            value,
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"}
                ],
                "stream": false
            })
        );
    }

    #[test]
    fn request_settings_are_sent() {
        let asked = ChatRequest {
            max_tokens: Some(10),
            temperature: Some(0.0),
            top_p: Some(0.9),
            stop: Arc::from(vec!["END".to_owned()]),
            ..request()
        };
        let value = body(&asked, &[]);
        assert_eq!(value["max_tokens"], 10);
        assert_eq!(value["temperature"], 0.0);
        assert_eq!(
            value["top_p"].as_f64().map(|v| (v * 100.0).round()),
            Some(90.0)
        );
        assert_eq!(value["stop"], json!(["END"]));
    }

    #[test]
    fn streams_ask_for_usage_and_body_params_are_added() {
        let streaming = ChatRequest {
            stream: true,
            ..request()
        };
        let value = body(&streaming, &[("api_key".to_owned(), "k".to_owned())]);
        assert_eq!(value["stream"], true);
        assert_eq!(value["stream_options"], json!({"include_usage": true}));
        assert_eq!(value["api_key"], "k");
    }

    #[test]
    fn empty_conversation_is_a_client_error() {
        let err = to_body(&ChatRequest::default(), "m", &[]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    }
}
