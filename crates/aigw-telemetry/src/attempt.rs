//! One client span per target attempt, named and attributed after the OpenTelemetry GenAI
//! semantic conventions, plus the per-target metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aigw_core::{
    Around, AroundLayer, Attempt, ChatChunk, ChatCompletion, ChatReply, ChunkStream, DriverFuture,
    Error, FinishReason, ReplyBody, Usage,
};
use futures_util::Stream;
use opentelemetry::{Array, StringValue, Value};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::SPAN_TARGET;
use crate::metrics::{AttemptLabels, RouteLabels, TargetLabels, TokenLabels, metrics};
use crate::record;

/// Wraps each [`Attempt`] in a client span (`chat {model}`) under the request's span and
/// counts it in the per-target metrics. Sits between the balancer and the attempt timeout,
/// so a timed-out attempt ends its span with the timeout error and each failover is a
/// sibling span.
#[derive(Clone)]
pub struct AttemptSpan {
    route: Arc<RouteTelemetry>,
}

/// [`AttemptSpan`] as a tower layer.
pub type AttemptSpanLayer = AroundLayer<AttemptSpan>;

struct RouteTelemetry {
    name: Arc<str>,
    algorithm: Box<str>,
    targets: Box<[TargetTelemetry]>,
    failovers: Counter,
}

/// One target as an attempt's span and metrics describe it: plain data, so telemetry needs
/// no config or balancer type.
#[derive(Debug, Clone, Default)]
pub struct TargetDescriptor {
    /// The target's label in metrics and spans (`provider/model`), as the balancer names it.
    pub label: String,
    /// The provider as the config names it (`bedrock`, `openai`).
    pub provider: String,
    /// The model id asked of the provider.
    pub model: String,
    /// The `max_tokens` the target sends when the request sets none.
    pub default_max_tokens: Option<u32>,
    /// The `temperature` the target sends when the request sets none.
    pub default_temperature: Option<f32>,
    /// Whether prompts and completions go on the attempt's span (`logging.log_payloads`).
    pub log_payloads: bool,
}

/// What an attempt's span and metrics need of its target, prepared once per route so the
/// request path neither formats names nor looks up metric series.
struct TargetTelemetry {
    label: Arc<str>,
    model: Arc<str>,
    provider: Box<str>,
    span_name: String,
    default_max_tokens: Option<u32>,
    default_temperature: Option<f32>,
    log_payloads: bool,
    ok_duration: Histogram,
    time_to_first_token: Histogram,
    input_tokens: Counter,
    output_tokens: Counter,
}

impl AttemptSpan {
    /// Telemetry for the attempts of the route named `route`, balanced by `algorithm` (as
    /// the config spells it) over `targets`, indexed as the attempts index them.
    pub fn layer(
        route: &str,
        algorithm: &str,
        targets: impl IntoIterator<Item = TargetDescriptor>,
    ) -> AttemptSpanLayer {
        let name: Arc<str> = Arc::from(route);
        let m = metrics();
        let targets: Vec<TargetTelemetry> = targets
            .into_iter()
            .map(|t| {
                let label: Arc<str> = Arc::from(t.label);
                let target = TargetLabels {
                    route: name.clone(),
                    target: label.clone(),
                };
                let tokens = |kind| {
                    m.tokens
                        .get_or_create(&TokenLabels {
                            route: name.clone(),
                            target: label.clone(),
                            r#type: kind,
                        })
                        .clone()
                };
                TargetTelemetry {
                    span_name: format!("chat {}", t.model),
                    model: Arc::from(t.model),
                    provider: semconv_provider(&t.provider).into(),
                    default_max_tokens: t.default_max_tokens,
                    default_temperature: t.default_temperature,
                    log_payloads: t.log_payloads,
                    ok_duration: m
                        .attempt_duration
                        .get_or_create(&AttemptLabels {
                            route: name.clone(),
                            target: label.clone(),
                            outcome: "ok",
                        })
                        .clone(),
                    time_to_first_token: m.time_to_first_token.get_or_create(&target).clone(),
                    input_tokens: tokens("input"),
                    output_tokens: tokens("output"),
                    label,
                }
            })
            .collect();
        let failovers = m
            .failovers
            .get_or_create(&RouteLabels {
                route: name.clone(),
            })
            .clone();
        AroundLayer::new(AttemptSpan {
            route: Arc::new(RouteTelemetry {
                name,
                algorithm: algorithm.into(),
                targets: targets.into(),
                failovers,
            }),
        })
    }
}

