//! The whole chat API through aigw over Bedrock (the emulator): tool calls, images,
//! reasoning, prompt caching and guardrails, seen by the official OpenAI Python SDK, by
//! plain HTTP and by gRPC's generated stubs.

use aigw_emulator::ModelKnobs;
use aigw_proto::v1 as pb;
use aigw_tests::{Stack, config_from, grpc_client, run_sdk_script};
use serde_json::{Value, json};

/// A Claude model id: it takes a thinking budget, so reasoning can be exercised.
const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

/// One route, `claude`, which clients name as their `model`.
fn deck() -> String {
    format!(
        "_format_version: \"3.0\"\nservices:\n- name: svc\n  host: localhost\n  routes:\n  \
         - name: claude\n    paths:\n    - /claude\n    plugins:\n    - name: ai-proxy-advanced\n      \
         config:\n        targets:\n        - model:\n            provider: bedrock\n            \
         name: \"{CLAUDE}\"\n            options:\n              bedrock:\n                \
         aws_region: us-west-2\n          route_type: llm/v1/chat\n"
    )
}

async fn stack() -> Stack {
    Stack::start(&config_from(&deck())).await
}

/// Runs `scenario` of tests/python/chat_api.py against the stack's gateway.
async fn sdk(stack: &Stack, scenario: &str) {
    run_sdk_script("chat_api.py", &[&stack.url("/v1"), "claude", scenario]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_runs_a_tool_loop_unary_and_streaming() {
    sdk(&stack().await, "tool_loop").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_assembles_parallel_tool_calls() {
    sdk(&stack().await, "parallel").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_sees_reasoning_and_sends_it_back() {
    sdk(&stack().await, "reasoning").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_sees_cache_writes_then_cached_tokens() {
    sdk(&stack().await, "cached_tokens").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_sees_a_guardrail_as_content_filter() {
    let stack = stack().await;
    stack
        .emulator
        .knobs()
        .set_default(ModelKnobs::with_guardrail_intervening());
    sdk(&stack, "guardrail").await;
    // The guardrail named in the body reached Bedrock as its guardrailConfig.
    let seen = stack.emulator.requests();
    assert!(
        seen.iter()
            .all(|r| r.body["guardrailConfig"]["guardrailIdentifier"] == "gr-test"),
        "{:?}",
        seen.iter()
            .map(|r| &r.body["guardrailConfig"])
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_gets_a_400_naming_n() {
    sdk(&stack().await, "two_choices").await;
}

/// POSTs `body` to `/v1/chat/completions`.
async fn post(stack: &Stack, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(stack.url("/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A tiny PNG (a 1×1 pixel), as base64.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

#[tokio::test]
async fn a_data_uri_image_reaches_bedrock_as_the_same_bytes() {
    let stack = stack().await;
    for (mime, format) in [
        ("image/png", "png"),
        ("image/jpeg", "jpeg"),
        ("image/gif", "gif"),
        ("image/webp", "webp"),
    ] {
        stack.emulator.clear_requests();
        let body = json!({
            "model": "claude",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{PNG}")}}
            ]}]
        });
        let (status, answer) = post(&stack, &body).await;
        assert_eq!(status, 200, "{answer}");
        let seen = stack.emulator.requests();
        let image = &seen[0].body["messages"][0]["content"][1]["image"];
        assert_eq!(image["format"], format);
        // The SDK sends the bytes base64-encoded on the JSON wire; the same text means the
        // same bytes.
        assert_eq!(image["source"]["bytes"], PNG);
    }
}

#[tokio::test]
async fn an_image_url_is_refused_by_default() {
    let stack = stack().await;
    let body = json!({
        "model": "claude",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}]
    });
    let (status, answer) = post(&stack, &body).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("messages[0].content[0].image_url") && message.contains("not fetched"),
        "{message}"
    );
    assert!(
        stack.emulator.requests().is_empty(),
        "nothing reached bedrock"
    );
}

#[tokio::test]
async fn an_unsupported_image_type_is_a_400_naming_the_part() {
    let stack = stack().await;
    let body = json!({
        "model": "claude",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": format!("data:image/bmp;base64,{PNG}")}}
        ]}]
    });
    let (status, answer) = post(&stack, &body).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("image/bmp"), "{message}");
}

#[tokio::test]
async fn tool_arguments_that_are_not_json_are_a_400_naming_the_message() {
    let stack = stack().await;
    let body = json!({
        "model": "claude",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{city: Krakow"}}
            ]},
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    });
    let (status, answer) = post(&stack, &body).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("messages[1].tool_calls[0].function.arguments"),
        "{message}"
    );
}

