//! One Bedrock target: the Converse and ConverseStream calls behind core's driver shell.

use std::fmt;
use std::sync::Arc;

use aigw_core::{Chat, ChatRequest, Driver, Error, ErrorKind, ReplyBody};
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::types::{ContentBlockStart, ConverseStreamOutput as StreamEvent};

use crate::PROVIDER;
use crate::error::{classify, classify_stream};
use crate::request::{ConverseParts, to_converse};
use crate::response::to_chat_completion;
use crate::stream::{ChunkMaker, chunk_stream};

/// How many answer-less events (messageStart, contentBlockStart) are held back before a
/// stream is handed on regardless.
const MAX_HEAD_EVENTS: usize = 4;

/// One Bedrock target as a driver service: [`BedrockChat`] in core's service shell.
pub type BedrockDriver = Driver<BedrockChat>;

/// One model behind one SDK client: Converse, or ConverseStream when the request asks for a
/// stream.
pub struct BedrockChat {
    client: Client,
    model: Arc<str>,
}

impl fmt::Debug for BedrockChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockDriver")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl BedrockChat {
    pub(crate) fn new(client: Client, model_id: &str) -> Self {
        BedrockChat {
            client,
            model: Arc::from(model_id),
        }
    }
}

impl Chat for BedrockChat {
    const PROVIDER: &'static str = PROVIDER;

    fn model(&self) -> &Arc<str> {
        &self.model
    }

    async fn chat(&self, request: ChatRequest) -> Result<ReplyBody, Error> {
        let parts = to_converse(&request, &self.model)?;
        if request.stream {
            self.stream(parts).await
        } else {
            self.complete(parts).await
        }
    }
}

impl BedrockChat {
    async fn complete(&self, parts: ConverseParts) -> Result<ReplyBody, Error> {
        let output = self
            .client
            .converse()
            .model_id(&*self.model)
            .set_messages(Some(parts.messages))
            .set_system(parts.system)
            .set_inference_config(parts.inference)
            .set_tool_config(parts.tools)
            .set_additional_model_request_fields(parts.additional)
            .set_guardrail_config(parts.guardrail)
            .send()
            .await
            .map_err(|err| classify(&err))?;
        Ok(ReplyBody::Complete(to_chat_completion(
            &output,
            &self.model,
            parts.answer,
        )?))
    }

    async fn stream(&self, parts: ConverseParts) -> Result<ReplyBody, Error> {
        let mut output = self
            .client
            .converse_stream()
            .model_id(&*self.model)
            .set_messages(Some(parts.messages))
            .set_system(parts.system)
            .set_inference_config(parts.inference)
            .set_tool_config(parts.tools)
            .set_additional_model_request_fields(parts.additional)
            .set_guardrail_config(parts.stream_guardrail)
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
                    // A tool call's start is answer: its id and name go to the client.
                    let carries_answer = match &event {
                        StreamEvent::MessageStart(_) => false,
                        StreamEvent::ContentBlockStart(start) => {
                            matches!(start.start, Some(ContentBlockStart::ToolUse(_)))
                        }
                        _ => true,
                    };
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
            parts.answer,
        );
        Ok(ReplyBody::Stream(chunk_stream(output.stream, head, chunks)))
    }
}
