//! The driver contract: a driver is a cloneable `tower::Service<ChatRequest>` per target.
//! A provider implements [`Chat`] for one target; [`Target`] is the one service shell they
//! all share.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;
use tower::util::BoxCloneSyncService;
use tracing::Instrument;

use crate::{ChatReply, ChatRequest, Error, ServedBy};

/// A type-erased driver for one target, as the balancer holds it.
pub type BoxDriver = BoxCloneSyncService<ChatRequest, ChatReply, Error>;

/// The future a driver returns, boxed at the crate boundary.
pub type DriverFuture = Pin<Box<dyn Future<Output = Result<ChatReply, Error>> + Send>>;

/// One target of one provider: the model it serves and the call itself, unary or stream as
/// the request asks. Everything else a driver needs, [`Target`] adds.
pub trait Chat: Send + Sync + 'static {
    /// The provider's name as the config spells it (`bedrock`, `openai`).
    const PROVIDER: &'static str;

    /// The model id this target asks for.
    fn model(&self) -> &Arc<str>;

    /// Answers one request.
    fn chat(&self, request: ChatRequest) -> impl Future<Output = Result<ChatReply, Error>> + Send;
}

/// A [`Chat`] as a `tower::Service<ChatRequest>`.
///
/// Cloning is cheap (one `Arc`). Always ready: neither the AWS SDK nor an HTTP client pool
/// pushes back, so concurrency limits belong to the balancer's layers above. Each call runs
/// in a debug span naming the provider and model, and a failure is logged there at debug
/// level (the balancer decides what reaches the client and the access log).
pub struct Target<C> {
    chat: Arc<C>,
}

impl<C> Clone for Target<C> {
    fn clone(&self) -> Self {
        Target {
            chat: Arc::clone(&self.chat),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Target<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chat.fmt(f)
    }
}

impl<C: Chat> Target<C> {
    /// The service calling `chat`.
    pub fn new(chat: C) -> Self {
        Target {
            chat: Arc::new(chat),
        }
    }

    /// The model id this target asks for.
    pub fn model(&self) -> &Arc<str> {
        self.chat.model()
    }

    /// The target as the balancer names it in answers and traces.
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

impl<C: Chat> Service<ChatRequest> for Target<C> {
    type Response = ChatReply;
    type Error = Error;
    type Future = DriverFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ChatRequest) -> DriverFuture {
        let chat = Arc::clone(&self.chat);
        let span = tracing::debug_span!(
            "driver",
            provider = C::PROVIDER,
            model = %chat.model(),
            stream = request.stream
        );
        Box::pin(
            async move {
                let result = chat.chat(request).await;
                if let Err(err) = &result {
                    tracing::debug!(kind = %err.kind(), error = %err, "upstream call failed");
                }
                result
            }
            .instrument(span),
        )
    }
}
