//! ConverseStream events → a lazy stream of core [`ChatChunk`]s.

use std::sync::Arc;

use aigw_core::{
    ChatChunk, ChunkSequence, ChunkStream, Error, FinishReason, Reasoning, ToolCallDelta,
};
use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    ContentBlockDelta, ContentBlockStart, ConverseStreamOutput as StreamEvent,
    ReasoningContentBlockDelta,
};

use crate::error::classify_stream;
use crate::request::{AnswerShape, RESPONSE_FORMAT_TOOL};
use crate::response::{finish_reason, usage};

/// The SDK's receiver of ConverseStream events.
pub(crate) type Receiver = EventReceiver<StreamEvent, ConverseStreamOutputError>;

/// What a content block of the answer is, as far as deltas are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// The `index`-th tool call of the answer.
    ToolCall(u32),
    /// The forced `response_format` tool, whose input is the answer's content.
    Format,
    /// A tool call left out (`parallel_tool_calls: false` and one was sent already).
    Dropped,
}

/// Turns stream events into chunks, one event at a time; knows nothing of I/O.
#[derive(Debug)]
pub(crate) struct ChunkMaker {
    sequence: ChunkSequence,
    shape: AnswerShape,
    /// Tool-use blocks by content block index; OpenAI's `index` counts tool calls only.
    blocks: Vec<(i32, Block)>,
    tool_calls: u32,
}

impl ChunkMaker {
    pub(crate) fn new(id: Arc<str>, created: u64, model: Arc<str>, shape: AnswerShape) -> Self {
        ChunkMaker {
            sequence: ChunkSequence::new(id, created, model),
            shape,
            blocks: Vec::new(),
            tool_calls: 0,
        }
    }

    fn block(&self, index: i32) -> Option<Block> {
        self.blocks
            .iter()
            .find_map(|(i, block)| (*i == index).then_some(*block))
    }

    /// The chunk an event becomes, if it carries anything a client sees.
    pub(crate) fn on_event(&mut self, event: StreamEvent) -> Option<ChatChunk> {
        let mut chunk = match event {
            StreamEvent::MessageStart(_) if !self.sequence.role_sent() => self.sequence.chunk(),
            StreamEvent::ContentBlockStart(start) => {
                let Some(ContentBlockStart::ToolUse(tool)) = start.start else {
                    return None;
                };
                let index = start.content_block_index;
                if self.shape.json_via_tool && tool.name == RESPONSE_FORMAT_TOOL {
                    self.blocks.push((index, Block::Format));
                    return None;
                }
                if self.shape.single_tool_call && self.tool_calls > 0 {
                    self.blocks.push((index, Block::Dropped));
                    return None;
                }
                let call = self.tool_calls;
                self.tool_calls += 1;
                self.blocks.push((index, Block::ToolCall(call)));
                ChatChunk {
                    tool_call: Some(ToolCallDelta {
                        index: call,
                        id: Some(tool.tool_use_id),
                        name: Some(tool.name),
                        arguments: String::new(),
                    }),
                    ..self.sequence.chunk()
                }
            }
            StreamEvent::ContentBlockDelta(delta) => {
                let index = delta.content_block_index;
                match delta.delta {
                    Some(ContentBlockDelta::Text(text)) if !text.is_empty() => ChatChunk {
                        content: Some(text),
                        ..self.sequence.chunk()
                    },
                    Some(ContentBlockDelta::ToolUse(tool)) if !tool.input.is_empty() => {
                        match self.block(index) {
                            Some(Block::ToolCall(call)) => ChatChunk {
                                tool_call: Some(ToolCallDelta {
                                    index: call,
                                    id: None,
                                    name: None,
                                    arguments: tool.input,
                                }),
                                ..self.sequence.chunk()
                            },
                            Some(Block::Format) => ChatChunk {
                                content: Some(tool.input),
                                ..self.sequence.chunk()
                            },
                            Some(Block::Dropped) | None => return None,
                        }
                    }
                    Some(ContentBlockDelta::ReasoningContent(reasoning)) => {
                        let piece = match reasoning {
                            ReasoningContentBlockDelta::Text(text) => Reasoning {
                                text,
                                signature: None,
                            },
                            ReasoningContentBlockDelta::Signature(signature) => Reasoning {
                                text: String::new(),
                                signature: Some(signature),
                            },
                            // Redacted reasoning is opaque bytes, nothing a client reads.
                            _ => return None,
                        };
                        ChatChunk {
                            reasoning: Some(piece),
                            ..self.sequence.chunk()
                        }
                    }
                    // Citation deltas and kinds newer than this SDK have no OpenAI form.
                    _ => return None,
                }
            }
            StreamEvent::MessageStop(stop) => {
                self.sequence.mark_complete();
                let mut finish = finish_reason(stop.stop_reason());
                if self.shape.json_via_tool && finish == FinishReason::ToolCalls {
                    finish = FinishReason::Stop;
                }
                ChatChunk {
                    finish_reason: Some(finish),
                    ..self.sequence.chunk()
                }
            }
            StreamEvent::Metadata(metadata) => ChatChunk {
                usage: Some(usage(metadata.usage()?)),
                ..self.sequence.chunk()
            },
            _ => return None,
        };
        self.sequence.give_role_if_first(&mut chunk);
        Some(chunk)
    }

