//! Streaming end to end: ConverseStream from the emulator, through the real SDK and the
//! gateway, to an OpenAI-style SSE client and a gRPC server-streaming client.

use std::time::{Duration, Instant};

use aigw_emulator::{Fault, ModelKnobs};
use aigw_proto::v1::{ChatChunk, ChatRequest};
use aigw_tests::{
    Stack, config_from, grpc_client, header_text, metadata_text, seed_config, seed_yaml,
};
use serde_json::{Value, json};

const NOVA: &str = "us.amazon.nova-micro-v1:0";
const LLAMA: &str = "us.meta.llama3-3-70b-instruct-v1:0";

/// Reads an SSE body event by event, as the bytes arrive.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    fn new(response: reqwest::Response) -> Self {
        Sse {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's `data`, or `None` at the end of the body. A body that breaks off
    /// (rather than ending) fails the test: the gateway must end streams cleanly.
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                return Some(data.join("\n"));
            }
            let chunk = self
                .response
                .chunk()
                .await
                .expect("the body reads cleanly")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("SSE is UTF-8"));
        }
    }

    /// Every remaining event's `data`.
    async fn rest(&mut self) -> Vec<String> {
        let mut all = Vec::new();
        while let Some(data) = self.next().await {
            all.push(data);
        }
        assert!(
            self.buffer.trim().is_empty(),
            "trailing bytes: {:?}",
            self.buffer
        );
        all
    }
}

fn question(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": "Who is considered the greatest Polish writer?"}]
    })
}

async fn post(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("gateway answers")
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    header_text(response.headers(), name)
}

fn parse(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or_else(|e| panic!("event is not JSON ({e}): {data}"))
}

