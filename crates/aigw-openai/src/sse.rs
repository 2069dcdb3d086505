//! An incremental decoder of `text/event-stream` bodies: bytes in, `data` payloads out.
//!
//! Only what chat completions use is kept: `data:` lines (joined by `\n` when an event has
//! several), dispatched on a blank line; comments and other fields are skipped. Lines end
//! with `\n` or `\r\n`.

use aigw_core::{Error, ErrorKind};
use bytes::{Buf, BytesMut};

/// A line longer than this is not an event stream we want to buffer.
const MAX_LINE: usize = 1 << 20;

/// Holds the bytes of an unfinished line and the data of an unfinished event.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    buf: BytesMut,
    data: Option<String>,
}

impl SseDecoder {
    /// Appends bytes read from the body.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The data of the next complete event, if the buffered bytes hold one.
    pub(crate) fn next_event(&mut self) -> Result<Option<String>, Error> {
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line = self.buf.split_to(end + 1);
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    return Ok(Some(data));
                }
                continue;
            }
            let line = std::str::from_utf8(&line).map_err(|_| {
                Error::new(
                    ErrorKind::UpstreamProtocol,
                    "openai upstream sent an event that is not UTF-8",
                )
            })?;
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            if field == "data" {
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                }
            }
        }
        if self.buf.len() > MAX_LINE {
            self.buf.advance(self.buf.len());
            return Err(Error::new(
                ErrorKind::UpstreamProtocol,
                "openai upstream sent an event line over 1 MiB",
            ));
        }
        Ok(None)
    }

    /// Whether bytes of an unfinished event are still held, at the end of the body.
    pub(crate) fn has_partial(&self) -> bool {
        !self.buf.is_empty() || self.data.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(decoder: &mut SseDecoder) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(event) = decoder.next_event().unwrap() {
            out.push(event);
        }
        out
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text =
            b": keep-alive\n\ndata: {\"a\":1}\r\n\r\ndata:{\"b\":2}\n\nevent: x\ndata: [DONE]\n\n";
        for split in 0..text.len() {
            let mut decoder = SseDecoder::default();
            decoder.push(&text[..split]);
            let mut events = all(&mut decoder);
            decoder.push(&text[split..]);
            events.extend(all(&mut decoder));
            assert_eq!(
                events,
                ["{\"a\":1}", "{\"b\":2}", "[DONE]"],
                "split at {split}"
            );
            assert!(!decoder.has_partial());
        }
    }

    #[test]
    fn multi_line_data_is_joined() {
        let mut decoder = SseDecoder::default();
        decoder.push(b"data: one\ndata: two\n\n");
        assert_eq!(all(&mut decoder), ["one\ntwo"]);
    }

    #[test]
    fn an_unfinished_event_is_noticed() {
        let mut decoder = SseDecoder::default();
        decoder.push(b"data: {\"half\"");
        assert_eq!(all(&mut decoder), Vec::<String>::new());
        assert!(decoder.has_partial());
    }
}