#[tokio::test]
async fn tool_choice_none_with_tool_turns_sends_them_as_text() {
    let stack = stack().await;
    let body = json!({
        "model": "claude",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Krakow\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "none"
    });
    let (status, answer) = post(&stack, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(answer["choices"][0]["message"].get("tool_calls").is_none());
    let seen = stack.emulator.requests();
    assert!(seen[0].body.get("toolConfig").is_none(), "{}", seen[0].body);
}

#[tokio::test]
async fn response_format_json_schema_is_answered_as_content() {
    let stack = stack().await;
    let body = json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "A city, please."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
            "required": ["name", "population"]
        }}}
    });
    let (status, answer) = post(&stack, &body).await;
    assert_eq!(status, 200, "{answer}");
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["message"].get("tool_calls").is_none());
    let content: Value = serde_json::from_str(choice["message"]["content"].as_str().unwrap_or(""))
        .expect("the content is JSON");
    assert_eq!(content, json!({"name": "name-value", "population": 1}));
}

#[tokio::test]
async fn grpc_runs_a_tool_loop_with_generated_stubs() {
    let stack = stack().await;
    let mut client = grpc_client(&stack.gateway).await;
    let tool = pb::Tool {
        name: "get_weather".into(),
        description: Some("The weather in a city.".into()),
        parameters_json: json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        })
        .to_string(),
        cache_point: false,
    };
    let question = pb::Message {
        role: "user".into(),
        content: "What is the weather in Krakow?".into(),
        ..pb::Message::default()
    };
    let request = pb::ChatRequest {
        route: "claude".into(),
        messages: vec![question.clone()],
        tools: vec![tool.clone()],
        ..pb::ChatRequest::default()
    };
    let first = client
        .chat(request.clone())
        .await
        .expect("an answer")
        .into_inner();
    let choice = &first.choices[0];
    assert_eq!(choice.finish_reason, "tool_calls");
    let asked = choice.message.clone().expect("a message");
    assert_eq!(asked.tool_calls.len(), 1);
    let call = &asked.tool_calls[0];
    assert_eq!(call.name, "get_weather");
    let arguments: Value = serde_json::from_str(&call.arguments).expect("JSON arguments");
    assert_eq!(arguments["city"], "city-value");

    // The same call, streamed: assembled from the deltas it is the same.
    let mut stream = client
        .chat_stream(request.clone())
        .await
        .expect("a stream")
        .into_inner();
    let (mut id, mut name, mut streamed_args) = (String::new(), String::new(), String::new());
    while let Some(chunk) = stream.message().await.expect("a chunk") {
        for delta in chunk.choices.iter().filter_map(|c| c.delta.as_ref()) {
            if let Some(piece) = &delta.tool_call {
                assert_eq!(piece.index, 0);
                id.push_str(piece.id.as_deref().unwrap_or(""));
                name.push_str(piece.name.as_deref().unwrap_or(""));
                streamed_args.push_str(&piece.arguments);
            }
        }
    }
    assert_eq!(
        (id.as_str(), name.as_str()),
        (call.id.as_str(), "get_weather")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&streamed_args).expect("JSON"),
        arguments
    );

    let result = pb::Message {
        role: "tool".into(),
        content: "sunny and 21 degrees".into(),
        tool_call_id: Some(call.id.clone()),
        ..pb::Message::default()
    };
    let last = client
        .chat(pb::ChatRequest {
            messages: vec![question, asked, result],
            ..request
        })
        .await
        .expect("an answer")
        .into_inner();
    let choice = &last.choices[0];
    assert_eq!(choice.finish_reason, "stop");
    let text = &choice.message.as_ref().expect("a message").content;
    assert!(text.contains("sunny and 21 degrees"), "{text}");
}