/// The text of the content deltas among `events`.
fn content_of(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn grpc_question(route: &str) -> ChatRequest {
    aigw_tests::grpc_question(route, "Who is considered the greatest Polish writer?")
}

/// The whole (non-streamed) answer of the route's next target, to compare streams with.
async fn whole_answer(stack: &Stack) -> Value {
    post(&stack.url("/bedrock-route"), &question(false))
        .await
        .json()
        .await
        .expect("JSON")
}

/// A gRPC stream of the answer to the first route, from a fresh client.
async fn grpc_stream(stack: &Stack) -> tonic::Streaming<ChatChunk> {
    grpc_client(&stack.gateway)
        .await
        .chat_stream(grpc_question(""))
        .await
        .expect("stream starts")
        .into_inner()
}

/// The status a fresh gRPC client gets when the stream the test expects to be refused
/// (`why` says why, for the panic when it is not) is asked of the first route.
async fn grpc_stream_refused(stack: &Stack, why: &str) -> tonic::Status {
    grpc_client(&stack.gateway)
        .await
        .chat_stream(grpc_question(""))
        .await
        .expect_err(why)
}

/// Makes every model answer `words` words, `delay` apart.
fn answer_slowly(stack: &Stack, delay: Duration, words: usize) {
    stack.emulator.knobs().set_default(ModelKnobs {
        token_delay: delay,
        answer_words: words,
        ..ModelKnobs::default()
    });
}

/// Polls `check` every 10 ms for up to `limit`; whether it came true.
async fn eventually(limit: Duration, check: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

/// The seed file with extra `balancer:` settings and plugin `config:` settings.
fn seed_with(balancer: &str, plugin: &str) -> aigw_config::GatewayConfig {
    let seed = seed_yaml();
    let mut extra = String::from("algorithm: round-robin");
    for line in balancer.lines() {
        extra.push_str("\n          ");
        extra.push_str(line);
    }
    let mut yaml = seed.replace("algorithm: round-robin", &extra);
    if !plugin.is_empty() {
        yaml = yaml.replace(
            "        balancer:\n",
            &format!("        {plugin}\n        balancer:\n"),
        );
    }
    config_from(&yaml)
}

#[tokio::test]
async fn sse_is_openai_chunks_with_usage_then_done() {
    let stack = Stack::start(&seed_config()).await;
    // The whole answer of the same model, to compare the streamed pieces with.
    let whole = whole_answer(&stack).await;
    assert_eq!(whole["model"], NOVA);

    for include_usage in [false, true] {
        // Round-robin: the first stream goes to llama, the second to nova.
        let mut body = question(true);
        body["stream_options"] = json!({"include_usage": include_usage});
        let response = post(&stack.url("/bedrock-route"), &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(&response, "content-type").as_deref(),
            Some("text/event-stream")
        );
        let model = header(&response, "x-aigw-llm-model").expect("serving model header");
        let data = Sse::new(response).rest().await;

        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
        let events: Vec<Value> = data[..data.len() - 1].iter().map(|d| parse(d)).collect();
        let id = events[0]["id"].as_str().expect("id").to_owned();
        assert!(id.starts_with("chatcmpl-"));
        for event in &events {
            assert_eq!(event["object"], "chat.completion.chunk");
            assert_eq!(event["id"], id.as_str(), "one id per answer");
            assert_eq!(
                format!("bedrock/{}", event["model"].as_str().expect("model")),
                model
            );
            assert!(event["created"].as_u64().is_some());
            // OpenAI's convention: `usage` is there (null) on every chunk only when asked.
            assert_eq!(event.get("usage").is_some(), include_usage, "{event}");
        }
        let first = &events[0]["choices"][0];
        assert_eq!(first["delta"]["role"], "assistant");
        assert_eq!(first["index"], 0);
        assert!(first["finish_reason"].is_null());
        assert!(
            events[1..]
                .iter()
                .all(|e| e["choices"][0]["delta"].get("role").is_none()),
            "role only on the first chunk"
        );

        let finish_at = events
            .iter()
            .position(|e| e["choices"][0]["finish_reason"].is_string())
            .expect("a chunk carries finish_reason");
        assert_eq!(events[finish_at]["choices"][0]["finish_reason"], "stop");
        let content = content_of(&events);
        assert!(
            content.contains("You asked: Who is considered"),
            "{content}"
        );
        if include_usage {
            // The same model answers the same question identically, whole or streamed.
            assert!(model.ends_with(NOVA));
            assert_eq!(content, whole["choices"][0]["message"]["content"]);
            assert_eq!(
                finish_at,
                events.len() - 2,
                "usage chunk follows the finish"
            );
            let usage_chunk = &events[events.len() - 1];
            assert_eq!(usage_chunk["choices"], json!([]));
            assert_eq!(usage_chunk["usage"], whole["usage"]);
            assert!(
                events[..events.len() - 1]
                    .iter()
                    .all(|e| e["usage"].is_null())
            );
        } else {
            assert!(model.ends_with(LLAMA));
            assert_eq!(
                finish_at,
                events.len() - 1,
                "nothing after the finish but [DONE]"
            );
        }
    }
}

#[tokio::test]
async fn grpc_chat_stream_carries_the_same_answer() {
    let stack = Stack::start(&seed_config()).await;
    let whole = whole_answer(&stack).await;
    let mut client = grpc_client(&stack.gateway).await;
    // Second call of the round: llama. Third: nova again, the model `whole` came from.
    let _llama = client.chat(grpc_question("")).await.expect("chat answers");
    let response = client
        .chat_stream(grpc_question("route1"))
        .await
        .expect("stream starts");
    let served_by = metadata_text(response.metadata(), "x-aigw-llm-model");
    assert_eq!(served_by, Some(format!("bedrock/{NOVA}")));
    let mut stream = response.into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.expect("clean stream") {
        chunks.push(chunk);
    }
    assert_eq!(
        chunks[0].choices[0]
            .delta
            .as_ref()
            .and_then(|d| d.role.as_deref()),
        Some("assistant")
    );
    let content: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.as_ref().and_then(|d| d.content.as_deref()))
        .collect();
    assert_eq!(content, whole["choices"][0]["message"]["content"]);
    let finish: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.as_deref())
        .collect();
    assert_eq!(finish, ["stop"]);
    let usage = chunks
        .last()
        .and_then(|c| c.usage)
        .expect("the last chunk carries usage");
    assert_eq!(whole["usage"]["total_tokens"], usage.total_tokens);
    assert!(
        chunks
            .iter()
            .all(|c| c.object == "chat.completion.chunk" && c.model == NOVA)
    );
}

