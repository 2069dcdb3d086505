//! An OpenAI SSE body → a lazy stream of core [`ChatChunk`]s, in the same shape the
//! Bedrock driver produces: a role chunk, content deltas, a finish-reason chunk, a usage
//! chunk.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use aigw_core::{
    ChatChunk, ChunkSequence, ChunkStream, Error, ErrorKind, Reasoning, ToolCallDelta, Usage,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::error::classify_body;
use crate::response::{StreamEvent, finish_reason};
use crate::sse::SseDecoder;

/// The response body as the HTTP client yields it.
pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Turns decoded events into chunks, one event at a time; knows nothing of I/O.
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

    /// The chunks one `data:` payload becomes, appended to `out`.
    pub(crate) fn on_data(
        &mut self,
        data: &str,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), Error> {
        let event: StreamEvent = serde_json::from_str(data).map_err(|err| {
            Error::new(
                ErrorKind::UpstreamProtocol,
                format!("openai upstream sent a stream event aigw could not read: {err}"),
            )
        })?;
        if let Some(error) = event.error {
            let mut text = "openai upstream stream failed".to_owned();
            if let Some(kind) = error.kind {
                text.push_str(" with ");
                text.push_str(&kind);
            }
            if let Some(message) = error.message {
                text.push_str(": ");
                text.push_str(&message);
            }
            return Err(Error::new(ErrorKind::UpstreamError, text));
        }
        let first = out.len();
        // Only the first choice: aigw asks for one (`n` is never sent).
        if let Some(choice) = event.choices.into_iter().next() {
            if choice.delta.role.is_some() && !self.sequence.role_sent() {
                out.push_back(self.sequence.chunk());
            }
            if let Some(text) = choice.delta.reasoning_content.filter(|t| !t.is_empty()) {
                out.push_back(ChatChunk {
                    reasoning: Some(Reasoning {
                        text,
                        signature: None,
                    }),
                    ..self.sequence.chunk()
                });
            }
            for call in choice.delta.tool_calls {
                let function = call.function;
                let (name, arguments) = match function {
                    Some(f) => (f.name, f.arguments.unwrap_or_default()),
                    None => (None, String::new()),
                };
                out.push_back(ChatChunk {
                    tool_call: Some(ToolCallDelta {
                        index: call.index,
                        id: call.id,
                        name,
                        arguments,
                    }),
                    ..self.sequence.chunk()
                });
            }
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                out.push_back(ChatChunk {
                    content: Some(text),
                    ..self.sequence.chunk()
                });
            }
            // Servers that put the last text and the finish reason in one event still get
            // a finish chunk of its own, as every other driver's stream has.
            if let Some(reason) = choice.finish_reason {
                self.sequence.mark_complete();
                out.push_back(ChatChunk {
                    finish_reason: Some(finish_reason(Some(&reason))),
                    ..self.sequence.chunk()
                });
            }
        }
        if let Some(usage) = event.usage {
            out.push_back(ChatChunk {
                usage: Some(Usage::from(usage)),
                ..self.sequence.chunk()
            });
        }
        if let Some(chunk) = out.get_mut(first) {
            self.sequence.give_role_if_first(chunk);
        }
        Ok(())
    }

    /// What the end of the events means: clean only after a finish reason.
    pub(crate) fn on_end(&self) -> Option<Error> {
        self.sequence
            .end("openai upstream stream ended before a finish_reason")
    }
}

struct State {
    body: BodyStream,
    decoder: SseDecoder,
    chunks: ChunkMaker,
    pending: VecDeque<ChatChunk>,
    /// `[DONE]` or the end of the body was seen.
    ended: bool,
}

