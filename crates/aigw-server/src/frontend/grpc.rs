//! The gRPC front end, `aigw.v1.ChatService`: decode the proto message, hand it to
//! admission, encode the answer (a message, or a server stream of chunks).
//!
//! The route is named inside the message, so [`GrpcFront`] does what it can from the
//! call's head first, as the HTTP front end does before reading a body: a caller no route
//! lets in is refused without a byte of its message read, and no message is buffered past
//! the largest `max_request_body_size` among the routes the caller may use.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aigw_core::{
    ChatChunk, ChatCompletion, ChatRequest, ChunkStream, Document, Error, ErrorKind, Image,
    ImageFormat, Message, Part, Reasoning, Role, Tool, ToolCall, ToolChoice, Usage,
};
use aigw_proto::v1 as pb;
use aigw_proto::v1::chat_service_server::ChatServiceServer;
use futures_util::{Stream, StreamExt};
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::server::NamedService;
use tower::Service;
use tracing::Instrument;

use crate::admission::EmbedAsk;
use crate::admission::{
    Admission, Admitted, Answering, Caller, Entry, MODEL_HEADER, RouteKey, peer_ip,
};
use crate::recent::{Answered, StreamBreak};
use crate::{Route, SharedRoutes, grpc_status};

/// `ChatService` over the route table, behind the checks a call's head allows: key-auth
/// against every route, and a bound on the message's length.
#[derive(Clone)]
pub(crate) struct GrpcFront {
    chat: Arc<GrpcChat>,
}

impl GrpcFront {
    /// The service over `routes`.
    pub(crate) fn new(routes: SharedRoutes) -> Self {
        GrpcFront {
            chat: Arc::new(GrpcChat { routes }),
        }
    }
}

impl NamedService for GrpcFront {
    const NAME: &'static str = <ChatServiceServer<GrpcChat> as NamedService>::NAME;
}

impl Service<http::Request<tonic::body::Body>> for GrpcFront {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // Reloads change both the keys and the limits, so both come from the table in force.
        let limit = match self.chat.routes.load().body_limit_for(request.headers()) {
            Ok(limit) => limit,
            Err(refused) => {
                self.chat
                    .routes
                    .recent_errors()
                    .record(&refused, None, Answered::Grpc);
                let response = grpc_status(&refused).into_http();
                return Box::pin(std::future::ready(Ok(response)));
            }
        };
        let routes = self.chat.routes.clone();
        let request = request
            .map(|body| tonic::body::Body::new(MessageLimit::new(body, limit, Some(routes))));
        // tonic's own bound covers what MessageLimit cannot see: a compressed message's
        // decoded size. Without it tonic would cap every message at its 4 MiB default.
        ChatServiceServer::from_arc(self.chat.clone())
            .max_decoding_message_size(limit)
            .call(request)
    }
}

/// A gRPC request body that fails as soon as a message's length prefix says it is over
/// `limit`, before tonic reserves room for it or any of it is read.
struct MessageLimit {
    inner: tonic::body::Body,
    limit: usize,
    /// The length prefix being read: the compression flag, then 4 bytes of length.
    prefix: [u8; PREFIX_LEN],
    prefix_read: usize,
    /// Bytes of the current message still to pass through.
    message_left: usize,
    /// Where a refusal is recorded.
    routes: Option<SharedRoutes>,
}

/// A gRPC message's prefix: one byte of compression flag, four of big-endian length.
const PREFIX_LEN: usize = 5;

impl MessageLimit {
    fn new(inner: tonic::body::Body, limit: usize, routes: Option<SharedRoutes>) -> Self {
        MessageLimit {
            inner,
            limit,
            prefix: [0; PREFIX_LEN],
            prefix_read: 0,
            message_left: 0,
            routes,
        }
    }