#[tokio::test]
async fn first_chunk_arrives_long_before_the_upstream_finishes() {
    let stack = Stack::start(&seed_config()).await;
    // 20 words 50 ms apart: the upstream needs about a second for the whole answer.
    answer_slowly(&stack, Duration::from_millis(50), 20);

    let started = Instant::now();
    let response = post(&stack.url("/bedrock-route"), &question(true)).await;
    // The serving model is named in the head, before any chunk.
    assert!(header(&response, "x-aigw-llm-model").is_some());
    let mut sse = Sse::new(response);
    let mut first_content = None;
    let mut events = 0;
    while let Some(data) = sse.next().await {
        events += 1;
        if first_content.is_none() && data.contains("\"content\":\"[") {
            first_content = Some(started.elapsed());
            assert_eq!(
                stack.emulator.open_streams(),
                1,
                "the first piece reached the client while the upstream was still sending"
            );
        }
    }
    let total = started.elapsed();
    let first = first_content.expect("a content chunk arrived");
    eprintln!(
        "HTTP SSE: first content after {first:?}, whole answer after {total:?}, {events} events"
    );
    assert!(
        total >= Duration::from_millis(900),
        "the token delay applies: {total:?}"
    );
    assert!(first * 3 < total, "first {first:?} vs total {total:?}");

    let mut client = grpc_client(&stack.gateway).await;
    let started = Instant::now();
    let response = client
        .chat_stream(grpc_question(""))
        .await
        .expect("stream starts");
    // Initial metadata is in hand before any message, while the upstream still runs.
    assert!(response.metadata().get("x-aigw-llm-model").is_some());
    assert_eq!(stack.emulator.open_streams(), 1);
    let mut stream = response.into_inner();
    let mut first_content = None;
    while let Some(chunk) = stream.message().await.expect("clean stream") {
        let has_text = chunk
            .choices
            .iter()
            .any(|c| c.delta.as_ref().is_some_and(|d| d.content.is_some()));
        if has_text && first_content.is_none() {
            first_content = Some(started.elapsed());
            assert_eq!(stack.emulator.open_streams(), 1);
        }
    }
    let total = started.elapsed();
    let first = first_content.expect("a content chunk arrived");
    eprintln!("gRPC stream: first content after {first:?}, whole answer after {total:?}");
    assert!(first * 3 < total, "first {first:?} vs total {total:?}");
}

#[tokio::test]
async fn client_going_away_cancels_the_upstream_stream() {
    let stack = Stack::start(&seed_config()).await;
    // 100 words 100 ms apart: ten seconds if nobody stops it.
    answer_slowly(&stack, Duration::from_millis(100), 100);

    let response = post(&stack.url("/bedrock-route"), &question(true)).await;
    let mut sse = Sse::new(response);
    sse.next().await.expect("role chunk");
    sse.next().await.expect("first content chunk");
    assert_eq!(stack.emulator.open_streams(), 1);
    let left = Instant::now();
    drop(sse);
    assert_upstream_cancelled(&stack, 1, left, "HTTP").await;

    let mut stream = grpc_stream(&stack).await;
    stream.message().await.expect("ok").expect("role chunk");
    stream.message().await.expect("ok").expect("first content");
    let left = Instant::now();
    // Dropping the stream resets it (RST_STREAM); the connection itself stays up.
    drop(stream);
    assert_upstream_cancelled(&stack, 2, left, "gRPC").await;
}

/// The `nth` stream the emulator served (counting from 1) was cancelled soon after the
/// client `left`, and nothing is still streaming.
async fn assert_upstream_cancelled(stack: &Stack, nth: u64, left: Instant, front_end: &str) {
    assert!(
        eventually(Duration::from_secs(3), || stack
            .emulator
            .cancelled_streams()
            == nth)
        .await,
        "the upstream stream was cancelled after the {front_end} client left"
    );
    eprintln!(
        "{front_end}: upstream cancelled {:?} after the client left",
        left.elapsed()
    );
    assert_eq!(stack.emulator.open_streams(), 0);
    let index = usize::try_from(nth - 1).expect("a small count");
    assert!(stack.emulator.requests()[index].client_went_away);
}

#[tokio::test]
async fn upstream_breaking_mid_stream_ends_with_an_error_not_a_short_success() {
    let faults = [
        Fault::CutStream { after_deltas: 3 },
        Fault::BadCrc { after_deltas: 3 },
        Fault::StreamException {
            after_deltas: 3,
            exception_type: "modelStreamErrorException".into(),
        },
    ];
    for fault in faults {
        let stack = Stack::start(&seed_config()).await;
        stack
            .emulator
            .knobs()
            .set_default(ModelKnobs::with_fault(fault.clone(), None));

        let response = post(&stack.url("/bedrock-route"), &question(true)).await;
        assert_eq!(response.status(), 200, "{fault:?}: the stream had started");
        let data = Sse::new(response).rest().await;
        assert!(!data.iter().any(|d| d == "[DONE]"), "{fault:?}: {data:?}");
        let events: Vec<Value> = data.iter().map(|d| parse(d)).collect();
        let (error, pieces) = events.split_last().expect("events");
        assert!(
            content_of(pieces).contains("You asked"),
            "{fault:?}: pieces before the break reached the client: {data:?}"
        );
        assert!(
            pieces
                .iter()
                .all(|e| e["choices"][0]["finish_reason"].is_null()),
            "{fault:?}: no finish_reason on a broken stream"
        );
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "{fault:?}: last event is an error: {error}"
        );
        assert_eq!(error["error"]["type"], "api_error", "{fault:?}: {error}");
        eprintln!("{fault:?} over HTTP: {error}");

        let mut stream = grpc_stream(&stack).await;
        let mut pieces = 0;
        let status = loop {
            match stream.message().await {
                Ok(Some(_)) => pieces += 1,
                Ok(None) => panic!("{fault:?}: gRPC stream ended as if complete"),
                Err(status) => break status,
            }
        };
        assert!(pieces >= 2, "{fault:?}: pieces before the break");
        assert!(
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Internal
            ),
            "{fault:?}: {status:?}"
        );
        eprintln!(
            "{fault:?} over gRPC: {:?} {}",
            status.code(),
            status.message()
        );
    }
}

