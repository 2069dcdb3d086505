//! A fake OpenAI-compatible upstream: OpenAI's chat completions API,
//! `POST /v1/chat/completions`, unary and SSE, so that OpenAI-compatible drivers can be
//! tested offline like Bedrock's.
//!
//! It answers as the Bedrock operations do: the same deterministic answer naming the
//! model (the body's `model`), the same knobs looked up by that model, the same faults in
//! OpenAI's shapes, and the same request log. Any credential, or none, is accepted; tests
//! read what was sent from the log.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::Emulator;
use crate::answer::{Answer, StopReason, answer, deltas, parse_chat_prompt};
use crate::knobs::{Fault, Lookup, Slot};
use crate::record::{Operation, SeenRequest};
use crate::server::{Inflight, header_record, sit_out_latency, stopped, typed, with_request_id};
use crate::stream::cut;

/// An error answer as OpenAI sends it: `{"error": {"message", "type", "param", "code"}}`.
struct OpenAiError {
    status: StatusCode,
    kind: String,
    message: String,
    code: Option<&'static str>,
    retry_after: Option<u32>,
}

impl OpenAiError {
    fn invalid(message: impl Into<String>) -> Self {
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error".to_owned(),
            message: message.into(),
            code: None,
            retry_after: None,
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {"message": self.message, "type": self.kind, "param": null, "code": self.code}
        });
        let mut response = typed(Body::from(body.to_string()), "application/json");
        *response.status_mut() = self.status;
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// What the request asked for, once it passed the checks.
struct Plan {
    slot: Arc<Slot>,
    fault: bool,
    answer: Answer,
    model: String,
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(emulator): State<Emulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let shared = Arc::clone(&emulator.shared);
    let started = Instant::now();
    let id = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let body: Result<Value, OpenAiError> = match &body {
        Ok(bytes) => serde_json::from_slice(bytes).map_err(|e| {
            OpenAiError::invalid(format!(
                "We could not parse the JSON body of your request: {e}"
            ))
        }),
        Err(rejection) => Err(OpenAiError::invalid(rejection.body_text())),
    };
    let (streaming, include_usage, model) = match &body {
        Ok(body) => (
            body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            body.pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            body.get("model").and_then(Value::as_str).map(str::to_owned),
        ),
        Err(_) => (false, false, None),
    };
    let mut inflight = Inflight::new(Arc::clone(&shared), id, streaming);