    /// Follows the message boundaries through `data`, refusing the first message over the
    /// limit.
    fn inspect(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            if self.message_left > 0 {
                let skipped = self.message_left.min(data.len());
                self.message_left -= skipped;
                data = &data[skipped..];
                continue;
            }
            let taken = (PREFIX_LEN - self.prefix_read).min(data.len());
            self.prefix[self.prefix_read..self.prefix_read + taken].copy_from_slice(&data[..taken]);
            self.prefix_read += taken;
            data = &data[taken..];
            if self.prefix_read == PREFIX_LEN {
                self.prefix_read = 0;
                let [_, a, b, c, d] = self.prefix;
                let length =
                    usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
                if length > self.limit {
                    return Err(Error::new(
                        ErrorKind::PayloadTooLarge,
                        format!(
                            "request message of {length} bytes is larger than max_request_body_size ({} bytes) of every route this caller may use",
                            self.limit
                        ),
                    ));
                }
                self.message_left = length;
            }
        }
        Ok(())
    }
}

impl HttpBody for MessageLimit {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let data = match &frame {
            Some(Ok(frame)) => frame.data_ref(),
            _ => None,
        };
        if let Some(Err(error)) = data.map(|data| self.inspect(data)) {
            if let Some(routes) = &self.routes {
                routes.recent_errors().record(&error, None, Answered::Grpc);
            }
            return Poll::Ready(Some(Err(grpc_status(&error))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `ChatService` over the route table.
struct GrpcChat {
    routes: SharedRoutes,
}

type ChunkResult = Result<pb::ChatChunk, tonic::Status>;

/// Chunks waiting for a slow client; small, so a stalled client stalls the upstream read
/// instead of growing memory.
const STREAM_BUFFER: usize = 16;

/// The method a client calls fixes the answer's shape, so `response_streaming: always`
/// cannot turn a `Chat` call into a stream.
const ANSWERING: Answering = Answering {
    may_stream_unasked: false,
    ask_for_whole: "call Chat instead",
};

impl GrpcChat {
    /// Admits `request`, asking for a stream or a whole answer, and encodes what comes back
    /// with `encode`, the serving model in the answer's metadata. `encode` also gets what
    /// records the error that may break a stream off later.
    async fn answer<T>(
        &self,
        request: tonic::Request<pb::ChatRequest>,
        stream: bool,
        encode: impl FnOnce(Admitted, StreamBreak) -> Result<T, Error>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let (metadata, extensions, wire) = request.into_parts();
        let caller = caller(&metadata, &extensions);
        let mut routed = None;
        let admitted = async {
            let route = self.admit(&wire.route, caller, &mut routed)?;
            let body_len = wire.encoded_len();
            let mut request = decode_request(wire)?;
            request.stream = stream;
            let admitted = Admission::call(&route, caller, ANSWERING, request, body_len).await?;
            let mut headers = admitted.headers.clone();
            if let Some(value) = admitted.model_header.clone() {
                headers.push((http::HeaderName::from_static(MODEL_HEADER), value));
            }
            let broken = StreamBreak::new(
                &self.routes,
                route.route,
                admitted.reply.served_by.clone(),
                Answered::GrpcStream,
            );
            Ok((encode(admitted, broken)?, headers))
        };
        let outcome = admitted.await;
        self.respond(routed, outcome)
    }

    /// A unary call's answer with admission's headers (the serving model, a rate limit's
    /// figures) as its metadata; a refusal or failure is recorded against the route the
    /// call reached, for `/status`, and becomes the call's status.
    fn respond<T>(
        &self,
        routed: Option<Arc<Route>>,
        outcome: Result<(T, Vec<(http::HeaderName, http::HeaderValue)>), Error>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let (message, headers) = outcome.map_err(|e| {
            self.routes
                .recent_errors()
                .record(&e, routed.as_deref(), Answered::Grpc);
            grpc_status(&e)
        })?;
        let mut response = tonic::Response::new(message);
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
                MetadataValue::try_from(value.as_bytes()),
            ) {
                response.metadata_mut().insert(name, value);
            }
        }
        Ok(response)
    }
}

#[tonic::async_trait]
impl pb::chat_service_server::ChatService for GrpcChat {
    async fn chat(
        &self,
        request: tonic::Request<pb::ChatRequest>,
    ) -> Result<tonic::Response<pb::ChatResponse>, tonic::Status> {
        self.answer(request, false, |admitted, _| {
            Ok(encode_response(admitted.into_whole()?))
        })
        .await
    }

    async fn embed(
        &self,
        request: tonic::Request<pb::EmbedRequest>,
    ) -> Result<tonic::Response<pb::EmbedResponse>, tonic::Status> {
        self.embed_texts(request).await
    }

    async fn count_tokens(
        &self,
        request: tonic::Request<pb::ChatRequest>,
    ) -> Result<tonic::Response<pb::CountTokensResponse>, tonic::Status> {
        let (metadata, extensions, wire) = request.into_parts();
        let caller = caller(&metadata, &extensions);
        let mut routed = None;
        let counted = async {
            let route = self.admit(&wire.route, caller, &mut routed)?;
            let body_len = wire.encoded_len();
            let request = decode_request(wire)?;
            let input_tokens = Admission::count_tokens(&route, request, body_len).await?;
            let counted = pb::CountTokensResponse {
                input_tokens: u32::try_from(input_tokens).unwrap_or(u32::MAX),
            };
            Ok((counted, Vec::new()))
        };
        let outcome = counted.await;
        self.respond(routed, outcome)
    }

    type ChatStreamStream = Pin<Box<dyn Stream<Item = ChunkResult> + Send>>;

    async fn chat_stream(
        &self,
        request: tonic::Request<pb::ChatRequest>,
    ) -> Result<tonic::Response<Self::ChatStreamStream>, tonic::Status> {
        self.answer(request, true, |admitted, broken| {
            let chunks: Self::ChatStreamStream =
                Box::pin(pump(admitted.into_stream()?, Some(broken)));
            Ok(chunks)
        })
        .await
    }
}

/// Who is calling, from a call's metadata and connection.
fn caller<'a>(
    metadata: &'a tonic::metadata::MetadataMap,
    extensions: &http::Extensions,
) -> Caller<'a> {
    Caller {
        headers: metadata.as_ref(),
        query: None,
        peer: peer_ip(extensions),
        path: None,
        signed_by: None,
    }
}

