//! Helpers for tests that drive a driver over a real socket, shared by every driver
//! crate's tests; only built with the `test-support` feature.
//!
//! They panic on what a test did not expect, with a message saying what that was.

use std::time::Duration;

use futures_util::StreamExt;
use tower::{Service, ServiceExt};

use crate::{ChatChunk, ChatReply, ChatRequest, ChunkStream, Error, Message, ReplyBody, Role};

/// How long [`collect`] waits for a whole stream before failing the test.
const STREAM_LIMIT: Duration = Duration::from_secs(10);

/// A one-message request from the user, streamed or not.
pub fn ask(question: &str, stream: bool) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::User, question)].into(),
        stream,
        ..ChatRequest::default()
    }
}

/// Sends `request` through a clone of `driver`, as the balancer does.
pub async fn call<S>(driver: &S, request: ChatRequest) -> Result<ChatReply, Error>
where
    S: Service<ChatRequest, Response = ChatReply, Error = Error> + Clone,
{
    driver.clone().oneshot(request).await
}

/// The reply's stream; panics on a whole answer.
pub fn into_stream(reply: ChatReply) -> ChunkStream {
    match reply.body {
        ReplyBody::Stream(stream) => stream,
        ReplyBody::Complete(_) => panic!("expected a stream"),
    }
}

/// Every item of `stream`; panics when it does not end within ten seconds.
pub async fn collect(stream: ChunkStream) -> Vec<Result<ChatChunk, Error>> {
    tokio::time::timeout(STREAM_LIMIT, stream.collect())
        .await
        .expect("the stream ends within ten seconds")
}

/// The text of a stream that broke, and the error it ended with; panics unless every item
/// but the last is a chunk and the last is an error.
pub fn text_then_error(items: &[Result<ChatChunk, Error>]) -> (String, Error) {
    let Some((Err(last), chunks)) = items.split_last() else {
        panic!("expected a stream ending with an error: {items:?}");
    };
    let text = chunks
        .iter()
        .map(|chunk| match chunk {
            Ok(chunk) => chunk.content.clone().unwrap_or_default(),
            Err(err) => panic!("an error before the end: {err}"),
        })
        .collect();
    (text, last.clone())
}

/// Whether `cond` holds within `limit`, polled every 20 ms.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
