//! Core [`ChatRequest`] → OpenAI chat completions JSON body.
//!
//! Pure and synchronous so it can be unit-tested without a client.

use aigw_core::{ChatRequest, Error, ErrorKind, Message, Part, ResponseFormat, ToolChoice};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<Value>,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(flatten)]
    params: Params<'a>,
}

/// One message as OpenAI takes it: text alone as a string, anything richer as parts.
fn wire_message(message: &Message) -> Value {
    let mut out = json!({"role": message.role.as_str()});
    let plain = message.content.iter().all(|p| matches!(p, Part::Text(_)));
    out["content"] = if plain {
        Value::String(message.text().into_owned())
    } else {
        let mut parts: Vec<Value> = Vec::new();
        for part in &message.content {
            match part {
                Part::Text(text) => parts.push(json!({"type": "text", "text": text})),
                Part::Image(image) => parts.push(json!({
                    "type": "image_url",
                    "image_url": {"url": format!(
                        "data:{};base64,{}", image.format.mime(), STANDARD.encode(&image.bytes)
                    )}
                })),
                Part::Document(doc) => parts.push(json!({
                    "type": "file",
                    "file": {
                        "filename": doc.name,
                        "file_data": format!("data:application/pdf;base64,{}", STANDARD.encode(&doc.bytes)),
                    }
                })),
                // The convention of Anthropic-style clients, which compatible servers
                // (LiteLLM, vLLM) read; OpenAI ignores it.
                Part::CachePoint => {
                    if let Some(last) = parts.last_mut() {
                        last["cache_control"] = json!({"type": "ephemeral"});
                    }
                }
            }
        }
        Value::Array(parts)
    };
    if !message.tool_calls.is_empty() {
        out["tool_calls"] = message
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments}
                })
            })
            .collect();
        if plain && message.text().is_empty() {
            out["content"] = Value::Null;
        }
    }
    if let Some(id) = &message.tool_call_id {
        out["tool_call_id"] = Value::String(id.clone());
    }
    if let Some(reasoning) = &message.reasoning {
        out["reasoning_content"] = Value::String(reasoning.text.clone());
    }
    out
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
    if let Some(fields) = request.model_fields.as_deref() {
        // OpenAI's API has no place for them; dropping them would change the answer.
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        return Err(Error::invalid_request(format!(
            "model-specific fields ({}) are passed to Bedrock targets only; {model} is an \
             OpenAI-compatible target",
            names.join(", ")
        )));
    }
    let body = Body {
        model,
        messages: request.messages.iter().map(wire_message).collect(),
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
        tools: request
            .tools
            .iter()
            .map(|t| {
                let mut function = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    function["description"] = Value::String(d.clone());
                }
                json!({"type": "function", "function": function})
            })
            .collect(),
        tool_choice: request.tool_choice.as_ref().map(|c| match c {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
        }),
        parallel_tool_calls: request.parallel_tool_calls,
        reasoning_effort: request.reasoning_effort.map(|e| e.as_str()),
        response_format: request.response_format.as_deref().map(|f| match f {
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { name, schema } => json!({
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema}
            }),
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
                Message::new(Role::System, "be brief"),
                Message::new(Role::User, "hi"),
            ]
            .into(),
            ..ChatRequest::default()
        }
    }

    fn body(request: &ChatRequest, params: &[(String, String)]) -> Value {
        serde_json::from_slice(&to_body(request, "gpt-4o-mini", params).unwrap()).unwrap()
    }

    #[test]
    fn model_fields_are_refused_by_name_rather_than_dropped() {
        let mut fields = serde_json::Map::new();
        fields.insert("top_k".to_owned(), json!(5));
        let request = ChatRequest {
            model_fields: Some(Arc::new(fields)),
            ..request()
        };
        let error = to_body(&request, "gpt-4o-mini", &[]).expect_err("refused");
        assert!(error.message().contains("(top_k)"), "{error}");
        assert!(error.message().contains("gpt-4o-mini"), "{error}");
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

    #[test]
    fn tools_tool_turns_images_and_reasoning_pass_through() {
        let mut asked = Message::new(Role::Assistant, "");
        asked.content.clear();
        asked.tool_calls = vec![aigw_core::ToolCall {
            id: "t1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Krakow"}"#.into(),
        }];
        let mut result = Message::new(Role::Tool, "sunny");
        result.tool_call_id = Some("t1".into());
        let mut look = Message::new(Role::User, "look");
        look.content.push(aigw_core::Part::CachePoint);
        look.content.push(aigw_core::Part::Image(aigw_core::Image {
            format: aigw_core::ImageFormat::Png,
            bytes: Arc::from(&b"png"[..]),
        }));
        let request = ChatRequest {
            messages: vec![look, asked, result].into(),
            tools: Arc::from([aigw_core::Tool {
                name: "get_weather".into(),
                description: None,
                parameters: json!({"type": "object"}),
                cache_point: false,
            }]),
            tool_choice: Some(aigw_core::ToolChoice::Function("get_weather".into())),
            parallel_tool_calls: Some(false),
            reasoning_effort: Some(aigw_core::ReasoningEffort::High),
            response_format: Some(Arc::new(aigw_core::ResponseFormat::JsonObject)),
            ..ChatRequest::default()
        };
        let value = body(&request, &[]);
        assert_eq!(
            value["messages"][0]["content"],
            json!([
                {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,cG5n"}}
            ])
        );
        assert_eq!(value["messages"][1]["content"], Value::Null);
        assert_eq!(
            value["messages"][1]["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Krakow"}"#
        );
        assert_eq!(value["messages"][2]["tool_call_id"], "t1");
        assert_eq!(value["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(value["tool_choice"]["function"]["name"], "get_weather");
        assert_eq!(value["parallel_tool_calls"], false);
        assert_eq!(value["reasoning_effort"], "high");
        assert_eq!(value["response_format"], json!({"type": "json_object"}));
    }
}
