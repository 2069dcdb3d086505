//! The driver contract: a driver is a cloneable `tower::Service<ChatRequest>` per target.
//! A provider implements [`Chat`] for one target; [`Driver`] is the one service shell they
//! all share, and the one place that applies what is the same for every provider: request
//! defaults, the stream idle timeout and the serving-model name.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::Service;
use tower::util::BoxCloneSyncService;
use tracing::Instrument;

use crate::idle::idle_timeout;
use crate::{ChatReply, ChatRequest, Error, ReplyBody, RequestDefaults, ServedBy};

/// A type-erased driver for one target, as the balancer holds it.
pub type BoxDriver = BoxCloneSyncService<ChatRequest, ChatReply, Error>;

/// The future a driver returns, boxed at the crate boundary.
pub type DriverFuture = Pin<Box<dyn Future<Output = Result<ChatReply, Error>> + Send>>;

/// Kong's default `read_timeout`, the stream idle timeout of a [`Driver`] not given one.
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One target of one provider: the model it serves and the call itself, unary or stream as
/// the request asks. Everything else a driver needs, [`Driver`] adds.
pub trait Chat: Send + Sync + 'static {
    /// The provider's name as the config spells it (`bedrock`, `openai`).
    const PROVIDER: &'static str;

    /// The model id this target asks for.
    fn model(&self) -> &Arc<str>;

    /// Answers one request, whose unset settings already carry the target's defaults.
    ///
    /// A stream is returned once its answer began (so that an upstream failing at once
    /// stays a plain error the balancer can fail over from); [`Driver`] bounds the silence
    /// between its later chunks.
    fn chat(&self, request: ChatRequest) -> impl Future<Output = Result<ReplyBody, Error>> + Send;
}

/// A [`Chat`] as a `tower::Service<ChatRequest>`.
///
/// Around every call it fills the settings the request leaves unset from the target's
/// [`RequestDefaults`], names the target in the reply's [`ServedBy`], and ends a streamed
/// answer with an [`ErrorKind::UpstreamTimeout`](crate::ErrorKind::UpstreamTimeout) when
/// the upstream stays silent between two chunks for longer than the stream idle timeout
/// (Kong's `read_timeout`, which like nginx's bounds the gap between two reads).
///
/// Cloning is cheap (one `Arc`). Always ready: neither the AWS SDK nor an HTTP client pool
/// pushes back, so concurrency limits belong to the balancer's layers above. Each call runs
/// in a debug span naming the provider and model, and a failure is logged there at debug
/// level (the balancer decides what reaches the client and the access log).
pub struct Driver<C> {
    chat: Arc<C>,
    defaults: RequestDefaults,
    stream_idle_timeout: Duration,
}

impl<C> Clone for Driver<C> {
    fn clone(&self) -> Self {
        Driver {
            chat: Arc::clone(&self.chat),
            defaults: self.defaults,
            stream_idle_timeout: self.stream_idle_timeout,
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Driver<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("chat", &self.chat)
            .field("defaults", &self.defaults)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .finish()
    }
}

impl<C: Chat> Driver<C> {
    /// The service calling `chat`, with no request defaults and Kong's default
    /// `read_timeout` of 60 s as the stream idle timeout.
    pub fn new(chat: C) -> Self {
        Driver {
            chat: Arc::new(chat),
            defaults: RequestDefaults::default(),
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
        }
    }