/// The [`deck`] with `tags` on the route.
fn tagged_deck(tags: &[&str]) -> String {
    let mut list = String::from("    tags:\n");
    for tag in tags {
        list.push_str(&format!("    - \"{tag}\"\n"));
    }
    deck().replace("    paths:\n", &format!("{list}    paths:\n"))
}

/// A loopback HTTP server answering every request with `body` as `content_type`; its URL.
async fn image_server(body: Vec<u8>, content_type: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(aigw_tests::loopback())
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}/cat.png")
}

fn png_bytes() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(PNG)
        .expect("the test PNG is base64")
}

fn image_question(url: &str) -> Value {
    json!({
        "model": "claude",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url}}
        ]}]
    })
}

#[tokio::test]
async fn an_image_url_is_fetched_from_an_allowed_loopback_host() {
    let url = image_server(png_bytes(), "image/png").await;
    let stack = Stack::start(&config_from(&tagged_deck(&[
        "aigw-image-url-fetch",
        "aigw-image-url-fetch-allow=127.0.0.1",
    ])))
    .await;
    let (status, answer) = post(&stack, &image_question(&url)).await;
    assert_eq!(status, 200, "{answer}");
    let seen = stack.emulator.requests();
    let image = &seen[0].body["messages"][0]["content"][1]["image"];
    assert_eq!(image["format"], "png");
    assert_eq!(image["source"]["bytes"], PNG);
}

#[tokio::test]
async fn fetching_refuses_loopback_hosts_not_listed_and_images_over_the_cap() {
    let url = image_server(png_bytes(), "image/png").await;
    let stack = Stack::start(&config_from(&tagged_deck(&["aigw-image-url-fetch"]))).await;
    let (status, answer) = post(&stack, &image_question(&url)).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("private or loopback address 127.0.0.1")
            && message.contains("aigw-image-url-fetch-allow=127.0.0.1"),
        "{message}"
    );

    let capped = Stack::start(&config_from(&tagged_deck(&[
        "aigw-image-url-fetch",
        "aigw-image-url-fetch-allow=127.0.0.1",
        "aigw-image-url-fetch-max-bytes=16",
    ])))
    .await;
    let (status, answer) = post(&capped, &image_question(&url)).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("larger than 16 bytes"), "{message}");
    assert!(capped.emulator.requests().is_empty());
}

#[tokio::test]
async fn a_route_tagged_to_drop_unsupported_params_answers_n_2() {
    let stack = Stack::start(&config_from(&tagged_deck(&[
        "aigw-drop-unsupported-params",
    ])))
    .await;
    let body = json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "hi"}],
        "n": 2,
        "logprobs": true,
        "seed": 7
    });
    let (status, answer) = post(&stack, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"].as_array().map(Vec::len), Some(1));
}

#[test]
fn an_unknown_aigw_tag_is_refused_with_its_line() {
    let yaml = tagged_deck(&["aigw-drop-params"]);
    let error = aigw_config::parse_deck("deck.yaml", &yaml).expect_err("an unknown aigw tag");
    let text = error.to_string();
    assert!(
        text.contains("deck.yaml:8:")
            && text.contains("tags[0]")
            && text.contains("aigw-drop-params"),
        "{text}"
    );
}

