//! The frames of Bedrock's `application/vnd.amazon.eventstream` (ConverseStream's answer),
//! written once for the two places that send them: the gateway's Bedrock front end and the
//! emulator. The framing itself (prelude, headers, payload, both CRCs) is smithy's, the
//! code the AWS SDKs read the frames with, so what is written here is what they accept.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use aws_smithy_types::str_bytes::StrBytes;
use bytes::{BufMut, Bytes};

pub use aws_smithy_eventstream::error::Error;

fn string_header(name: &'static str, value: impl Into<StrBytes>) -> Header {
    Header::new(name, HeaderValue::String(value.into()))
}

/// Appends an event frame (`:message-type: event`) of `event_type` (`messageStart`,
/// `contentBlockDelta`, …) with a JSON `payload` to `buf`.
///
/// Fails only for headers or payloads beyond the format's 16 MB limits.
pub fn write_event(
    buf: &mut dyn BufMut,
    event_type: &'static str,
    payload: Bytes,
) -> Result<(), Error> {
    let headers = vec![
        string_header(":event-type", event_type),
        string_header(":content-type", "application/json"),
        string_header(":message-type", "event"),
    ];
    write_message_to(&Message::new_from_parts(headers, payload), buf)
}

/// Appends an exception frame (`:message-type: exception`) of `exception_type`
/// (`throttlingException`, `modelStreamErrorException`, …) whose payload is
/// `{"message": …}` JSON, which the SDKs raise as the stream's error.
pub fn write_exception(
    buf: &mut dyn BufMut,
    exception_type: impl Into<String>,
    payload: Bytes,
) -> Result<(), Error> {
    let headers = vec![
        string_header(":exception-type", exception_type.into()),
        string_header(":content-type", "application/json"),
        string_header(":message-type", "exception"),
    ];
    write_message_to(&Message::new_from_parts(headers, payload), buf)
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::read_message_from;

    use super::*;

    #[test]
    fn frames_read_back_with_their_headers_and_a_flipped_crc_is_refused() {
        let mut buf = Vec::new();
        write_event(
            &mut buf,
            "messageStart",
            Bytes::from_static(b"{\"role\":\"assistant\"}"),
        )
        .expect("a small frame encodes");
        write_exception(
            &mut buf,
            "throttlingException",
            Bytes::from_static(b"{\"message\":\"slow\"}"),
        )
        .expect("a small frame encodes");
        let mut read = &buf[..];
        let event = read_message_from(&mut read).expect("the event frame reads back");
        let header = |m: &Message, name: &str| {
            m.headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_owned())
        };
        assert_eq!(
            header(&event, ":event-type").as_deref(),
            Some("messageStart")
        );
        assert_eq!(&event.payload()[..], b"{\"role\":\"assistant\"}");
        let exception = read_message_from(&mut read).expect("the exception frame reads back");
        assert_eq!(
            header(&exception, ":exception-type").as_deref(),
            Some("throttlingException")
        );

        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let mut read = &buf[..];
        read_message_from(&mut read).expect("the first frame is intact");
        assert!(
            read_message_from(&mut read).is_err(),
            "a bad message CRC is refused"
        );
    }
}