    let plan = (|| {
        let body = body
            .as_ref()
            .map_err(|e| OpenAiError::invalid(e.message.clone()))?;
        let model = model
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| OpenAiError::invalid("you must provide a model parameter"))?;
        let prompt = parse_chat_prompt(body).map_err(OpenAiError::invalid)?;
        let slot = match shared.knobs.lookup(&model) {
            Lookup::Allowed(slot) => slot,
            Lookup::UnknownModel => {
                return Err(OpenAiError {
                    status: StatusCode::NOT_FOUND,
                    kind: "invalid_request_error".to_owned(),
                    message: format!(
                        "The model `{model}` does not exist or you do not have access to it."
                    ),
                    code: Some("model_not_found"),
                    retry_after: None,
                });
            }
        };
        let fault = slot.take_fault().is_some();
        let answer = answer(&model, &prompt, slot.knobs.answer_words);
        Ok(Plan {
            slot,
            fault,
            answer,
            model,
        })
    })();

    shared.recorder.record(|| SeenRequest {
        id,
        method: method.to_string(),
        raw_path: uri.path().to_owned(),
        model_id: model.clone().unwrap_or_default(),
        operation: Operation::ChatCompletions,
        region: None,
        service: None,
        body: body.as_ref().map_or(Value::Null, Clone::clone),
        client_went_away: false,
        query: uri.query().map(str::to_owned),
        headers: header_record(&headers),
    });

    let plan = match plan {
        Ok(plan) => plan,
        Err(error) => {
            inflight.complete();
            return with_request_id(error.into_response(), id);
        }
    };

    let mut stop = shared.stop.subscribe();
    if !sit_out_latency(plan.slot.knobs.latency, &mut stop).await {
        inflight.complete();
        return with_request_id(stopping().into_response(), id);
    }

    let fault = plan.slot.knobs.fault.clone().filter(|_| plan.fault);
    let response = match fault {
        Some(Fault::Status {
            status,
            error_type,
            message,
            retry_after,
        }) => {
            inflight.complete();
            OpenAiError {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                kind: error_type,
                message,
                code: None,
                retry_after,
            }
            .into_response()
        }
        Some(Fault::Hang) => {
            stopped(&mut stop).await;
            inflight.complete();
            stopping().into_response()
        }
        Some(Fault::InvalidJson) => {
            inflight.complete();
            if streaming {
                typed(
                    Body::from("data: this is not JSON\n\n"),
                    "text/event-stream",
                )
            } else {
                typed(Body::from("this is not JSON"), "application/json")
            }
        }
        Some(fault) if !streaming => {
            inflight.complete();
            match fault {
                Fault::CutStream { .. } => cut_body(Bytes::from_static(b"{\"id\":\"chatcmpl-")),
                Fault::StreamException { exception_type, .. } => {
                    exception_error(&exception_type).into_response()
                }
                _ => typed(Body::from("this is not JSON"), "application/json"),
            }
        }
        fault if streaming => {
            let events = Events::new(&plan, include_usage, fault.as_ref(), id, created());
            let body = events.into_body(plan.slot.knobs.token_delay, inflight, stop);
            return with_request_id(typed(body, "text/event-stream"), id);
        }
        _ => {
            inflight.complete();
            unary(&plan, id, started)
        }
    };
    with_request_id(response, id)
}

/// The HTTP error OpenAI-style servers send where Bedrock would send an exception frame.
fn exception_error(exception_type: &str) -> OpenAiError {
    let status = match exception_type {
        "throttlingException" => StatusCode::TOO_MANY_REQUESTS,
        "serviceUnavailableException" => StatusCode::SERVICE_UNAVAILABLE,
        "validationException" => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    OpenAiError {
        status,
        kind: exception_type.to_owned(),
        message: "emulated fault".to_owned(),
        code: None,
        retry_after: None,
    }
}

fn stopping() -> OpenAiError {
    OpenAiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        kind: "server_error".to_owned(),
        message: "The emulator is shutting down.".to_owned(),
        code: None,
        retry_after: None,
    }
}

fn finish_reason(reason: StopReason) -> &'static str {
    match reason {
        StopReason::MaxTokens => "length",
        StopReason::EndTurn | StopReason::StopSequence => "stop",
        StopReason::ToolUse => "tool_calls",
        StopReason::GuardrailIntervened => "content_filter",
    }
}

fn completion_id(id: u64) -> String {
    format!("chatcmpl-emu{id:012x}")
}

fn created() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn usage(answer: &Answer) -> Value {
    json!({
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
    })
}

fn unary(plan: &Plan, id: u64, started: Instant) -> Response {
    let body = json!({
        "id": completion_id(id),
        "object": "chat.completion",
        "created": created(),
        "model": plan.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": plan.answer.text},
            "finish_reason": finish_reason(plan.answer.stop_reason),
        }],
        "usage": usage(&plan.answer),
    });
    let mut response = typed(Body::from(body.to_string()), "application/json");
    let elapsed = crate::server::millis(started.elapsed());
    response
        .headers_mut()
        .insert("openai-processing-ms", HeaderValue::from(elapsed));
    response
}

/// A 200 whose body sends `head` and then breaks off with a connection reset.
fn cut_body(head: Bytes) -> Response {
    typed(crate::stream::cut_after(head), "application/json")
}