async fn get(url: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.header("apikey", key);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn models_lists_the_route_names_a_client_can_pass_as_model() {
    let stack = stack().await;
    let (status, list) = get(&stack.url("/v1/models"), None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["claude"]);
    assert_eq!(list["data"][0]["object"], "model");

    let (status, one) = get(&stack.url("/v1/models/claude"), None).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["id"], "claude");
    let (status, missing) = get(&stack.url("/v1/models/gpt-9"), None).await;
    assert_eq!(status, 404, "{missing}");
    assert!(
        missing["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("gpt-9")),
        "{missing}"
    );
}

#[tokio::test]
async fn models_lists_only_what_the_callers_key_opens() {
    const KEY: &str = "alice-key-models";
    let stack = Stack::start(&aigw_tests::open_and_locked_deck(KEY)).await;
    let ids = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect()
    };
    let (status, list) = get(&stack.url("/v1/models"), None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list), ["open"]);
    let (status, list) = get(&stack.url("/v1/models"), Some(KEY)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list), ["open", "locked"]);
    let (status, refused) = get(&stack.url("/v1/models/locked"), None).await;
    assert_eq!(status, 401, "{refused}");
    let (status, one) = get(&stack.url("/v1/models/locked"), Some(KEY)).await;
    assert_eq!(status, 200, "{one}");
}

mod property {
    //! Any conversation the front end accepts becomes a Converse request the emulator's
    //! validation (modelled on Bedrock's) accepts: a request that reaches Bedrock is never
    //! refused there for its shape.

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    use serde_json::{Value, json};

    use super::{PNG, post, stack};

    const IDS: [&str; 2] = ["call_a", "call_b"];

