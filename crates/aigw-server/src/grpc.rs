//! The gRPC `aigw.v1.ChatService`: decode the proto, call the route's stack, encode.

use std::pin::Pin;
use std::sync::Arc;

use aigw_config::ResponseStreaming;
use aigw_core::{
    ChatChunk, ChatReply, ChatRequest, ChatResponse, Error, Message, ReplyBody, Usage,
};
use aigw_proto::v1 as pb;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tower::ServiceExt;

use crate::openai::{MODEL_HEADER, parse_role};
use crate::{RouteTable, grpc_status};

/// `ChatService` over the route table.
pub(crate) struct GrpcChat {
    pub(crate) table: Arc<RouteTable>,
}

type ChunkResult = Result<pb::ChatChunk, tonic::Status>;

/// Chunks waiting for a slow client; small, so a stalled client stalls the upstream read
/// instead of growing memory.
const STREAM_BUFFER: usize = 16;

impl GrpcChat {
    async fn call(
        &self,
        request: tonic::Request<pb::ChatRequest>,
        stream: bool,
    ) -> Result<(ChatReply, bool), tonic::Status> {
        let wire = request.into_inner();
        let route = self
            .table
            .select(&wire.route)
            .map_err(|e| grpc_status(&e))?
            .clone();
        aigw_telemetry::record_route(&route.name);
        if stream && route.response_streaming == ResponseStreaming::Deny {
            return Err(tonic::Status::failed_precondition(
                "streaming is disabled on this route (response_streaming: deny); call Chat instead",
            ));
        }
        let mut core = decode_request(wire).map_err(|e| grpc_status(&e))?;
        core.stream = stream;
        let reply = route
            .service
            .clone()
            .oneshot(core)
            .await
            .map_err(|e| grpc_status(&e))?;
        Ok((reply, route.model_name_header))
    }
}

fn with_model_header<T>(message: T, reply_served_by: Option<String>) -> tonic::Response<T> {
    let mut response = tonic::Response::new(message);
    if let Some(value) = reply_served_by.and_then(|s| MetadataValue::try_from(s).ok()) {
        response.metadata_mut().insert(MODEL_HEADER, value);
    }
    response
}

#[tonic::async_trait]
impl pb::chat_service_server::ChatService for GrpcChat {
    async fn chat(
        &self,
        request: tonic::Request<pb::ChatRequest>,
    ) -> Result<tonic::Response<pb::ChatResponse>, tonic::Status> {
        let (reply, name_model) = self.call(request, false).await?;
        let served_by = name_model.then(|| reply.served_by.to_string());
        let answer = match reply.body {
            ReplyBody::Complete(answer) => answer,
            ReplyBody::Stream(_) => {
                return Err(tonic::Status::internal(
                    "the driver streamed an answer that was asked for whole",
                ));
            }
        };
        Ok(with_model_header(encode_response(answer), served_by))
    }

    type ChatStreamStream = Pin<Box<dyn Stream<Item = ChunkResult> + Send>>;

    async fn chat_stream(
        &self,
        request: tonic::Request<pb::ChatRequest>,
    ) -> Result<tonic::Response<Self::ChatStreamStream>, tonic::Status> {
        let (reply, name_model) = self.call(request, true).await?;
        let served_by = name_model.then(|| reply.served_by.to_string());
        let mut chunks = match reply.body {
            ReplyBody::Stream(chunks) => chunks,
            ReplyBody::Complete(answer) => {
                return Err(tonic::Status::internal(format!(
                    "the driver answered whole where a stream was asked for (answer {})",
                    answer.id
                )));
            }
        };
        // A task drives the upstream stream; when the client goes away the send fails, the
        // task ends and dropping the upstream stream cancels the upstream call.
        let (sender, receiver) = mpsc::channel::<ChunkResult>(STREAM_BUFFER);
        tokio::spawn(async move {
            while let Some(item) = chunks.next().await {
                let item = item.map(encode_chunk).map_err(|e| grpc_status(&e));
                let is_error = item.is_err();
                if sender.send(item).await.is_err() || is_error {
                    break;
                }
            }
        });
        let stream: Self::ChatStreamStream = Box::pin(ReceiverStream::new(receiver));
        Ok(with_model_header(stream, served_by))
    }
}

fn decode_request(wire: pb::ChatRequest) -> Result<ChatRequest, Error> {
    if wire.messages.is_empty() {
        return Err(Error::invalid_request(
            "messages must hold at least one message",
        ));
    }
    let messages = wire
        .messages
        .into_iter()
        .enumerate()
        .map(|(index, m)| {
            Ok(Message {
                role: parse_role(index, &m.role)?,
                content: m.content,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(ChatRequest {
        model: wire.model,
        messages: messages.into(),
        max_tokens: wire.max_tokens,
        temperature: wire.temperature,
        top_p: wire.top_p,
        stop: wire.stop.into(),
        stream: false,
    })
}

fn encode_usage(u: Usage) -> pb::Usage {
    pb::Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens,
    }
}

fn encode_response(answer: ChatResponse) -> pb::ChatResponse {
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
            }),
            finish_reason: answer.finish_reason.as_str().to_owned(),
        }],
        usage: Some(encode_usage(answer.usage)),
    }
}

fn encode_chunk(chunk: ChatChunk) -> pb::ChatChunk {
    let has_choice =
        chunk.role.is_some() || chunk.content.is_some() || chunk.finish_reason.is_some();
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
                }),
                finish_reason: chunk.finish_reason.map(|f| f.as_str().to_owned()),
            }]
        } else {
            Vec::new()
        },
        usage: chunk.usage.map(encode_usage),
    }
}