/// A lazy chunk stream over an SSE `body`.
///
/// Nothing is read ahead: each poll reads at most until the next chunk. Dropping the
/// stream drops the body, which closes the connection and so cancels the generation.
pub(crate) fn chunk_stream(body: BodyStream, chunks: ChunkMaker) -> ChunkStream {
    let state = State {
        body,
        decoder: SseDecoder::default(),
        chunks,
        pending: VecDeque::new(),
        ended: false,
    };
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            // `None` state means the stream already yielded its final error.
            let mut state = state?;
            loop {
                if let Some(chunk) = state.pending.pop_front() {
                    return Some((Ok(chunk), Some(state)));
                }
                if state.ended {
                    return state.chunks.on_end().map(|err| (Err(err), None));
                }
                match state.decoder.next_event() {
                    Ok(Some(data)) if data.trim() == "[DONE]" => state.ended = true,
                    Ok(Some(data)) => {
                        if let Err(err) = state.chunks.on_data(&data, &mut state.pending) {
                            return Some((Err(err), None));
                        }
                    }
                    Ok(None) => match state.body.next().await {
                        Some(Ok(bytes)) => state.decoder.push(&bytes),
                        Some(Err(err)) => return Some((Err(classify_body(err)), None)),
                        None => {
                            if state.decoder.has_partial() {
                                return Some((
                                    Err(Error::new(
                                        ErrorKind::UpstreamProtocol,
                                        "openai upstream stream ended in the middle of an event",
                                    )),
                                    None,
                                ));
                            }
                            state.ended = true;
                        }
                    },
                    Err(err) => return Some((Err(err), None)),
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use aigw_core::{FinishReason, Role};

    use super::*;

    fn maker() -> ChunkMaker {
        ChunkMaker::new(Arc::from("chatcmpl-1"), 42, Arc::from("m"))
    }

    fn body(parts: &[&'static str]) -> BodyStream {
        let items: Vec<reqwest::Result<Bytes>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        Box::pin(futures_util::stream::iter(items))
    }

    async fn collect(stream: ChunkStream) -> Vec<Result<ChatChunk, Error>> {
        stream.collect().await
    }

    #[tokio::test]
    async fn openai_events_become_the_core_chunk_sequence() {
        let events = body(&[
            "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"del",
            "ta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n",
            "data: [DONE]\n\n",
        ]);
        let chunks: Vec<ChatChunk> = collect(chunk_stream(events, maker()))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(chunks.len(), 5);
        assert_eq!(chunks[0].role, Some(Role::Assistant));
        assert_eq!(chunks[0].content, None);
        assert_eq!(chunks[1].content.as_deref(), Some("Hel"));
        assert_eq!(chunks[1].role, None);
        assert_eq!(chunks[2].content.as_deref(), Some("lo"));
        assert_eq!(chunks[3].finish_reason, Some(FinishReason::Stop));
        assert_eq!(chunks[4].usage.map(|u| u.total_tokens), Some(7));
        assert!(
            chunks
                .iter()
                .all(|c| &*c.id == "chatcmpl-1" && &*c.model == "m")
        );
    }

    #[tokio::test]
    async fn text_and_finish_in_one_event_still_get_their_own_chunks() {
        let events = body(&[
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"length\"}]}\n\n",
        ]);
        let chunks: Vec<ChatChunk> = collect(chunk_stream(events, maker()))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].role, Some(Role::Assistant));
        assert_eq!(chunks[0].content.as_deref(), Some("Hi"));
        assert_eq!(chunks[1].finish_reason, Some(FinishReason::Length));
    }

    #[tokio::test]
    async fn ending_early_or_garbled_or_with_an_error_event_fails_the_stream() {
        let cases: [&[&'static str]; 3] = [
            &["data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"],
            &["data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {nope\n\n"],
            &["data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n"],
        ];
        let kinds = [
            ErrorKind::UpstreamProtocol,
            ErrorKind::UpstreamProtocol,
            ErrorKind::UpstreamError,
        ];
        for (parts, kind) in cases.into_iter().zip(kinds) {
            let items = collect(chunk_stream(body(parts), maker())).await;
            let last = items.last().unwrap().as_ref().unwrap_err();
            assert_eq!(last.kind(), kind, "{parts:?}");
            assert!(items[..items.len() - 1].iter().all(Result::is_ok));
        }
    }

    #[test]
    fn tool_call_deltas_keep_their_index() {
        let mut m = maker();
        let mut out = VecDeque::new();
        m.on_data(
            r#"{"choices":[{"delta":{"role":"assistant","tool_calls":[{"index":1,"id":"t2","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            &mut out,
        )
        .unwrap();
        m.on_data(
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}}]}"#,
            &mut out,
        )
        .unwrap();
        let calls: Vec<_> = out.iter().filter_map(|c| c.tool_call.clone()).collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].index, 1);
        assert_eq!(calls[0].id.as_deref(), Some("t2"));
        assert_eq!(calls[0].name.as_deref(), Some("f"));
        assert_eq!((calls[1].index, calls[1].arguments.as_str()), (1, "{}"));
        assert_eq!(out[0].role, Some(Role::Assistant));
    }
}