    fn content() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!("hello there")),
            Just(json!("")),
            Just(json!("  ")),
            Just(Value::Null),
            Just(json!([{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}])),
            Just(json!([
                {"type": "text", "text": "cache me", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "after"}
            ])),
            Just(json!([
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}},
                {"type": "text", "text": "what is it?"}
            ])),
            Just(json!([{"type": "text", "text": "   "}])),
        ]
    }

    fn tool_calls() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(json!([{"id": IDS[0], "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Krakow\"}"}}]))),
            Just(Some(json!([
                {"id": IDS[0], "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": IDS[1], "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]))),
        ]
    }

    fn message() -> impl Strategy<Value = Value> {
        let role = prop_oneof![
            Just("system"),
            Just("developer"),
            Just("user"),
            Just("user"),
            Just("assistant"),
            Just("assistant"),
            Just("tool"),
        ];
        (role, content(), tool_calls(), 0..IDS.len(), any::<bool>()).prop_map(
            |(role, content, calls, id, cache)| {
                let mut m = json!({"role": role, "content": content});
                match role {
                    "assistant" => {
                        if let Some(calls) = calls {
                            m["tool_calls"] = calls;
                        }
                    }
                    "tool" => m["tool_call_id"] = json!(IDS[id]),
                    _ => {}
                }
                if cache {
                    m["cache_control"] = json!({"type": "ephemeral"});
                }
                m
            },
        )
    }

    fn request() -> impl Strategy<Value = Value> {
        let tools = json!([
            {"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}},
                "cache_control": {"type": "ephemeral"}}
        ]);
        let choice = prop_oneof![
            Just(Value::Null),
            Just(json!("auto")),
            Just(json!("none")),
            Just(json!("required")),
            Just(json!({"type": "function", "function": {"name": "get_time"}})),
        ];
        let effort = prop_oneof![Just(Value::Null), Just(json!("low")), Just(json!("high"))];
        (
            prop::collection::vec(message(), 1..7),
            any::<bool>(),
            choice,
            effort,
            prop_oneof![
                Just(Value::Null),
                Just(json!(64)),
                Just(json!(2000)),
                Just(json!(40000))
            ],
        )
            .prop_map(
                move |(mut messages, with_tools, choice, effort, max_tokens)| {
                    // Most conversations open with the user, as real ones do, so that many
                    // reach Bedrock.
                    if messages.len() % 4 != 0 {
                        messages.insert(0, json!({"role": "user", "content": "hi"}));
                    }
                    let mut body = json!({"model": "claude", "messages": messages});
                    if with_tools {
                        body["tools"] = tools.clone();
                    }
                    if !choice.is_null() {
                        body["tool_choice"] = choice;
                    }
                    if !effort.is_null() {
                        body["reasoning_effort"] = effort;
                    }
                    if !max_tokens.is_null() {
                        body["max_tokens"] = max_tokens;
                    }
                    body
                },
            )
    }

    #[test]
    fn what_the_gateway_forwards_bedrock_accepts() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let stack = runtime.block_on(stack());
        // Bounded: each case is a real request through the gateway and the emulator.
        // A fixed seed: the same cases every run, so the coverage check below is stable.
        let config = Config {
            cases: 160,
            failure_persistence: None,
            ..Config::default()
        };
        let rng = TestRng::deterministic_rng(config.rng_algorithm);
        let mut runner = TestRunner::new_with_rng(config, rng);
        let forwarded = std::cell::Cell::new(0);
        let refused = std::cell::Cell::new(0);
        let result = runner.run(&request(), |body| {
            stack.emulator.clear_requests();
            let (status, answer) = runtime.block_on(post(&stack, &body));
            let reached = !stack.emulator.requests().is_empty();
            if reached {
                forwarded.set(forwarded.get() + 1);
                prop_assert_eq!(
                    status,
                    200,
                    "bedrock refused what aigw sent: {}\nrequest: {}",
                    answer,
                    body
                );
            } else {
                refused.set(refused.get() + 1);
                prop_assert_eq!(status, 400, "{}", answer);
                prop_assert!(answer["error"]["message"].is_string(), "{}", answer);
            }
            Ok(())
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
        // Both sides of the property were exercised.
        let (forwarded, refused) = (forwarded.get(), refused.get());
        assert!(
            forwarded > 10 && refused > 10,
            "forwarded {forwarded}, refused {refused}"
        );
    }
}

#[tokio::test]
async fn balancing_and_status_count_the_prompt_tokens_clients_see_cache_included() {
    let stack = stack().await;
    let body = json!({
        "model": "claude",
        "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "a long shared system prompt to cache",
                 "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "user", "content": "hi"}
        ]
    });
    let mut told = 0;
    for _ in 0..2 {
        let (status, answer) = post(&stack, &body).await;
        assert_eq!(status, 200, "{answer}");
        told += answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    }
    let status = aigw_tests::targets_status(&reqwest::Client::new(), &stack).await;
    let counted = status["routes"][0]["targets"][0]["tokens"]["prompt"]
        .as_u64()
        .unwrap_or(0);
    // 7 system words + 1 user word, twice: written to the cache once, read once.
    assert_eq!(told, 16);
    assert_eq!(counted, told, "{status}");
}

/// Two Claude targets behind one route, `pair`, that fails over even after a target
/// received the request (`non_idempotent`), so only the first answer byte stops it.
fn pair_deck() -> String {
    let target = |model: &str| {
        format!(
            "        - model:\n            provider: bedrock\n            name: \"{model}\"\n            \
             options:\n              bedrock:\n                aws_region: us-west-2\n          \
             route_type: llm/v1/chat\n"
        )
    };
    format!(
        "_format_version: \"3.0\"\nservices:\n- name: svc\n  host: localhost\n  routes:\n  \
         - name: pair\n    paths:\n    - /pair\n    plugins:\n    - name: ai-proxy-advanced\n      \
         config:\n        balancer:\n          failover_criteria: [error, timeout, non_idempotent]\n        \
         targets:\n{}{}",
        target(CLAUDE),
        target("us.anthropic.claude-opus-4-20250514-v1:0")
    )
}

/// Streams a forced tool call from `pair` and returns the SSE `data:` payloads.
async fn stream_tool_call(stack: &Stack) -> Vec<String> {
    let body = json!({
        "model": "pair",
        "stream": true,
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]
        }}}],
        "tool_choice": "required"
    });
    let text = reqwest::Client::new()
        .post(stack.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("the gateway answers")
        .text()
        .await
        .unwrap_or_default();
    if !text.starts_with("data: ") {
        return vec![format!("not a stream: {text}")];
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn failover_ends_once_a_tool_call_began_streaming() {
    use aigw_emulator::Fault;
    let stack = Stack::start(&config_from(&pair_deck())).await;
    let exception = |after_deltas| {
        ModelKnobs::with_fault(
            Fault::StreamException {
                after_deltas,
                exception_type: "modelStreamErrorException".into(),
            },
            Some(1),
        )
    };

    // Broken before the tool call's first byte: the other target answers.
    stack.emulator.knobs().set_default(exception(0));
    let data = stream_tool_call(&stack).await;
    assert_eq!(stack.emulator.requests().len(), 2, "failed over: {data:?}");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");

    // Broken after the tool call started and one argument fragment went out: the client
    // has those bytes, so the error is the client's and nothing is retried.
    stack.emulator.clear_requests();
    stack.emulator.knobs().set_default(exception(1));
    let data = stream_tool_call(&stack).await;
    assert_eq!(stack.emulator.requests().len(), 1, "no failover: {data:?}");
    let events: Vec<Value> = data
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let started = events
        .iter()
        .any(|e| e["choices"][0]["delta"]["tool_calls"][0]["id"].is_string());
    assert!(started, "{data:?}");
    let last = events.last().expect("events");
    assert!(last["error"]["message"].is_string(), "{data:?}");
}

#[tokio::test]
async fn grpc_image_parts_reach_bedrock_as_the_same_bytes() {
    use base64::Engine;
    let stack = stack().await;
    let mut client = grpc_client(&stack.gateway).await;
    let message = |format: &str| pb::Message {
        role: "user".into(),
        content: "What is this?".into(),
        parts: vec![
            pb::ContentPart {
                part: Some(pb::content_part::Part::Image(pb::Image {
                    format: format.into(),
                    data: png_bytes(),
                })),
            },
            pb::ContentPart {
                part: Some(pb::content_part::Part::CachePoint(true)),
            },
        ],
        ..pb::Message::default()
    };
    let request = |format: &str| pb::ChatRequest {
        route: "claude".into(),
        messages: vec![message(format)],
        ..pb::ChatRequest::default()
    };
    let answer = client
        .chat(request("png"))
        .await
        .expect("an answer")
        .into_inner();
    assert_eq!(answer.choices[0].finish_reason, "stop");
    let seen = stack.emulator.requests();
    let content = &seen[0].body["messages"][0]["content"];
    assert_eq!(content[0]["text"], "What is this?");
    assert_eq!(content[1]["image"]["format"], "png");
    let sent = base64::engine::general_purpose::STANDARD.encode(png_bytes());
    assert_eq!(content[1]["image"]["source"]["bytes"], sent.as_str());
    assert!(content[2].get("cachePoint").is_some(), "{content}");

    let refused = client
        .chat(request("bmp"))
        .await
        .expect_err("bmp is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("messages[0].parts[0].image.format"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn a_pdf_file_part_reaches_bedrock_as_a_document() {
    use base64::Engine;
    let stack = stack().await;
    let pdf = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 tiny");
    let body = json!({
        "model": "claude",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Summarise this."},
            {"type": "file", "file": {"filename": "q3 report.pdf",
                "file_data": format!("data:application/pdf;base64,{pdf}")}}
        ]}]
    });
    let (status, answer) = post(&stack, &body).await;
    assert_eq!(status, 200, "{answer}");
    let seen = stack.emulator.requests();
    let document = &seen[0].body["messages"][0]["content"][1]["document"];
    assert_eq!(document["format"], "pdf");
    assert_eq!(document["name"], "q3 report");
    assert_eq!(document["source"]["bytes"], pdf.as_str());

    let by_id = json!({
        "model": "claude",
        "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_id": "file-123"}}
        ]}]
    });
    let (status, answer) = post(&stack, &by_id).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("messages[0].content[0].file.file_id"),
        "{message}"
    );
}
