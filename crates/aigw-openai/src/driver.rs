//! One OpenAI-compatible target: the chat completions call behind core's driver shell.

use std::fmt;
use std::sync::Arc;

use aigw_core::{Chat, ChatRequest, Driver, Error, ErrorKind, ReplyBody};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, header};

use crate::PROVIDER;
use crate::error::{classify_body, classify_send, from_status};
use crate::request::to_body;
use crate::response::{Completion, to_chat_completion};
use crate::stream::{ChunkMaker, chunk_stream};

/// How much of an error answer is read to find the upstream's message.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// One OpenAI-compatible target as a driver service: [`OpenAiChat`] in core's service shell.
pub type OpenAiDriver = Driver<OpenAiChat>;

/// One model behind one pooled HTTP client, posting to a chat completions URL, with
/// `stream: true` when the request asks for a stream.
pub struct OpenAiChat {
    pub(crate) client: reqwest::Client,
    /// The chat completions URL, with any `param_location: query` credential in it.
    pub(crate) url: reqwest::Url,
    /// `auth.header_*`, marked sensitive so the client never logs them.
    pub(crate) headers: HeaderMap,
    /// `auth.param_*` with `param_location: body`.
    pub(crate) body_params: Vec<(String, String)>,
    pub(crate) model: Arc<str>,
}

impl fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL's query and the headers may hold credentials.
        f.debug_struct("OpenAiDriver")
            .field("model", &self.model)
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

impl Chat for OpenAiChat {
    const PROVIDER: &'static str = PROVIDER;

    fn model(&self) -> &Arc<str> {
        &self.model
    }

    async fn chat(&self, request: ChatRequest) -> Result<ReplyBody, Error> {
        self.post(&request).await
    }
}

impl OpenAiChat {
    async fn post(&self, request: &ChatRequest) -> Result<ReplyBody, Error> {
        let body = to_body(request, &self.model, &self.body_params)?;
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

        if request.stream {
            self.stream(response).await
        } else {
            let bytes = response.bytes().await.map_err(classify_body)?;
            let completion: Completion = serde_json::from_slice(&bytes).map_err(|err| {
                Error::new(
                    ErrorKind::UpstreamProtocol,
                    format!("openai upstream sent an answer aigw could not read: {err}"),
                )
                .with_upstream_status(status.as_u16())
            })?;
            Ok(ReplyBody::Complete(to_chat_completion(
                completion,
                &self.model,
            )?))
        }
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