/// One step of an SSE answer.
enum Step {
    /// Send these bytes now.
    Send(Bytes),
    /// Wait the token delay.
    Pause,
    /// The answer is fully handed over (or deliberately broken); later drops are not
    /// the client going away.
    Complete,
    /// Reset the connection.
    Cut,
}

/// The whole SSE answer, decided before the response head is sent.
struct Events {
    steps: VecDeque<Step>,
}

impl Events {
    fn new(plan: &Plan, include_usage: bool, fault: Option<&Fault>, id: u64, created: u64) -> Self {
        let base = |choices: Value| {
            json!({
                "id": completion_id(id),
                "object": "chat.completion.chunk",
                "created": created,
                "model": plan.model,
                "choices": choices,
            })
        };
        let event = |value: Value| Step::Send(Bytes::from(format!("data: {value}\n\n")));
        let mut steps = VecDeque::new();
        steps.push_back(event(base(json!([{
            "index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null
        }]))));

        let after = match fault {
            Some(
                Fault::CutStream { after_deltas }
                | Fault::BadCrc { after_deltas }
                | Fault::StreamException { after_deltas, .. },
            ) => Some(*after_deltas),
            _ => None,
        };
        for (sent, piece) in deltas(&plan.answer.text).enumerate() {
            if after == Some(sent) {
                break;
            }
            if sent > 0 {
                steps.push_back(Step::Pause);
            }
            steps.push_back(event(base(json!([{
                "index": 0, "delta": {"content": piece}, "finish_reason": null
            }]))));
        }

        match fault {
            Some(Fault::CutStream { .. }) => {
                steps.push_back(Step::Complete);
                steps.push_back(Step::Cut);
            }
            Some(Fault::BadCrc { .. }) => {
                // SSE has no checksum; the nearest corruption is an event that is not JSON.
                steps.push_back(Step::Send(Bytes::from_static(
                    b"data: {\"choices\":[{\"delta\":{\"content\":\"\xe2\x80\n\n",
                )));
                steps.push_back(Step::Complete);
            }
            Some(Fault::StreamException { exception_type, .. }) => {
                steps.push_back(event(json!({
                    "error": {"message": "emulated stream exception", "type": exception_type}
                })));
                steps.push_back(Step::Complete);
            }
            _ => {
                steps.push_back(event(base(json!([{
                    "index": 0, "delta": {},
                    "finish_reason": finish_reason(plan.answer.stop_reason)
                }]))));
                if include_usage {
                    let mut last = base(json!([]));
                    last["usage"] = usage(&plan.answer);
                    steps.push_back(event(last));
                }
                steps.push_back(Step::Send(Bytes::from_static(b"data: [DONE]\n\n")));
                steps.push_back(Step::Complete);
            }
        }
        Events { steps }
    }

    /// The body, each event flushed as produced. `inflight` rides along so that dropping
    /// the body early (the client went away) counts as a cancelled stream.
    fn into_body(
        self,
        token_delay: Duration,
        inflight: Inflight,
        stop: watch::Receiver<bool>,
    ) -> Body {
        let state = (self.steps, inflight, stop);
        Body::from_stream(futures_util::stream::unfold(
            state,
            move |(mut steps, mut inflight, mut stop)| async move {
                loop {
                    match steps.pop_front()? {
                        Step::Send(bytes) => {
                            return Some((Ok::<_, io::Error>(bytes), (steps, inflight, stop)));
                        }
                        Step::Pause if token_delay.is_zero() => {}
                        Step::Pause => {
                            tokio::select! {
                                () = tokio::time::sleep(token_delay) => {}
                                () = stopped(&mut stop) => {
                                    // The emulator is stopping, not the client leaving.
                                    inflight.complete();
                                    steps.clear();
                                    steps.push_back(Step::Cut);
                                }
                            }
                        }
                        Step::Complete => inflight.complete(),
                        Step::Cut => return Some((Err(cut().await), (steps, inflight, stop))),
                    }
                }
            },
        ))
    }
}
