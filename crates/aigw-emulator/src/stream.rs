//! The `converse-stream` answer body: AWS event-stream frames, produced and flushed one
//! delta at a time.

use std::io;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::answer::{Answer, deltas};
use crate::rich::input_fragments;
use crate::server::{Inflight, millis, stopped, usage_json};

/// Buffered frames are handed to hyper once they reach this many bytes, wait or not.
const FLUSH_AT: usize = 16 * 1024;

/// A fault that strikes part-way through a stream.
#[derive(Debug)]
pub(crate) enum StreamFault {
    Cut {
        after: usize,
    },
    BadCrc {
        after: usize,
    },
    Exception {
        after: usize,
        exception_type: String,
    },
}

impl StreamFault {
    fn after(&self) -> usize {
        match self {
            Self::Cut { after } | Self::BadCrc { after } | Self::Exception { after, .. } => *after,
        }
    }
}

/// Everything the stream needs, decided before the response head is sent.
#[derive(Debug)]
pub(crate) struct StreamPlan {
    pub(crate) answer: Answer,
    pub(crate) token_delay: Duration,
    pub(crate) fault: Option<StreamFault>,
    pub(crate) started: Instant,
}

/// The response body for `plan`. `inflight` rides along so that dropping the body before the
/// end (the client went away) is counted as a cancelled stream.
pub(crate) fn body(plan: StreamPlan, inflight: Inflight, stop: watch::Receiver<bool>) -> Body {
    let frames = Frames {
        plan,
        cursor: 0,
        sent: 0,
        waited: false,
        phase: Phase::Start,
        buf: BytesMut::with_capacity(1024),
        broken: false,
        inflight,
        stop,
    };
    Body::from_stream(futures_util::stream::unfold(frames, |mut f| async move {
        let item = f.next().await?;
        Some((item, f))
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Deltas,
    Finish,
    /// Flush what is buffered, then fail the body so the connection is reset.
    Cut,
    /// Flush what is buffered, then end the body.
    Done,
}

struct Frames {
    plan: StreamPlan,
    /// Byte offset in the answer text of the next delta.
    cursor: usize,
    /// Deltas sent so far.
    sent: usize,
    /// The token delay before the next delta has been served.
    waited: bool,
    phase: Phase,
    buf: BytesMut,
    /// A frame failed to encode; the stream is cut at the next step.
    broken: bool,
    inflight: Inflight,
    stop: watch::Receiver<bool>,
}

impl Frames {
    /// The next chunk of the body. Frames produced at the same moment share a chunk (of at
    /// most about [`FLUSH_AT`] bytes); a chunk is handed to hyper before every wait, so each
    /// delta reaches the socket when produced.
    async fn next(&mut self) -> Option<Result<Bytes, io::Error>> {
        loop {
            if self.broken && !matches!(self.phase, Phase::Cut | Phase::Done) {
                self.phase = Phase::Cut;
            }
            match self.phase {
                Phase::Start => {
                    self.event(
                        "messageStart",
                        Bytes::from_static(b"{\"role\":\"assistant\"}"),
                    );
                    self.reasoning_block();
                    self.phase = Phase::Deltas;
                }
                Phase::Deltas => {
                    let text = &self.plan.answer.text;
                    let piece = deltas(&text[self.cursor..]).next();
                    if let Some(fault) = &self.plan.fault {
                        // Past the text, a fault may still strike among the tool calls.
                        let text_done = piece.is_none() && self.plan.answer.tool_uses.is_empty();
                        if self.sent >= fault.after() || text_done {
                            self.strike();
                            continue;
                        }
                    }
                    let Some(piece) = piece else {
                        self.phase = Phase::Finish;
                        continue;
                    };
                    let delay = self.plan.token_delay;
                    if self.sent > 0 && !delay.is_zero() && !self.waited {
                        if !self.buf.is_empty() {
                            return Some(Ok(self.buf.split().freeze()));
                        }
                        tokio::select! {
                            () = tokio::time::sleep(delay) => self.waited = true,
                            () = stopped(&mut self.stop) => {
                                // The emulator is stopping, not the client leaving.
                                self.inflight.complete();
                                self.phase = Phase::Cut;
                            }
                        }
                        continue;
                    }
                    let payload = delta_payload(piece, self.text_index());
                    self.cursor += piece.len();
                    self.sent += 1;
                    self.waited = false;
                    self.event("contentBlockDelta", payload);
                    // Without a token delay every frame is produced "at the same moment";
                    // handing them over in bounded pieces keeps a long answer from being
                    // built whole in memory, and lets a slow reader hold the stream back.
                    if self.buf.len() >= FLUSH_AT {
                        return Some(Ok(self.buf.split().freeze()));
                    }
                }
                Phase::Finish => {
                    let mut next_block = self.text_index();
                    if !self.plan.answer.text.is_empty() {
                        self.json_event(
                            "contentBlockStop",
                            &serde_json::json!({"contentBlockIndex": next_block}),
                        );
                        next_block += 1;
                    }
                    if self.tool_blocks(next_block) {
                        continue;
                    }
                    let stop = format!(
                        "{{\"stopReason\":\"{}\"}}",
                        self.plan.answer.stop_reason.as_str()
                    );
                    self.event("messageStop", Bytes::from(stop));
                    let metadata = serde_json::json!({
                        "usage": usage_json(&self.plan.answer),
                        "metrics": {"latencyMs": millis(self.plan.started.elapsed())},
                    });
                    self.json_event("metadata", &metadata);
                    self.inflight.complete();
                    self.phase = Phase::Done;
                }
                Phase::Cut => {
                    if !self.buf.is_empty() {
                        return Some(Ok(self.buf.split().freeze()));
                    }
                    self.phase = Phase::Done;
                    return Some(Err(cut().await));
                }
                Phase::Done => {
                    if !self.buf.is_empty() {
                        return Some(Ok(self.buf.split().freeze()));
                    }
                    return None;
                }
            }
        }
    }

    /// Injects the armed fault at the current position; the stream ends after it.
    fn strike(&mut self) {
        self.inflight.complete();
        self.phase = Phase::Done;
        match self.plan.fault.take() {
            None => {}
            Some(StreamFault::Cut { .. }) => self.phase = Phase::Cut,
            Some(StreamFault::BadCrc { .. }) => {
                let text = &self.plan.answer.text;
                let piece = deltas(&text[self.cursor..]).next().unwrap_or(" ");
                self.event("contentBlockDelta", delta_payload(piece, self.text_index()));
                // The last four bytes are the message CRC; flipping them breaks only that.
                let end = self.buf.len();
                for b in &mut self.buf[end.saturating_sub(4)..] {
                    *b ^= 0xff;
                }
            }
            Some(StreamFault::Exception { exception_type, .. }) => {
                let payload = Bytes::from_static(b"{\"message\":\"emulated stream exception\"}");
                let written =
                    aigw_eventstream::write_exception(&mut self.buf, exception_type, payload);
                self.broken |= written.is_err();
            }
        }
    }

    /// The content block index of the answer's text: after the reasoning block, if any.
    fn text_index(&self) -> usize {
        usize::from(self.plan.answer.reasoning.is_some())
    }

    /// The reasoning block, as block 0: its text in two deltas, then its signature.
    fn reasoning_block(&mut self) {
        let Some((text, signature)) = self.plan.answer.reasoning.clone() else {
            return;
        };
        let mut half = text.len() / 2;
        while !text.is_char_boundary(half) {
            half += 1;
        }
        for piece in [&text[..half], &text[half..]] {
            self.json_event(
                "contentBlockDelta",
                &serde_json::json!({
                    "contentBlockIndex": 0,
                    "delta": {"reasoningContent": {"text": piece}}
                }),
            );
        }
        self.json_event(
            "contentBlockDelta",
            &serde_json::json!({
                "contentBlockIndex": 0,
                "delta": {"reasoningContent": {"signature": signature}}
            }),
        );
        self.json_event(
            "contentBlockStop",
            &serde_json::json!({"contentBlockIndex": 0}),
        );
    }

    /// Each tool call as its own block from `first` on: its start (id and name), its input
    /// in several fragments, its stop. Input fragments count as deltas for an armed fault,
    /// which strikes among them; `true` when it did.
    fn tool_blocks(&mut self, first: usize) -> bool {
        let tools = std::mem::take(&mut self.plan.answer.tool_uses);
        for (k, tool) in tools.iter().enumerate() {
            let index = first + k;
            self.json_event(
                "contentBlockStart",
                &serde_json::json!({
                    "contentBlockIndex": index,
                    "start": {"toolUse": {"toolUseId": tool.id, "name": tool.name}}
                }),
            );
            let input = tool.input.to_string();
            for piece in input_fragments(&input) {
                self.json_event(
                    "contentBlockDelta",
                    &serde_json::json!({
                        "contentBlockIndex": index,
                        "delta": {"toolUse": {"input": piece}}
                    }),
                );
                self.sent += 1;
                if self
                    .plan
                    .fault
                    .as_ref()
                    .is_some_and(|f| self.sent >= f.after())
                {
                    self.plan.answer.tool_uses = tools;
                    self.strike();
                    return true;
                }
            }
            self.json_event(
                "contentBlockStop",
                &serde_json::json!({"contentBlockIndex": index}),
            );
        }
        self.plan.answer.tool_uses = tools;
        if self.plan.fault.is_some() {
            // Capped at the answer's length, as for text.
            self.strike();
            return true;
        }
        false
    }

    fn json_event(&mut self, event_type: &'static str, payload: &serde_json::Value) {
        match serde_json::to_vec(payload) {
            Ok(json) => self.event(event_type, Bytes::from(json)),
            Err(_) => self.broken = true,
        }
    }

    fn event(&mut self, event_type: &'static str, payload: Bytes) {
        // Only headers or payloads beyond the format's size limits fail to encode, and ours
        // are small and fixed; should it ever happen, cutting the stream is the honest answer.
        let written = aigw_eventstream::write_event(&mut self.buf, event_type, payload);
        self.broken |= written.is_err();
    }
}

/// The error that makes hyper abort the connection mid-body.
///
/// Yielding first lets hyper flush what it already holds: failing straight away would discard
/// the response head and frames with the connection, and the client would see a failed send
/// instead of a stream that breaks off part-way.
pub(crate) async fn cut() -> io::Error {
    tokio::task::yield_now().await;
    io::Error::new(io::ErrorKind::ConnectionAborted, "emulated cut stream")
}

/// A body that sends `head` and then breaks off with a connection reset.
pub(crate) fn cut_after(head: Bytes) -> Body {
    let chunks = futures_util::stream::once(async move { Ok::<_, io::Error>(head) })
        .chain(futures_util::stream::once(async { Err(cut().await) }));
    Body::from_stream(chunks)
}

fn delta_payload(piece: &str, index: usize) -> Bytes {
    let mut json = Vec::with_capacity(piece.len() + 48);
    json.extend_from_slice(b"{\"contentBlockIndex\":");
    json.extend_from_slice(index.to_string().as_bytes());
    json.extend_from_slice(b",\"delta\":{\"text\":");
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut json, piece);
    json.extend_from_slice(b"}}");
    Bytes::from(json)
}
