//! One attempt of a call a route makes beside chat (embeddings, token counts) at one
//! target: a client span named as the GenAI conventions name operations, exported with
//! chat's attempt spans, around the call bounded by the route's `read_timeout`.

use std::future::Future;
use std::time::Duration;

use aigw_core::{Error, ErrorKind};
use tracing::Instrument;

/// The target an attempt goes to, as its span names it.
pub(crate) struct SideTarget<'a> {
    pub(crate) route: &'a str,
    pub(crate) index: usize,
    pub(crate) label: &'a str,
    pub(crate) provider: &'a str,
    pub(crate) model: &'a str,
}

/// Runs `call` as attempt `number` of `operation` (`embeddings`, `count_tokens`) at
/// `target`, within `timeout`; the span gets the input tokens `input_tokens` reads from
/// the answer, or the error's type.
pub(crate) async fn attempt<T>(
    operation: &'static str,
    target: &SideTarget<'_>,
    number: u32,
    timeout: Duration,
    call: impl Future<Output = Result<T, Error>>,
    input_tokens: impl FnOnce(&T) -> Option<u64>,
) -> Result<T, Error> {
    let span = tracing::info_span!(
        target: aigw_telemetry::SPAN_TARGET,
        "side_call",
        otel.name = %format_args!("{operation} {}", target.model),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = operation,
        gen_ai.provider.name = %target.provider,
        gen_ai.request.model = %target.model,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        aigw.route = %target.route,
        aigw.target = %target.label,
        aigw.attempt = i64::from(number),
        aigw.target.index = i64::try_from(target.index).unwrap_or(i64::MAX),
        error.type = tracing::field::Empty,
    );
    let answer = match tokio::time::timeout(timeout, call)
        .instrument(span.clone())
        .await
    {
        Ok(answer) => answer,
        Err(_) => Err(Error::new(
            ErrorKind::UpstreamTimeout,
            format!("no {operation} answer within read_timeout ({timeout:?})"),
        )),
    };
    match &answer {
        Ok(value) => {
            if let Some(tokens) = input_tokens(value) {
                span.record("gen_ai.usage.input_tokens", tokens);
            }
        }
        Err(error) => {
            span.record("error.type", error.kind().as_str());
            span.record("otel.status_code", "error");
        }
    }
    answer
}
