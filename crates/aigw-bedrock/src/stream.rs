//! ConverseStream events → a lazy stream of core [`ChatChunk`]s.

use std::sync::Arc;

use aigw_core::{ChatChunk, ChunkSequence, ChunkStream, Error};
use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{ContentBlockDelta, ConverseStreamOutput as StreamEvent};

use crate::error::classify_stream;
use crate::response::{finish_reason, usage};

/// The SDK's receiver of ConverseStream events.
pub(crate) type Receiver = EventReceiver<StreamEvent, ConverseStreamOutputError>;

/// Turns stream events into chunks, one event at a time; knows nothing of I/O.
#[derive(Debug)]
pub(crate) struct ChunkMaker {
    sequence: ChunkSequence,
}

impl ChunkMaker {
    pub(crate) fn new(id: Arc<str>, created: u64, model: Arc<str>) -> Self {
        ChunkMaker {
            sequence: ChunkSequence::new(id, created, model),
        }
    }

    /// The chunk an event becomes, if it carries anything a client sees.
    pub(crate) fn on_event(&mut self, event: StreamEvent) -> Option<ChatChunk> {
        let mut chunk = match event {
            StreamEvent::MessageStart(_) if !self.sequence.role_sent() => self.sequence.chunk(),
            StreamEvent::ContentBlockDelta(delta) => match delta.delta {
                Some(ContentBlockDelta::Text(text)) if !text.is_empty() => ChatChunk {
                    content: Some(text),
                    ..self.sequence.chunk()
                },
                // Tool-use, reasoning and citation deltas have no text-chat equivalent yet.
                _ => return None,
            },
            StreamEvent::MessageStop(stop) => {
                self.sequence.mark_complete();
                ChatChunk {
                    finish_reason: Some(finish_reason(stop.stop_reason())),
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
        ChunkMaker::new(Arc::from("chatcmpl-1"), 42, Arc::from("m"))
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
                total_tokens: 7
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
