//! One Bedrock target as a driver service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aigw_core::{
    BoxDriver, ChatReply, ChatRequest, DriverFuture, Error, ErrorKind, ReplyBody, ServedBy,
};
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::types::ConverseStreamOutput as StreamEvent;
use tower::Service;
use tower::util::BoxCloneSyncService;
use tracing::Instrument;

use crate::PROVIDER;
use crate::error::{classify, classify_stream};
use crate::request::{ConverseParts, to_converse};
use crate::response::to_chat_response;
use crate::spec::RequestDefaults;
use crate::stream::{ChunkMaker, chunk_stream};

/// How many answer-less events (messageStart, contentBlockStart) are held back before a
/// stream is handed on regardless.
const MAX_HEAD_EVENTS: usize = 4;

/// One model behind one SDK client: a `tower::Service<ChatRequest>` calling Converse, or
/// ConverseStream when the request asks for a stream.
///
/// Cloning is cheap (one `Arc`). Always ready: the SDK client has no backpressure, so
/// concurrency limits belong to the layers above.
#[derive(Clone)]
pub struct BedrockTarget {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    model: Arc<str>,
    defaults: RequestDefaults,
    stream_idle_timeout: Duration,
}

impl fmt::Debug for BedrockTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockTarget")
            .field("model", &self.inner.model)
            .finish_non_exhaustive()
    }
}

impl BedrockTarget {
    pub(crate) fn new(
        client: Client,
        model_id: &str,
        defaults: RequestDefaults,
        stream_idle_timeout: Duration,
    ) -> Self {
        BedrockTarget {
            inner: Arc::new(Inner {
                client,
                model: Arc::from(model_id),
                defaults,
                stream_idle_timeout,
            }),
        }
    }

    /// The model id this target calls.
    pub fn model(&self) -> &Arc<str> {
        &self.inner.model
    }

    /// The target as the balancer names it in answers and traces.
    pub fn served_by(&self) -> ServedBy {
        ServedBy {
            provider: PROVIDER,
            model: Arc::clone(&self.inner.model),
        }
    }

    /// The target type-erased, as the balancer holds drivers.
    pub fn into_driver(self) -> BoxDriver {
        BoxCloneSyncService::new(self)
    }
}

impl Service<ChatRequest> for BedrockTarget {
    type Response = ChatReply;
    type Error = Error;
    type Future = DriverFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ChatRequest) -> DriverFuture {
        let inner = Arc::clone(&self.inner);
        let span = tracing::debug_span!("bedrock", model = %inner.model, stream = request.stream);
        Box::pin(
            async move {
                let result = inner.chat(&request).await;
                if let Err(err) = &result {
                    tracing::debug!(kind = %err.kind(), error = %err, "bedrock call failed");
                }
                result
            }
            .instrument(span),
        )
    }
}

impl Inner {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, Error> {
        let parts = to_converse(request, &self.defaults)?;
        let body = if request.stream {
            self.stream(parts).await?
        } else {
            self.complete(parts).await?
        };
        Ok(ChatReply {
            served_by: ServedBy {
                provider: PROVIDER,
                model: Arc::clone(&self.model),
            },
            body,
        })
    }

    async fn complete(&self, parts: ConverseParts) -> Result<ReplyBody, Error> {
        let output = self
            .client
            .converse()
            .model_id(&*self.model)
            .set_messages(Some(parts.messages))
            .set_system(parts.system)
            .set_inference_config(parts.inference)
            .send()
            .await
            .map_err(|err| classify(&err))?;
        Ok(ReplyBody::Complete(to_chat_response(&output, &self.model)?))
    }

    async fn stream(&self, parts: ConverseParts) -> Result<ReplyBody, Error> {
        let mut output = self
            .client
            .converse_stream()
            .model_id(&*self.model)
            .set_messages(Some(parts.messages))
            .set_system(parts.system)
            .set_inference_config(parts.inference)
            .send()
            .await
            .map_err(|err| classify(&err))?;
        // Events that carry no answer (messageStart, contentBlockStart) are held back until
        // the first that does: a failure before any answer text then stays on the `call`
        // side, where the balancer can still fail over and the client still gets a plain
        // HTTP error status instead of a 200 that turns into an error event.
        let mut head = Vec::with_capacity(2);
        loop {
            match output.stream.recv().await {
                Ok(Some(event)) => {
                    let carries_answer = !matches!(
                        event,
                        StreamEvent::MessageStart(_) | StreamEvent::ContentBlockStart(_)
                    );
                    head.push(event);
                    // A bound, so an upstream sending only empty events cannot make us buffer.
                    if carries_answer || head.len() >= MAX_HEAD_EVENTS {
                        break;
                    }
                }
                Ok(None) => {
                    return Err(Error::new(
                        ErrorKind::UpstreamProtocol,
                        "bedrock stream ended before its answer began",
                    ));
                }
                Err(err) => return Err(classify_stream(&err)),
            }
        }
        let chunks = ChunkMaker::new(
            Arc::from(aigw_core::completion_id()),
            aigw_core::unix_now(),
            Arc::clone(&self.model),
        );
        Ok(ReplyBody::Stream(chunk_stream(
            output.stream,
            head,
            chunks,
            self.stream_idle_timeout,
        )))
    }
}
