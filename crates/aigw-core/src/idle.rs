//! The stream idle timeout every driver's streams get from [`Driver`](crate::Driver).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::{ChatChunk, ChunkStream, Error, ErrorKind};

/// `stream` ended with an [`ErrorKind::UpstreamTimeout`] once its upstream stays silent
/// for longer than `limit` between two chunks.
///
/// Like nginx's `proxy_read_timeout` (and so Kong's `read_timeout`), the clock runs only
/// while a chunk is being waited for: a client that is slow to read does not count against
/// the upstream. On the timeout the upstream stream is dropped at once, which cancels the
/// call, rather than when the caller drops this one.
pub(crate) fn idle_timeout(
    stream: ChunkStream,
    limit: Duration,
    provider: &'static str,
) -> ChunkStream {
    Box::pin(IdleTimeout {
        inner: Some(stream),
        deadline: Box::pin(tokio::time::sleep(limit)),
        armed: false,
        limit,
        provider,
    })
}

struct IdleTimeout {
    /// `None` once the stream ended, failed or timed out.
    inner: Option<ChunkStream>,
    /// One timer, reset for each wait rather than allocated anew.
    deadline: Pin<Box<Sleep>>,
    /// Whether `deadline` is set for the wait in progress.
    armed: bool,
    limit: Duration,
    provider: &'static str,
}

impl Stream for IdleTimeout {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = inner.as_mut().poll_next(cx) {
            this.armed = false;
            if !matches!(item, Some(Ok(_))) {
                this.inner = None;
            }
            return Poll::Ready(item);
        }
        if !this.armed {
            this.deadline.as_mut().reset(Instant::now() + this.limit);
            this.armed = true;
        }
        if this.deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.inner = None;
        Poll::Ready(Some(Err(Error::new(
            ErrorKind::UpstreamTimeout,
            format!(
                "{} stream sent nothing for {} ms (read_timeout)",
                this.provider,
                this.limit.as_millis()
            ),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures_util::StreamExt;

    use super::*;
    use crate::ChunkSequence;

    fn chunk() -> ChatChunk {
        ChunkSequence::new(Arc::from("chatcmpl-1"), 1, Arc::from("m")).chunk()
    }

    /// Sets its flag when dropped, as a dropped upstream body cancels the call.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_past_the_limit_ends_the_stream_with_a_timeout() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(Arc::clone(&dropped));
        let upstream = futures_util::stream::iter([Ok(chunk())])
            .chain(futures_util::stream::pending())
            .map(move |item| {
                let _keep = &flag;
                item
            });
        let mut stream = idle_timeout(Box::pin(upstream), Duration::from_millis(300), "openai");
        assert!(stream.next().await.is_some_and(|item| item.is_ok()));
        let started = Instant::now();
        let err = stream
            .next()
            .await
            .and_then(Result::err)
            .expect("a timeout");
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(err.kind(), ErrorKind::UpstreamTimeout);
        assert_eq!(
            err.message(),
            "openai stream sent nothing for 300 ms (read_timeout)"
        );
        assert!(
            dropped.load(Ordering::SeqCst),
            "the upstream is let go at once"
        );
        assert!(stream.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn gaps_under_the_limit_and_slow_readers_are_not_cut() {
        let upstream = futures_util::stream::iter(0..3).then(|_| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(chunk())
        });
        let mut stream = idle_timeout(Box::pin(upstream), Duration::from_millis(300), "bedrock");
        let mut seen = 0;
        while let Some(item) = stream.next().await {
            assert!(item.is_ok(), "{item:?}");
            seen += 1;
            // The reader dawdles longer than the limit; only the upstream's silence counts.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(seen, 3);
    }
}