/// The GenAI conventions' provider names (`gen_ai.provider.name`, formerly `gen_ai.system`)
/// for the config's.
fn semconv_provider(provider: &str) -> &str {
    match provider {
        "bedrock" => "aws.bedrock",
        other => other,
    }
}

impl Around<Attempt> for AttemptSpan {
    fn around<F>(&self, attempt: Attempt, call: impl FnOnce(Attempt) -> F) -> DriverFuture
    where
        F: Future<Output = Result<ChatReply, Error>> + Send + 'static,
    {
        let route = self.route.clone();
        let Some(target) = route.targets.get(attempt.target) else {
            // Not ours to judge: the layer below answers an unknown index with its error.
            return Box::pin(call(attempt));
        };
        let request = &attempt.request;
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "attempt",
            otel.name = target.span_name.as_str(),
            otel.kind = "client",
            otel.status_code = Empty,
            otel.status_description = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.system = &*target.provider,
            gen_ai.provider.name = &*target.provider,
            gen_ai.request.model = &*target.model,
            gen_ai.request.max_tokens = Empty,
            gen_ai.request.temperature = Empty,
            gen_ai.response.model = Empty,
            gen_ai.response.id = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.input.messages = Empty,
            gen_ai.output.messages = Empty,
            error.type = Empty,
            aigw.route = &*route.name,
            aigw.target = &*target.label,
            aigw.target.index = i64::try_from(attempt.target).unwrap_or(i64::MAX),
            aigw.balancer.algorithm = &*route.algorithm,
            aigw.attempt = i64::from(attempt.number),
            aigw.stream = request.stream,
            aigw.time_to_first_token = Empty,
        );
        if !span.is_disabled() {
            if let Some(max_tokens) = request.max_tokens.or(target.default_max_tokens) {
                span.record("gen_ai.request.max_tokens", i64::from(max_tokens));
            }
            if let Some(temperature) = request.temperature.or(target.default_temperature) {
                span.record("gen_ai.request.temperature", f64::from(temperature));
            }
            if target.log_payloads {
                span.record(
                    "gen_ai.input.messages",
                    input_messages(request).to_string().as_str(),
                );
            }
        }
        if attempt.number > 1 {
            route.failovers.inc();
        }
        record::update(|r| {
            if r.route.is_none() {
                r.route = Some(route.name.clone());
            }
            r.target = Some(target.label.clone());
            r.model = Some(target.model.clone());
            r.attempts = attempt.number;
            r.stream = request.stream;
            r.input_tokens = None;
            r.output_tokens = None;
            r.error = None;
        });
        let index = attempt.target;
        let answer = span.in_scope(|| call(attempt));
        let active = Active::start(route, index);
        let attempt_span = span.clone();
        Box::pin(
            async move {
                let result = answer.await;
                let span = attempt_span;
                match result {
                    Ok(reply) => Ok(active.answered(reply, span)),
                    Err(error) => {
                        active.failed(&error, &span);
                        Err(error)
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// An attempt under way, until its answer or its stream ends. (Its in-flight count is the
/// balancer's, which `/metrics` reads.)
struct Active {
    route: Arc<RouteTelemetry>,
    index: usize,
    started: Instant,
    ended: bool,
}

impl Active {
    fn start(route: Arc<RouteTelemetry>, index: usize) -> Active {
        Active {
            route,
            index,
            started: Instant::now(),
            ended: false,
        }
    }

    fn target(&self) -> &TargetTelemetry {
        &self.route.targets[self.index]
    }

    fn answered(self, mut reply: ChatReply, span: tracing::Span) -> ChatReply {
        span.record("gen_ai.response.model", &*reply.served_by.model);
        reply.body = match reply.body {
            ReplyBody::Complete(answer) => {
                self.completed(&answer, &span);
                ReplyBody::Complete(answer)
            }
            // The stream owns the span and the attempt's end until its last chunk.
            ReplyBody::Stream(chunks) => ReplyBody::Stream(Box::pin(Watched {
                chunks,
                active: self,
                span,
                first_token: None,
                text: None,
            })),
        };
        reply
    }

    fn completed(mut self, answer: &ChatCompletion, span: &tracing::Span) {
        span.record("gen_ai.response.id", answer.id.as_str());
        self.usage(answer.usage, span);
        finish_reason(answer.finish_reason, span);
        if self.target().log_payloads {
            span.record(
                "gen_ai.output.messages",
                output_messages(&answer.content, answer.finish_reason)
                    .to_string()
                    .as_str(),
            );
        }
        self.end_ok();
    }

    fn usage(&self, usage: Usage, span: &tracing::Span) {
        span.record("gen_ai.usage.input_tokens", i64::from(usage.prompt_tokens));
        span.record(
            "gen_ai.usage.output_tokens",
            i64::from(usage.completion_tokens),
        );
        let target = self.target();
        target.input_tokens.inc_by(u64::from(usage.prompt_tokens));
        target
            .output_tokens
            .inc_by(u64::from(usage.completion_tokens));
        record::update(|r| {
            r.input_tokens = Some(usage.prompt_tokens);
            r.output_tokens = Some(usage.completion_tokens);
        });
    }

    fn end_ok(&mut self) {
        if !self.ended {
            self.ended = true;
            self.target()
                .ok_duration
                .observe(self.started.elapsed().as_secs_f64());
        }
    }

    fn failed(mut self, error: &Error, span: &tracing::Span) {
        self.end_failed(error, span);
    }

    fn end_failed(&mut self, error: &Error, span: &tracing::Span) {
        if self.ended {
            return;
        }
        self.ended = true;
        let outcome = error.kind().as_str();
        record::update(|r| r.error = Some(outcome));
        span.record("otel.status_code", "error");
        span.record("otel.status_description", error.message());
        span.record("error.type", outcome);
        let target = self.target();
        metrics()
            .attempt_duration
            .get_or_create(&AttemptLabels {
                route: self.route.name.clone(),
                target: target.label.clone(),
                outcome,
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

fn finish_reason(reason: FinishReason, span: &tracing::Span) {
    if span.is_disabled() {
        return;
    }
    // The conventions make this a string array, which `tracing` fields cannot carry.
    span.set_attribute(
        "gen_ai.response.finish_reasons",
        Value::Array(Array::String(vec![StringValue::from(reason.as_str())])),
    );
}

/// The prompt in the GenAI conventions' `gen_ai.input.messages` shape; only built for
/// targets with `logging.log_payloads`.
fn input_messages(request: &aigw_core::ChatRequest) -> serde_json::Value {
    request
        .messages
        .iter()
        .map(|m| {
            serde_json::json!({
                "role": m.role.as_str(),
                "parts": [{"type": "text", "content": m.text()}],
            })
        })
        .collect()
}

fn output_messages(content: &str, reason: FinishReason) -> serde_json::Value {
    serde_json::json!([{
        "role": "assistant",
        "parts": [{"type": "text", "content": content}],
        "finish_reason": reason.as_str(),
    }])
}

/// A streamed answer that reports time to first token, token counts and the attempt's end.
struct Watched {
    chunks: ChunkStream,
    active: Active,
    span: tracing::Span,
    first_token: Option<Duration>,
    /// The completion so far, kept only for targets with `logging.log_payloads`.
    text: Option<String>,
}

impl Watched {
    fn observe(&mut self, chunk: &ChatChunk) {
        if let Some(content) = chunk.content.as_deref().filter(|c| !c.is_empty()) {
            if self.first_token.is_none() {
                let elapsed = self.active.started.elapsed();
                self.first_token = Some(elapsed);
                self.span
                    .record("aigw.time_to_first_token", elapsed.as_secs_f64());
                self.active
                    .target()
                    .time_to_first_token
                    .observe(elapsed.as_secs_f64());
            }
            if self.active.target().log_payloads {
                self.text.get_or_insert_with(String::new).push_str(content);
            }
        }
        if let Some(usage) = chunk.usage {
            self.active.usage(usage, &self.span);
        }
        if let Some(reason) = chunk.finish_reason {
            finish_reason(reason, &self.span);
            if let Some(text) = self.text.take() {
                self.span.record(
                    "gen_ai.output.messages",
                    output_messages(&text, reason).to_string().as_str(),
                );
            }
        }
    }
}

impl Stream for Watched {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = {
            let _entered = this.span.enter();
            this.chunks.as_mut().poll_next(cx)
        };
        match &item {
            Poll::Ready(Some(Ok(chunk))) => this.observe(chunk),
            Poll::Ready(Some(Err(error))) => this.active.end_failed(error, &this.span),
            Poll::Ready(None) => this.active.end_ok(),
            Poll::Pending => {}
        }
        item
    }
}