impl GrpcChat {
    /// Admits a call to the route it names (by name or path), leaving the route in
    /// `routed` for the record of a refusal.
    fn admit(
        &self,
        route: &str,
        caller: Caller<'_>,
        routed: &mut Option<Arc<Route>>,
    ) -> Result<Entry, Error> {
        let admission = Admission::new(&self.routes);
        let key = RouteKey::NameOrPath(route);
        let entry = admission
            .route(key, caller)
            .inspect_err(|_| *routed = admission.named(key))?;
        *routed = Some(entry.route.clone());
        Ok(entry)
    }

    /// The `Embed` rpc: the same admission as chat, then the route's embeddings targets.
    async fn embed_texts(
        &self,
        request: tonic::Request<pb::EmbedRequest>,
    ) -> Result<tonic::Response<pb::EmbedResponse>, tonic::Status> {
        let (metadata, extensions, wire) = request.into_parts();
        let caller = caller(&metadata, &extensions);
        let mut routed = None;
        let answer = async {
            let route = self.admit(&wire.route, caller, &mut routed)?;
            let body_len = wire.encoded_len();
            let admitted = Admission::embed(
                &route,
                caller,
                EmbedAsk {
                    model: None,
                    inputs: wire.input,
                    dimensions: wire.dimensions.map(|d| d as usize),
                    body_len,
                },
            )
            .await?;
            let embedded = admitted.embedded;
            let tokens = embedded
                .embeddings
                .input_tokens
                .map_or(0, |t| u32::try_from(t).unwrap_or(u32::MAX));
            let response = pb::EmbedResponse {
                model: embedded.model,
                data: embedded
                    .embeddings
                    .vectors
                    .into_iter()
                    .zip(0u32..)
                    .map(|(embedding, index)| pb::Embedding { index, embedding })
                    .collect(),
                usage: Some(pb::Usage {
                    prompt_tokens: tokens,
                    total_tokens: tokens,
                    ..pb::Usage::default()
                }),
            };
            Ok((response, admitted.headers))
        };
        let outcome = answer.await;
        self.respond(routed, outcome)
    }
}