#[tokio::test]
async fn an_upstream_silent_mid_stream_past_read_timeout_ends_with_a_timeout_error() {
    let stack = Stack::start(&seed_with("read_timeout: 300", "")).await;
    // The first piece comes at once, the next only after 5 s: past read_timeout.
    answer_slowly(&stack, Duration::from_secs(5), 4);
    let started = Instant::now();
    let response = post(&stack.url("/bedrock-route"), &question(true)).await;
    assert_eq!(response.status(), 200);
    let data = Sse::new(response).rest().await;
    let took = started.elapsed();
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let events: Vec<Value> = data.iter().map(|d| parse(d)).collect();
    let last = events.last().expect("events");
    assert_eq!(last["error"]["code"], "upstream_timeout", "{last}");
    assert_eq!(last["error"]["type"], "timeout_error");
    assert!(
        content_of(&events).starts_with('['),
        "the first piece came through"
    );
    assert!(
        took < Duration::from_secs(4),
        "read_timeout bounds the wait: {took:?}"
    );
    // The silent upstream call was abandoned, not left running.
    assert!(
        eventually(Duration::from_secs(2), || stack
            .emulator
            .cancelled_streams()
            == 1)
        .await
    );

    let mut stream = grpc_stream(&stack).await;
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("gRPC stream ended as if complete"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
}

#[tokio::test]
async fn failover_happens_before_the_first_byte_and_never_after() {
    // Everything may fail over, even a request the target already received.
    let config = seed_with(
        "failover_criteria: [error, timeout, invalid_header, http_429, http_500, http_503, non_idempotent]",
        "",
    );
    let stack = Stack::start(&config).await;

    // Nova throttles before its stream starts: the stream comes from llama instead.
    stack
        .emulator
        .knobs()
        .set_model(NOVA, ModelKnobs::with_fault(Fault::throttling(), Some(1)));
    let response = post(&stack.url("/bedrock-route"), &question(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "x-aigw-llm-model"),
        Some(format!("bedrock/{LLAMA}"))
    );
    let data = Sse::new(response).rest().await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let events: Vec<Value> = data[..data.len() - 1].iter().map(|d| parse(d)).collect();
    assert!(content_of(&events).starts_with(&format!("[{LLAMA}]")));
    let seen = stack.models_asked();
    assert_eq!(seen, [NOVA, LLAMA]);

    // A stream that fails after messageStart but before any text has sent the client
    // nothing yet, so it still fails over.
    stack.emulator.clear_requests();
    stack.emulator.knobs().clear_model(NOVA);
    stack.emulator.knobs().set_default(ModelKnobs::with_fault(
        Fault::StreamException {
            after_deltas: 0,
            exception_type: "modelStreamErrorException".into(),
        },
        Some(1),
    ));
    let response = post(&stack.url("/bedrock-route"), &question(true)).await;
    assert_eq!(response.status(), 200);
    let served_by = header(&response, "x-aigw-llm-model").expect("serving model header");
    let data = Sse::new(response).rest().await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let seen = stack.models_asked();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_ne!(seen[0], seen[1]);
    assert_eq!(served_by, format!("bedrock/{}", seen[1]));

    // Whichever target is picked breaks after its first pieces went out: no failover, the
    // client gets the error.
    stack.emulator.clear_requests();
    stack.emulator.knobs().clear_model(NOVA);
    stack.emulator.knobs().set_default(ModelKnobs::with_fault(
        Fault::CutStream { after_deltas: 2 },
        None,
    ));
    let response = post(&stack.url("/bedrock-route"), &question(true)).await;
    let served_by = header(&response, "x-aigw-llm-model").expect("serving model header");
    let data = Sse::new(response).rest().await;
    let events: Vec<Value> = data.iter().map(|d| parse(d)).collect();
    let last = events.last().expect("events");
    assert!(last["error"]["message"].is_string(), "{data:?}");
    let content = content_of(&events);
    assert!(
        served_by.ends_with(
            content
                .split(']')
                .next()
                .unwrap_or_default()
                .trim_start_matches('[')
        ),
        "the pieces come from the target the header names: {served_by} / {content}"
    );
    assert_eq!(
        stack.emulator.requests().len(),
        1,
        "the broken stream was not sent to another target"
    );
}

#[tokio::test]
async fn a_stream_failing_before_any_text_is_a_plain_http_error() {
    // The seed's failover_criteria do not allow retrying a request the target received.
    let stack = Stack::start(&seed_config()).await;
    stack.emulator.knobs().set_default(ModelKnobs::with_fault(
        Fault::StreamException {
            after_deltas: 0,
            exception_type: "internalServerException".into(),
        },
        None,
    ));
    let response = post(&stack.url("/bedrock-route"), &question(true)).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.expect("an OpenAI error body");
    assert_eq!(body["error"]["code"], "upstream_error", "{body}");
    assert_eq!(stack.emulator.requests().len(), 1);

    let status = grpc_stream_refused(&stack, "fails before the stream starts").await;
    assert_eq!(status.code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn response_streaming_deny_and_always() {
    let deny = Stack::start(&seed_with("", "response_streaming: deny")).await;
    let response = post(&deny.url("/bedrock-route"), &question(true)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("response_streaming: deny")),
        "{body}"
    );
    // The same route still answers whole.
    let response = post(&deny.url("/bedrock-route"), &question(false)).await;
    assert_eq!(response.status(), 200);
    let status = grpc_stream_refused(&deny, "streaming denied").await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // Only the whole answer reached the upstream.
    assert_eq!(deny.emulator.requests().len(), 1);

    let always = Stack::start(&seed_with("", "response_streaming: always")).await;
    let response = post(&always.url("/bedrock-route"), &question(false)).await;
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("text/event-stream")
    );
    let data = Sse::new(response).rest().await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        always.emulator.requests()[0].operation,
        aigw_emulator::Operation::ConverseStream
    );
}