    /// Uses `defaults` where a request leaves a setting unset.
    pub fn with_defaults(mut self, defaults: RequestDefaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// Ends a started stream whose upstream sends nothing for longer than `limit`.
    pub fn with_stream_idle_timeout(mut self, limit: Duration) -> Self {
        self.stream_idle_timeout = limit;
        self
    }

    /// The model id this target asks for.
    pub fn model(&self) -> &Arc<str> {
        self.chat.model()
    }

    /// The target as answers and traces name it; the one place a [`ServedBy`] is built.
    pub fn served_by(&self) -> ServedBy {
        ServedBy {
            provider: C::PROVIDER,
            model: Arc::clone(self.chat.model()),
        }
    }

    /// The target type-erased, as the balancer holds drivers.
    pub fn into_driver(self) -> BoxDriver {
        BoxCloneSyncService::new(self)
    }
}

impl<C: Chat> Service<ChatRequest> for Driver<C> {
    type Response = ChatReply;
    type Error = Error;
    type Future = DriverFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: ChatRequest) -> DriverFuture {
        let chat = Arc::clone(&self.chat);
        let served_by = self.served_by();
        let idle_limit = self.stream_idle_timeout;
        self.defaults.fill(&mut request);
        let span = tracing::debug_span!(
            "driver",
            provider = C::PROVIDER,
            model = %chat.model(),
            stream = request.stream
        );
        Box::pin(
            async move {
                let body = match chat.chat(request).await {
                    Ok(ReplyBody::Stream(chunks)) => {
                        ReplyBody::Stream(idle_timeout(chunks, idle_limit, C::PROVIDER))
                    }
                    Ok(complete) => complete,
                    Err(err) => {
                        tracing::debug!(kind = %err.kind(), error = %err, "upstream call failed");
                        return Err(err);
                    }
                };
                Ok(ChatReply { served_by, body })
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tower::ServiceExt;

    use super::*;
    use crate::{ChatCompletion, ChunkSequence, ErrorKind, FinishReason, Usage};

    /// Answers with the settings it was called with, or a stream that stalls after one chunk.
    #[derive(Debug)]
    struct Echo {
        model: Arc<str>,
    }

    impl Chat for Echo {
        const PROVIDER: &'static str = "echo";

        fn model(&self) -> &Arc<str> {
            &self.model
        }

        async fn chat(&self, request: ChatRequest) -> Result<ReplyBody, Error> {
            if request.stream {
                let first = ChunkSequence::new(Arc::from("c"), 1, Arc::clone(&self.model)).chunk();
                let stalls =
                    futures_util::stream::iter([Ok(first)]).chain(futures_util::stream::pending());
                return Ok(ReplyBody::Stream(Box::pin(stalls)));
            }
            Ok(ReplyBody::Complete(ChatCompletion {
                id: "c".into(),
                created: 1,
                model: Arc::clone(&self.model),
                content: format!(
                    "{:?} {:?} {:?}",
                    request.max_tokens, request.temperature, request.top_p
                ),
                tool_calls: Vec::new(),
                reasoning: None,
                finish_reason: FinishReason::Stop,
                usage: Usage::default(),
            }))
        }
    }

    fn target() -> Driver<Echo> {
        Driver::new(Echo {
            model: Arc::from("m"),
        })
    }

    #[tokio::test]
    async fn the_shell_fills_defaults_and_names_the_target() {
        let target = target().with_defaults(RequestDefaults {
            max_tokens: Some(64),
            temperature: Some(0.5),
            top_p: None,
        });
        let request = ChatRequest {
            temperature: Some(0.0),
            ..ChatRequest::default()
        };
        let reply = target.oneshot(request).await.unwrap();
        assert_eq!(reply.served_by.to_string(), "echo/m");
        let ReplyBody::Complete(answer) = reply.body else {
            panic!("expected a whole answer");
        };
        assert_eq!(answer.content, "Some(64) Some(0.0) None");
    }

    #[tokio::test(start_paused = true)]
    async fn every_stream_gets_the_idle_timeout() {
        let target = target().with_stream_idle_timeout(Duration::from_millis(300));
        let request = ChatRequest {
            stream: true,
            ..ChatRequest::default()
        };
        let reply = target.into_driver().oneshot(request).await.unwrap();
        let ReplyBody::Stream(chunks) = reply.body else {
            panic!("expected a stream");
        };
        let items: Vec<_> = chunks.collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        let err = items[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UpstreamTimeout);
        assert_eq!(
            err.message(),
            "echo stream sent nothing for 300 ms (read_timeout)"
        );
    }
}