/// Drives the upstream `chunks` into a small channel that tonic drains.
///
/// A task does the driving so the server notices a client going away: tonic drops the
/// receiver, `closed()` fires even while the upstream is between tokens, and dropping
/// `chunks` cancels the upstream call at once. At most [`STREAM_BUFFER`] chunks wait for a
/// slow client; beyond that the task stops reading the upstream. A break is recorded with
/// `broken`.
fn pump(mut chunks: ChunkStream, broken: Option<StreamBreak>) -> ReceiverStream<ChunkResult> {
    let (sender, receiver) = mpsc::channel::<ChunkResult>(STREAM_BUFFER);
    let pumping = async move {
        loop {
            let item = tokio::select! {
                () = sender.closed() => {
                    tracing::debug!("gRPC client went away mid-stream; cancelling the upstream");
                    break;
                }
                item = chunks.next() => item,
            };
            let Some(item) = item else { break };
            let item = item.map(encode_chunk).map_err(|e| {
                tracing::warn!(kind = %e.kind(), error = %e, "upstream stream broke off; ending the client's stream with an error status");
                if let Some(broken) = &broken {
                    broken.record(&e);
                }
                grpc_status(&e)
            });
            let is_error = item.is_err();
            if sender.send(item).await.is_err() || is_error {
                break;
            }
        }
    };
    // The task outlives the handler; keeping the request's span keeps its logs attributed.
    tokio::spawn(pumping.in_current_span());
    ReceiverStream::new(receiver)
}