#[tokio::test]
async fn openai_path_picks_the_route_by_model() {
    let config = config_from(
        r#"
_format_version: "3.0"
services:
- name: svc
  host: localhost
  routes:
  - name: nova-route
    paths: [/nova]
    plugins:
    - name: ai-proxy-advanced
      config:
        targets:
        - model: {provider: bedrock, name: "us.amazon.nova-micro-v1:0", options: {bedrock: {aws_region: us-west-2}}}
          route_type: llm/v1/chat
  - name: llama-route
    paths: [/llama]
    plugins:
    - name: ai-proxy-advanced
      config:
        targets:
        - model: {provider: bedrock, name: "us.meta.llama3-3-70b-instruct-v1:0", options: {bedrock: {aws_region: us-west-2}}}
          route_type: llm/v1/chat
"#,
    );
    let stack = Stack::start(&config).await;
    let url = stack.url("/v1/chat/completions");
    let cases = [
        (Some("llama-route"), LLAMA),
        (Some("/llama"), LLAMA),
        (Some("nova-route"), NOVA),
        // An OpenAI model name, or none: the first route.
        (Some("gpt-4o-mini"), NOVA),
        (None, NOVA),
    ];
    for (model, expected) in cases {
        for stream in [false, true] {
            let mut body = question(stream);
            match model {
                Some(model) => body["model"] = json!(model),
                None => {
                    body.as_object_mut().map(|o| o.remove("model"));
                }
            }
            let response = post(&url, &body).await;
            assert_eq!(response.status(), 200, "{model:?}");
            assert_eq!(
                header(&response, "x-aigw-llm-model"),
                Some(format!("bedrock/{expected}")),
                "model {model:?}, stream {stream}"
            );
            if stream {
                let data = Sse::new(response).rest().await;
                assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
            } else {
                let answer: Value = response.json().await.expect("JSON");
                assert_eq!(answer["model"], expected);
            }
        }
    }

    // Bad input at the OpenAI path gets the same OpenAI-style 400.
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"model": "llama-route", "messages": []}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "invalid_request");
    let response = reqwest::get(&url).await.expect("answers");
    assert_eq!(response.status(), 405);
}
