use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use aigw_core::{
    Around, AroundLayer, Attempt, ChatChunk, ChatReply, ChunkStream, DriverFuture, Error,
    ReplyBody, Usage,
};
use futures_util::Stream;

use crate::RouteState;

/// Records each attempt into the route's shared [`RouteState`], which the pick strategies,
/// the health check and the status endpoint read:
///
/// - in flight from the call until the answer, or a stream's end, or until the caller drops
///   it;
/// - Kong's passive health check: the outcome of the answer head counts for or against the
///   target, so after `max_fails` counted failures the balancer leaves it out for
///   `fail_timeout` (see [`HealthPolicy`](crate::HealthPolicy) for what counts). A stream
///   that breaks later is the client's error to see, not a reason to take the target out;
/// - time to first token: to the answer head of a whole answer, to the first chunk of a
///   stream;
/// - each failure by its kind;
/// - for each answer that ends cleanly, its latency and token usage.
///
/// Place it above [`AttemptTimeout`](crate::AttemptTimeout), so that an attempt
/// that timed out counts against its target.
#[derive(Debug, Clone)]
pub struct Record {
    state: Arc<RouteState>,
}

/// [`Record`] as a tower layer.
pub type RecordLayer = AroundLayer<Record>;

impl Record {
    /// Records into the route's shared `state`.
    pub fn layer(state: Arc<RouteState>) -> RecordLayer {
        AroundLayer::new(Record { state })
    }
}

impl Around<Attempt> for Record {
    fn around<F>(&self, attempt: Attempt, call: impl FnOnce(Attempt) -> F) -> DriverFuture
    where
        F: Future<Output = Result<ChatReply, Error>> + Send + 'static,
    {
        let guard = InFlight::start(self.state.clone(), attempt.target);
        let answer = call(attempt);
        Box::pin(async move {
            let mut reply = match answer.await {
                Ok(reply) => reply,
                Err(error) => {
                    guard.failed(&error);
                    return Err(error);
                }
            };
            guard.answered();
            reply.body = match reply.body {
                ReplyBody::Complete(response) => {
                    guard.first_token();
                    guard.finish(Some(response.usage));
                    ReplyBody::Complete(response)
                }
                ReplyBody::Stream(chunks) => ReplyBody::Stream(Box::pin(Measured {
                    chunks,
                    guard: Some(guard),
                    usage: None,
                    first: true,
                })),
            };
            Ok(reply)
        })
    }
}

/// One attempt, counted in flight until dropped.
struct InFlight {
    state: Arc<RouteState>,
    target: usize,
    started: Instant,
}

impl InFlight {
    fn start(state: Arc<RouteState>, target: usize) -> Self {
        state.start_attempt(target);
        InFlight {
            state,
            target,
            started: Instant::now(),
        }
    }

    /// The answer head came: a success for the health check.
    fn answered(&self) {
        self.state.record_success(self.target);
    }

    /// The first of the answer reached us: a time-to-first-token sample.
    fn first_token(&self) {
        self.state
            .record_first_token(self.target, self.started.elapsed());
    }

    /// No answer: counts for the health check as its policy says, and ends the attempt.
    fn failed(self, error: &Error) {
        self.state.record_failure(self.target, error);
    }

    /// The answer ended cleanly: a latency (and usage) sample.
    fn finish(self, usage: Option<Usage>) {
        self.state
            .record_answer(self.target, self.started.elapsed(), usage);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.end_attempt(self.target);
    }
}

/// A stream that records its answer's latency and usage when it ends cleanly, and stops
/// counting as in flight when it ends or the client drops it.
struct Measured {
    chunks: ChunkStream,
    guard: Option<InFlight>,
    usage: Option<Usage>,
    /// No chunk has come yet.
    first: bool,
}

impl Stream for Measured {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.chunks.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(chunk))) => {
                if std::mem::take(&mut self.first)
                    && let Some(guard) = &self.guard
                {
                    guard.first_token();
                }
                if chunk.usage.is_some() {
                    self.usage = chunk.usage;
                }
            }
            Poll::Ready(None) => {
                let usage = self.usage;
                if let Some(guard) = self.guard.take() {
                    guard.finish(usage);
                }
            }
            // A broken stream is no latency sample and no health failure; dropping the
            // guard still ends the attempt.
            Poll::Ready(Some(Err(_))) => self.guard = None,
            Poll::Pending => {}
        }
        item
    }
}