fn decode_request(wire: pb::ChatRequest) -> Result<ChatRequest, Error> {
    let messages = super::conversation(wire.messages, decode_message)?;
    let tools = wire
        .tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let parameters = if t.parameters_json.trim().is_empty() {
                serde_json::json!({"type": "object", "properties": {}})
            } else {
                serde_json::from_str(&t.parameters_json).map_err(|e| {
                    Error::invalid_request(format!("tools[{i}].parameters_json is not JSON: {e}"))
                })?
            };
            Ok(Tool {
                name: t.name,
                description: t.description,
                parameters,
                cache_point: t.cache_point,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let tool_choice = match wire.tool_choice.and_then(|c| c.choice) {
        None => None,
        Some(pb::tool_choice::Choice::Function(name)) => Some(ToolChoice::Function(name)),
        Some(pb::tool_choice::Choice::Mode(mode)) => {
            Some(super::tool_choice_mode(&mode, "tool_choice.mode")?)
        }
    };
    let reasoning_effort = super::reasoning_effort(wire.reasoning_effort)?;
    Ok(ChatRequest {
        model: wire.model,
        messages,
        max_tokens: wire.max_tokens,
        temperature: wire.temperature,
        top_p: wire.top_p,
        stop: wire.stop.into(),
        stream: false,
        hash_key: None,
        tools: tools.into(),
        tool_choice,
        parallel_tool_calls: wire.parallel_tool_calls,
        reasoning_effort,
        response_format: None,
        guardrail: None,
        model_fields: None,
    })
}

fn decode_message((index, m): (usize, pb::Message)) -> Result<Message, Error> {
    let role = super::role(index, &m.role)?;
    let mut content = Vec::new();
    if !m.content.is_empty() || m.parts.is_empty() {
        content.push(Part::Text(m.content));
    }
    for (part_index, part) in m.parts.into_iter().enumerate() {
        let at = || format!("messages[{index}].parts[{part_index}]");
        match part.part {
            None => {
                return Err(Error::invalid_request(format!("{}: empty part", at())));
            }
            Some(pb::content_part::Part::Text(text)) => content.push(Part::Text(text)),
            Some(pb::content_part::Part::CachePoint(cache)) => {
                if cache {
                    content.push(Part::CachePoint);
                }
            }
            Some(pb::content_part::Part::Image(image)) => {
                let format = ImageFormat::from_mime(&format!("image/{}", image.format))
                    .ok_or_else(|| {
                        Error::invalid_request(format!(
                            "{}.image.format: {:?} is not supported; png, jpeg, gif and webp are",
                            at(),
                            image.format
                        ))
                    })?;
                content.push(Part::Image(Image {
                    format,
                    bytes: image.data.into(),
                }));
            }
            Some(pb::content_part::Part::Document(document)) => {
                content.push(Part::Document(Document {
                    name: document.name,
                    bytes: document.data.into(),
                }));
            }
        }
    }
    if role == Role::Tool && m.tool_call_id.is_none() {
        return Err(Error::invalid_request(format!(
            "messages[{index}].tool_call_id is required in a tool message"
        )));
    }
    let tool_calls = m
        .tool_calls
        .into_iter()
        .enumerate()
        .map(|(call_index, c)| {
            if !c.arguments.trim().is_empty() {
                serde_json::from_str::<serde_json::Value>(&c.arguments).map_err(|e| {
                    Error::invalid_request(format!(
                        "messages[{index}].tool_calls[{call_index}].arguments is not JSON: {e}"
                    ))
                })?;
            }
            Ok(ToolCall {
                id: c.id,
                name: c.name,
                arguments: c.arguments,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if content
        .iter()
        .all(|p| p.as_text().is_some_and(str::is_empty))
        && !tool_calls.is_empty()
    {
        content.clear();
    }
    Ok(Message {
        role,
        content,
        tool_calls,
        tool_call_id: m.tool_call_id,
        tool_failed: m.tool_failed,
        reasoning: m.reasoning.map(|r| Reasoning {
            text: r.text,
            signature: r.signature,
        }),
    })
}

fn encode_usage(u: Usage) -> pb::Usage {
    pb::Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens,
        cached_tokens: u.cache_read_tokens,
        cache_write_tokens: u.cache_write_tokens,
    }
}

fn encode_response(answer: ChatCompletion) -> pb::ChatResponse {
    pb::ChatResponse {
        id: answer.id,
        object: "chat.completion".to_owned(),
        created: answer.created,
        model: answer.model.to_string(),
        choices: vec![pb::Choice {
            index: 0,
            message: Some(pb::Message {
                role: "assistant".to_owned(),
                content: answer.content,
                parts: Vec::new(),
                tool_calls: answer
                    .tool_calls
                    .into_iter()
                    .map(|c| pb::ToolCall {
                        id: c.id,
                        name: c.name,
                        arguments: c.arguments,
                    })
                    .collect(),
                tool_call_id: None,
                tool_failed: false,
                reasoning: answer.reasoning.map(|r| pb::Reasoning {
                    text: r.text,
                    signature: r.signature,
                }),
            }),
            finish_reason: answer.finish_reason.as_str().to_owned(),
        }],
        usage: Some(encode_usage(answer.usage)),
    }
}

fn encode_chunk(chunk: ChatChunk) -> pb::ChatChunk {
    let has_choice = chunk.has_choice();
    pb::ChatChunk {
        id: chunk.id.to_string(),
        object: "chat.completion.chunk".to_owned(),
        created: chunk.created,
        model: chunk.model.to_string(),
        choices: if has_choice {
            vec![pb::ChunkChoice {
                index: 0,
                delta: Some(pb::Delta {
                    role: chunk.role.map(|r| r.as_str().to_owned()),
                    content: chunk.content,
                    tool_call: chunk.tool_call.map(|c| pb::ToolCallDelta {
                        index: c.index,
                        id: c.id,
                        name: c.name,
                        arguments: c.arguments,
                    }),
                    reasoning_content: chunk
                        .reasoning
                        .as_ref()
                        .map(|r| r.text.clone())
                        .filter(|t| !t.is_empty()),
                    reasoning_signature: chunk.reasoning.and_then(|r| r.signature),
                }),
                finish_reason: chunk.finish_reason.map(|f| f.as_str().to_owned()),
            }]
        } else {
            Vec::new()
        },
        usage: chunk.usage.map(encode_usage),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn chunk(text: &str) -> ChatChunk {
        ChatChunk {
            id: Arc::from("chatcmpl-1"),
            created: 0,
            model: Arc::from("m"),
            role: None,
            content: Some(text.to_owned()),
            tool_call: None,
            reasoning: None,
            finish_reason: None,
            usage: None,
        }
    }

    /// Sets its flag when dropped: stands for the upstream call being cancelled.
    struct Upstream(Arc<AtomicUsize>);

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_holds_the_upstream_back() {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let endless: ChunkStream = Box::pin(futures_util::stream::repeat_with(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(chunk("word"))
        }));
        let mut receiver = pump(endless, None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The channel's capacity, plus the one chunk waiting for room.
        let held = pulled.load(Ordering::SeqCst);
        assert!(held <= STREAM_BUFFER + 1, "pulled {held} chunks ahead");
        receiver.next().await.expect("a chunk").expect("ok");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pulled.load(Ordering::SeqCst) <= held + 1);
    }

    #[tokio::test]
    async fn a_client_leaving_between_tokens_cancels_the_upstream_at_once() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let guard = Upstream(dropped.clone());
        // One chunk, then an upstream that is slow to produce the next one.
        let slow: ChunkStream = Box::pin(
            futures_util::stream::once(async { Ok(chunk("first")) }).chain(
                futures_util::stream::once(async move {
                    let _guard = guard;
                    std::future::pending::<Result<ChatChunk, Error>>().await
                }),
            ),
        );
        let mut receiver = pump(slow, None);
        receiver.next().await.expect("first chunk").expect("ok");
        drop(receiver);
        tokio::time::timeout(Duration::from_secs(5), async {
            while dropped.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the upstream was dropped without waiting for its next token");
    }

    /// The bytes of a gRPC message of `length` bytes: its prefix, then `length` zeros.
    fn message(length: u32) -> Vec<u8> {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.resize(PREFIX_LEN + length as usize, 0);
        bytes
    }

    #[test]
    fn the_length_prefix_is_found_however_the_frames_cut_it() {
        let mut body = [message(10), message(3), message(11)].concat();
        // Every cut through the first two messages and into the third one's prefix.
        for cut in 1..body.len() {
            let mut limit = MessageLimit::new(tonic::body::Body::empty(), 10, None);
            let first = limit.inspect(&body[..cut]);
            let refused = first.is_err() || limit.inspect(&body[cut..]).is_err();
            assert!(refused, "cut at {cut}: the 11-byte message got through");
        }
        body.truncate(PREFIX_LEN * 2 + 13);
        for cut in 0..body.len() {
            let mut limit = MessageLimit::new(tonic::body::Body::empty(), 10, None);
            assert!(limit.inspect(&body[..cut]).is_ok());
            assert!(limit.inspect(&body[cut..]).is_ok(), "cut at {cut}");
        }
        let mut limit = MessageLimit::new(tonic::body::Body::empty(), 10, None);
        let refused = limit.inspect(&message(11)[..PREFIX_LEN]).expect_err("over");
        assert_eq!(refused.kind(), ErrorKind::PayloadTooLarge);
        assert!(refused.message().contains("10 bytes"), "{refused}");
    }

    #[tokio::test]
    async fn an_upstream_error_is_the_last_item() {
        let broken: ChunkStream = Box::pin(futures_util::stream::iter([
            Ok(chunk("a")),
            Err(Error::new(aigw_core::ErrorKind::UpstreamProtocol, "cut")),
            Ok(chunk("never")),
        ]));
        let items: Vec<_> = pump(broken, None).collect().await;
        assert_eq!(items.len(), 2);
        let status = items[1].as_ref().expect_err("ends with the error");
        assert_eq!(status.code(), tonic::Code::Unavailable);
    }
}
