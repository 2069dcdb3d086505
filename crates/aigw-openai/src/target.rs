//! One OpenAI-compatible target as a driver service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use aigw_core::{
    BoxDriver, ChatReply, ChatRequest, DriverFuture, Error, ErrorKind, ReplyBody, ServedBy,
};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, header};
use tower::Service;
use tower::util::BoxCloneSyncService;
use tracing::Instrument;

use crate::PROVIDER;
use crate::error::{classify_body, classify_send, from_status};
use crate::request::to_body;
use crate::response::{Completion, to_chat_response};
use crate::spec::RequestDefaults;
use crate::stream::{ChunkMaker, chunk_stream};

/// How much of an error answer is read to find the upstream's message.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// One model behind one pooled HTTP client: a `tower::Service<ChatRequest>` posting to a
/// chat completions URL, with `stream: true` when the request asks for a stream.
///
/// Cloning is cheap (one `Arc`). Always ready: the client's pool has no backpressure, so
/// concurrency limits belong to the layers above.
#[derive(Clone)]
pub struct OpenAiTarget {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: reqwest::Client,
    /// The chat completions URL, with any `param_location: query` credential in it.
    pub(crate) url: reqwest::Url,
    /// `auth.header_*`, marked sensitive so the client never logs them.
    pub(crate) headers: HeaderMap,
    /// `auth.param_*` with `param_location: body`.
    pub(crate) body_params: Vec<(String, String)>,
    pub(crate) model: Arc<str>,
    pub(crate) defaults: RequestDefaults,
}

impl fmt::Debug for OpenAiTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL's query and the headers may hold credentials.
        f.debug_struct("OpenAiTarget")
            .field("model", &self.inner.model)
            .field("host", &self.inner.url.host_str())
            .finish_non_exhaustive()
    }
}

impl OpenAiTarget {
    pub(crate) fn new(inner: Inner) -> Self {
        OpenAiTarget {
            inner: Arc::new(inner),
        }
    }

    /// The model this target asks for.
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

impl Service<ChatRequest> for OpenAiTarget {
    type Response = ChatReply;
    type Error = Error;
    type Future = DriverFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ChatRequest) -> DriverFuture {
        let inner = Arc::clone(&self.inner);
        let span = tracing::debug_span!("openai", model = %inner.model, stream = request.stream);
        Box::pin(
            async move {
                let result = inner.chat(&request).await;
                if let Err(err) = &result {
                    tracing::debug!(kind = %err.kind(), error = %err, "openai call failed");
                }
                result
            }
            .instrument(span),
        )
    }
}

impl Inner {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, Error> {
        let body = to_body(request, &self.model, &self.defaults, &self.body_params)?;
        let accept = if request.stream {
            HeaderValue::from_static("text/event-stream")
        } else {
            HeaderValue::from_static("application/json")
        };
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(header::ACCEPT, accept)
            .body(body)
            .send()
            .await
            .map_err(classify_send)?;

        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = read_capped(response, MAX_ERROR_BODY).await;
            return Err(from_status(status, &headers, &body));
        }

        let body = if request.stream {
            self.stream(response).await?
        } else {
            let bytes = response.bytes().await.map_err(classify_body)?;
            let completion: Completion = serde_json::from_slice(&bytes).map_err(|err| {
                Error::new(
                    ErrorKind::UpstreamProtocol,
                    format!("openai upstream sent an answer aigw could not read: {err}"),
                )
                .with_upstream_status(status.as_u16())
            })?;
            ReplyBody::Complete(to_chat_response(completion, &self.model)?)
        };
        Ok(ChatReply {
            served_by: ServedBy {
                provider: PROVIDER,
                model: Arc::clone(&self.model),
            },
            body,
        })
    }

    async fn stream(&self, response: reqwest::Response) -> Result<ReplyBody, Error> {
        let chunks = ChunkMaker::new(
            Arc::from(aigw_core::completion_id()),
            aigw_core::unix_now(),
            Arc::clone(&self.model),
        );
        let mut stream = chunk_stream(Box::pin(response.bytes_stream()), chunks);
        // Waiting for the first chunk keeps failures that arrive as the first event on the
        // `call` side, where the balancer can still fail over.
        let first = match stream.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(err)) => return Err(err),
            None => {
                return Err(Error::new(
                    ErrorKind::UpstreamProtocol,
                    "openai upstream stream ended before its first event",
                ));
            }
        };
        let rest = futures_util::stream::once(std::future::ready(Ok(first))).chain(stream);
        Ok(ReplyBody::Stream(Box::pin(rest)))
    }
}

/// Up to `cap` bytes of an error answer's body; what cannot be read is left out, since
/// the status already classifies the error.
async fn read_capped(response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(bytes)) = chunks.next().await {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    body
}