    /// What the end of the event stream means: clean only after `messageStop`.
    pub(crate) fn on_end(&self) -> Option<Error> {
        self.sequence.end("bedrock stream ended before messageStop")
    }
}

struct State {
    receiver: Receiver,
    head: std::vec::IntoIter<StreamEvent>,
    chunks: ChunkMaker,
}

/// A lazy chunk stream over `receiver`, starting with `head`, the events the caller
/// already awaited to be sure the answer started.
///
/// Nothing is read ahead: each poll reads at most until the next chunk. Dropping the
/// stream drops the receiver and with it the response body, which cancels the request;
/// core's driver shell does so when the upstream falls silent for too long.
pub(crate) fn chunk_stream(
    receiver: Receiver,
    head: Vec<StreamEvent>,
    chunks: ChunkMaker,
) -> ChunkStream {
    let state = State {
        receiver,
        head: head.into_iter(),
        chunks,
    };
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            // `None` state means the stream already yielded its final error.
            let mut state = state?;
            loop {
                let event = match state.head.next() {
                    Some(event) => Ok(Some(event)),
                    None => state.receiver.recv().await,
                };
                match event {
                    Ok(Some(event)) => {
                        if let Some(chunk) = state.chunks.on_event(event) {
                            return Some((Ok(chunk), Some(state)));
                        }
                    }
                    Ok(None) => return state.chunks.on_end().map(|err| (Err(err), None)),
                    Err(err) => return Some((Err(classify_stream(&err)), None)),
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use aigw_core::{ErrorKind, FinishReason, Role, Usage};
    use aws_sdk_bedrockruntime::types::{
        ContentBlockDeltaEvent, ContentBlockStopEvent, ConversationRole,
        ConverseStreamMetadataEvent, MessageStartEvent, MessageStopEvent, StopReason, TokenUsage,
    };

    use super::*;

    fn maker() -> ChunkMaker {
        ChunkMaker::new(
            Arc::from("chatcmpl-1"),
            42,
            Arc::from("m"),
            AnswerShape::default(),
        )
    }

    fn start() -> StreamEvent {
        StreamEvent::MessageStart(
            MessageStartEvent::builder()
                .role(ConversationRole::Assistant)
                .build()
                .unwrap(),
        )
    }

    fn delta(text: &str) -> StreamEvent {
        StreamEvent::ContentBlockDelta(
            ContentBlockDeltaEvent::builder()
                .content_block_index(0)
                .delta(ContentBlockDelta::Text(text.into()))
                .build()
                .unwrap(),
        )
    }

    fn stop(reason: StopReason) -> StreamEvent {
        StreamEvent::MessageStop(
            MessageStopEvent::builder()
                .stop_reason(reason)
                .build()
                .unwrap(),
        )
    }

    fn metadata() -> StreamEvent {
        StreamEvent::Metadata(
            ConverseStreamMetadataEvent::builder()
                .usage(
                    TokenUsage::builder()
                        .input_tokens(3)
                        .output_tokens(4)
                        .total_tokens(7)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
    }

    #[test]
    fn events_become_chunks_in_order() {
        let mut m = maker();
        let events = [
            start(),
            delta("Hel"),
            delta("lo"),
            StreamEvent::ContentBlockStop(
                ContentBlockStopEvent::builder()
                    .content_block_index(0)
                    .build()
                    .unwrap(),
            ),
            stop(StopReason::EndTurn),
            metadata(),
        ];
        let chunks: Vec<_> = events.into_iter().filter_map(|e| m.on_event(e)).collect();
        assert_eq!(chunks.len(), 5);
        assert_eq!(chunks[0].role, Some(Role::Assistant));
        assert_eq!(chunks[0].content, None);
        assert_eq!(chunks[1].role, None);
        assert_eq!(chunks[1].content.as_deref(), Some("Hel"));
        assert_eq!(chunks[2].content.as_deref(), Some("lo"));
        assert_eq!(chunks[3].finish_reason, Some(FinishReason::Stop));
        assert_eq!(
            chunks[4].usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7,
                ..Usage::default()
            })
        );
        assert!(
            chunks
                .iter()
                .all(|c| &*c.id == "chatcmpl-1" && c.created == 42)
        );
        assert_eq!(m.on_end().map(|e| e.kind()), None);
    }

    #[test]
    fn role_rides_on_the_first_chunk_without_message_start() {
        let mut m = maker();
        let chunk = m.on_event(delta("x")).unwrap();
        assert_eq!(chunk.role, Some(Role::Assistant));
        assert_eq!(chunk.content.as_deref(), Some("x"));
        assert_eq!(m.on_event(delta("y")).unwrap().role, None);
    }

    #[test]
    fn ending_without_message_stop_is_an_error() {
        let mut m = maker();
        m.on_event(start());
        m.on_event(delta("partial"));
        let err = m.on_end().unwrap();
        assert_eq!(err.kind(), ErrorKind::UpstreamProtocol);
    }

    #[test]
    fn max_tokens_stop_is_length() {
        let mut m = maker();
        let chunk = m.on_event(stop(StopReason::MaxTokens)).unwrap();
        assert_eq!(chunk.finish_reason, Some(FinishReason::Length));
    }
}

#[cfg(test)]
mod tool_tests {
    use aigw_core::FinishReason;
    use aws_sdk_bedrockruntime::types::{
        ContentBlockDeltaEvent, ContentBlockStartEvent, MessageStopEvent, StopReason,
        ToolUseBlockDelta, ToolUseBlockStart,
    };

    use super::*;

    fn tool_start(block: i32, id: &str, name: &str) -> StreamEvent {
        StreamEvent::ContentBlockStart(
            ContentBlockStartEvent::builder()
                .content_block_index(block)
                .start(ContentBlockStart::ToolUse(
                    ToolUseBlockStart::builder()
                        .tool_use_id(id)
                        .name(name)
                        .build()
                        .unwrap(),
                ))
                .build()
                .unwrap(),
        )
    }

    fn tool_delta(block: i32, input: &str) -> StreamEvent {
        StreamEvent::ContentBlockDelta(
            ContentBlockDeltaEvent::builder()
                .content_block_index(block)
                .delta(ContentBlockDelta::ToolUse(
                    ToolUseBlockDelta::builder().input(input).build().unwrap(),
                ))
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn tool_call_index_counts_calls_not_blocks() {
        let mut m = ChunkMaker::new(Arc::from("c"), 1, Arc::from("m"), AnswerShape::default());
        // Block 0 is text, so the tool calls are blocks 1 and 2 but calls 0 and 1.
        let events = [
            tool_start(1, "t1", "a"),
            tool_delta(1, "{\"x\":"),
            tool_start(2, "t2", "b"),
            tool_delta(1, "1}"),
            tool_delta(2, "{}"),
        ];
        let calls: Vec<_> = events
            .into_iter()
            .filter_map(|e| m.on_event(e))
            .map(|c| c.tool_call.unwrap())
            .collect();
        let indexes: Vec<_> = calls.iter().map(|c| c.index).collect();
        assert_eq!(indexes, [0, 0, 1, 0, 1]);
        assert_eq!(calls[0].id.as_deref(), Some("t1"));
        assert_eq!(calls[2].name.as_deref(), Some("b"));
        assert_eq!(calls[1].arguments, "{\"x\":");
        let stop = m
            .on_event(StreamEvent::MessageStop(
                MessageStopEvent::builder()
                    .stop_reason(StopReason::ToolUse)
                    .build()
                    .unwrap(),
            ))
            .unwrap();
        assert_eq!(stop.finish_reason, Some(FinishReason::ToolCalls));
    }

    #[test]
    fn response_format_tool_input_is_content() {
        let shape = AnswerShape {
            json_via_tool: true,
            single_tool_call: false,
        };
        let mut m = ChunkMaker::new(Arc::from("c"), 1, Arc::from("m"), shape);
        assert!(
            m.on_event(tool_start(0, "t", RESPONSE_FORMAT_TOOL))
                .is_none()
        );
        let chunk = m.on_event(tool_delta(0, "{\"a\":1}")).unwrap();
        assert_eq!(chunk.content.as_deref(), Some("{\"a\":1}"));
        assert!(chunk.tool_call.is_none());
    }
}
