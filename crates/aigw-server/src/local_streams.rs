//! Running a connection's first HTTP/2 streams inside the connection's own task.
//!
//! hyper runs each HTTP/2 stream (one gRPC call) as a task of its own, and the stream's task
//! wakes the connection's task to send every frame of the answer. In one poll, the stream's
//! task also wakes the upstream connection's task (its body channel asks for more data), so
//! tokio's one-task "next to run" slot overflows, the displaced task goes to the run queue
//! and the idle worker is woken to take it (seen in gdb: `send_headers` → `schedule_local`
//! → futex), so each call crossed threads: two futex calls per call under `strace -c`, none
//! after this change. Driving a stream from the connection's task turns
//! those wake-ups into wake-ups of the task being polled, which [`repoll`](crate::repoll)
//! handles in place, as HTTP/1 requests are already served.
//!
//! Only a few streams per connection run this way: beyond [`MAX_INLINE_STREAMS`], a stream
//! is spawned as usual, so a client multiplexing many calls on one connection still gets
//! every worker thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

/// How many streams of one connection run in its task at once; later ones are spawned.
const MAX_INLINE_STREAMS: usize = 4;

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor hyper is given for one connection: it hands streams to that connection's
/// task while fewer than [`MAX_INLINE_STREAMS`] run there, and spawns the rest.
#[derive(Clone)]
pub(crate) struct StreamExecutor {
    inbox: mpsc::UnboundedSender<StreamFuture>,
    inline: Arc<AtomicUsize>,
}

/// The streams [`StreamExecutor`] handed to the connection's task, driven by [`drive`].
pub(crate) struct LocalStreams {
    inbox: mpsc::UnboundedReceiver<StreamFuture>,
    running: FuturesUnordered<StreamFuture>,
    inline: Arc<AtomicUsize>,
}

/// An executor for one connection and the streams it will hand to that connection's task.
pub(crate) fn local_streams() -> (StreamExecutor, LocalStreams) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let inline = Arc::new(AtomicUsize::new(0));
    (
        StreamExecutor {
            inbox: sender,
            inline: Arc::clone(&inline),
        },
        LocalStreams {
            inbox: receiver,
            running: FuturesUnordered::new(),
            inline,
        },
    )
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        // Only the connection's own task calls this and `drive`, so the check and the
        // increment cannot race and the counter needs no ordering; it is atomic only
        // because the executor must be `Send`.
        if self.inline.load(Ordering::Relaxed) >= MAX_INLINE_STREAMS {
            tokio::spawn(stream);
            return;
        }
        self.inline.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(stream)) = self.inbox.send(Box::pin(stream)) {
            // The connection's task is gone; the stream still deserves an answer.
            self.inline.fetch_sub(1, Ordering::Relaxed);
            tokio::spawn(stream);
        }
    }
}

/// Polls `connection` and the streams handed to `streams` together; finishes when the
/// connection has finished and every stream it handed over has too, so no answer in
/// flight is dropped with the connection.
// A plain function over `poll_fn`, not an `async fn`: an async fn would keep room for the
// connection twice (the argument and its pinned copy), about 4 KiB more per connection.
pub(crate) fn drive<F: Future>(
    connection: F,
    mut streams: LocalStreams,
) -> impl Future<Output = F::Output> {
    let mut connection = Box::pin(connection);
    let mut finished = None;
    std::future::poll_fn(move |cx| {
        if finished.is_none()
            && let Poll::Ready(output) = connection.as_mut().poll(cx)
        {
            finished = Some(output);
        }
        streams.poll_streams(cx);
        if streams.running.is_empty()
            && let Some(output) = finished.take()
        {
            Poll::Ready(output)
        } else {
            Poll::Pending
        }
    })
}

impl LocalStreams {
    /// Takes in newly handed streams and polls the running ones until none can progress.
    fn poll_streams(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(stream)) = self.inbox.poll_recv(cx) {
            self.running.push(stream);
        }
        while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {
            self.inline.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use hyper::rt::Executor;
    use tokio::sync::oneshot;

    use super::*;

    /// Hands `count` streams to `executor`; each records the task it runs in and then
    /// waits for its release.
    fn hand_over(
        executor: &StreamExecutor,
        count: usize,
        ran_in: &Arc<Mutex<Vec<tokio::task::Id>>>,
    ) -> Vec<oneshot::Sender<()>> {
        (0..count)
            .map(|_| {
                let (release, released) = oneshot::channel::<()>();
                let ran_in = Arc::clone(ran_in);
                executor.execute(async move {
                    ran_in.lock().expect("lock").push(tokio::task::id());
                    let _ = released.await;
                });
                release
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_streams_run_in_the_connection_task_and_later_ones_are_spawned() {
        let ran_in = Arc::new(Mutex::new(Vec::new()));
        let (executor, streams) = local_streams();
        let recorded = Arc::clone(&ran_in);
        let connection_task = tokio::spawn(drive(
            async move {
                let releases = hand_over(&executor, MAX_INLINE_STREAMS + 1, &recorded);
                // Let every stream start before releasing them.
                while recorded.lock().expect("lock").len() < MAX_INLINE_STREAMS + 1 {
                    tokio::task::yield_now().await;
                }
                for release in releases {
                    let _ = release.send(());
                }
                tokio::task::id()
            },
            streams,
        ));
        let connection_id = connection_task.await.expect("connection task");
        let ran_in = ran_in.lock().expect("lock").clone();
        let inline = ran_in.iter().filter(|id| **id == connection_id).count();
        assert_eq!(
            inline, MAX_INLINE_STREAMS,
            "tasks streams ran in: {ran_in:?}"
        );
    }

    #[tokio::test]
    async fn a_finished_connection_waits_for_the_streams_it_handed_over() {
        let (executor, streams) = local_streams();
        let (release, released) = oneshot::channel::<()>();
        let answered = Arc::new(AtomicUsize::new(0));
        let stream_answered = Arc::clone(&answered);
        let driving = tokio::spawn(drive(
            async move {
                executor.execute(async move {
                    let _ = released.await;
                    stream_answered.fetch_add(1, Ordering::SeqCst);
                });
            },
            streams,
        ));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            !driving.is_finished(),
            "finished before its stream answered"
        );
        let _ = release.send(());
        driving.await.expect("driving task");
        assert_eq!(answered.load(Ordering::SeqCst), 1);
    }
}
