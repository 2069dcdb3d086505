use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use aigw_core::{ChatChunk, ChatReply, ChunkStream, DriverFuture, Error, ReplyBody, Usage};
use futures_util::Stream;
use tower::{Layer, Service};

use crate::{Attempt, RouteState};

/// Keeps each target's live load and performance figures, which the pick strategies and
/// the status endpoint read: attempts in flight (a stream counts until it ends or is
/// dropped), and for each successful answer its latency and token usage.
#[derive(Debug, Clone)]
pub struct StatsLayer {
    state: Arc<RouteState>,
}

impl StatsLayer {
    /// Records into the route's shared `state`.
    pub fn new(state: Arc<RouteState>) -> Self {
        StatsLayer { state }
    }
}

impl<S> Layer<S> for StatsLayer {
    type Service = Stats<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Stats {
            inner,
            state: self.state.clone(),
        }
    }
}

/// See [`StatsLayer`].
#[derive(Debug, Clone)]
pub struct Stats<S> {
    inner: S,
    state: Arc<RouteState>,
}

impl<S> Service<Attempt> for Stats<S>
where
    S: Service<Attempt, Response = ChatReply, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = ChatReply;
    type Error = Error;
    type Future = DriverFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        let guard = InFlight::start(self.state.clone(), attempt.target);
        let answer = self.inner.call(attempt);
        Box::pin(async move {
            let mut reply = answer.await?;
            reply.body = match reply.body {
                ReplyBody::Complete(response) => {
                    guard.finish(Some(response.usage));
                    ReplyBody::Complete(response)
                }
                ReplyBody::Stream(chunks) => ReplyBody::Stream(Box::pin(Measured {
                    chunks,
                    guard: Some(guard),
                    usage: None,
                })),
            };
            Ok(reply)
        })
    }
}

/// One attempt counted in flight until dropped.
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
}

impl Stream for Measured {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.chunks.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(chunk))) => {
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
            // A broken stream is no latency sample; the guard still ends the attempt.
            Poll::Ready(Some(Err(_))) => self.guard = None,
            Poll::Pending => {}
        }
        item
    }
}
