//! Polling a connection again, in place, when it wakes itself.
//!
//! hyper hands a request body to the service through a channel, and both ends live in the
//! connection's task: when the handler first reads the body, the channel tells the
//! dispatcher that data is wanted by waking it, and the dispatcher is the task being
//! polled (seen in gdb: the wake comes from hyper's `body/chan.rs` under axum's body
//! collection). tokio treats a task woken while it runs as one that yielded: it goes to the
//! back of the run queue and an idle worker is woken to help. Every request therefore woke
//! the other worker, which took over the I/O driver and then the upstream's answer, so one
//! request crossed threads twice (a futex wake and a wait, and a cold cache on the other
//! side). Polling the connection again right away, when the only wake-up came from inside
//! its own poll, keeps the request on one thread, as a bare hyper proxy's stays.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// How many times in a row a future may be polled again in place before it is handed back
/// to the scheduler like any task that yields, so no connection can starve the others.
const MAX_REPOLLS: usize = 4;

/// Wraps `future` so wake-ups it gives itself while being polled make it poll again in
/// place instead of rescheduling; wake-ups from anywhere else go to the task as usual.
pub(crate) fn repoll_on_self_wake<F: Future>(future: F) -> RepollOnSelfWake<F> {
    let state = Arc::new(WakeState {
        polling: AtomicBool::new(false),
        woken: AtomicBool::new(false),
        task: AtomicWaker::new(),
    });
    RepollOnSelfWake {
        future: Box::pin(future),
        waker: Waker::from(Arc::clone(&state)),
        state,
    }
}

/// See [`repoll_on_self_wake`].
pub(crate) struct RepollOnSelfWake<F> {
    future: Pin<Box<F>>,
    state: Arc<WakeState>,
    /// Built once: the same waker on every poll lets tokio and hyper keep what they
    /// registered instead of cloning a new waker each time.
    waker: Waker,
}

struct WakeState {
    polling: AtomicBool,
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WakeState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SeqCst on both sides: if this load sees `polling` still true, the poller's later
        // clear-then-check is ordered after the store above and finds `woken` set, so no
        // wake-up is lost between the two.
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

impl<F: Future> Future for RepollOnSelfWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.state.task.register(cx.waker());
        let this = &mut *self;
        let mut inner = Context::from_waker(&this.waker);
        for _ in 0..=MAX_REPOLLS {
            this.state.woken.store(false, Ordering::SeqCst);
            this.state.polling.store(true, Ordering::SeqCst);
            let polled = this.future.as_mut().poll(&mut inner);
            this.state.polling.store(false, Ordering::SeqCst);
            if polled.is_ready() || !this.state.woken.swap(false, Ordering::SeqCst) {
                return polled;
            }
        }
        // Still waking itself: let the scheduler run others first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Wakes itself `times` times while being polled, then finishes; counts its polls.
    struct WakesItself {
        times: usize,
        polls: Arc<AtomicUsize>,
    }

    impl Future for WakesItself {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.times == 0 {
                return Poll::Ready(());
            }
            self.times -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// Counts how often the outer task was woken.
    struct CountingWake(AtomicUsize);

    impl Wake for CountingWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll_once<F: Future>(future: Pin<&mut F>, wakes: &Arc<CountingWake>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::clone(wakes));
        future.poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_self_wake_is_polled_again_in_place_without_waking_the_task() {
        let polls = Arc::new(AtomicUsize::new(0));
        let wakes = Arc::new(CountingWake(AtomicUsize::new(0)));
        let mut future = std::pin::pin!(repoll_on_self_wake(WakesItself {
            times: 2,
            polls: Arc::clone(&polls),
        }));
        assert!(poll_once(future.as_mut(), &wakes).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 3);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_is_handed_back_to_the_scheduler() {
        let polls = Arc::new(AtomicUsize::new(0));
        let wakes = Arc::new(CountingWake(AtomicUsize::new(0)));
        let mut future = std::pin::pin!(repoll_on_self_wake(WakesItself {
            times: usize::MAX,
            polls: Arc::clone(&polls),
        }));
        assert!(poll_once(future.as_mut(), &wakes).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), MAX_REPOLLS + 1);
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "rescheduled once, as a yield"
        );
    }

    #[tokio::test]
    async fn a_wake_from_elsewhere_reaches_the_task() {
        let (send, receive) = tokio::sync::oneshot::channel::<u8>();
        let (started, has_started) = tokio::sync::oneshot::channel::<()>();
        let waiting = tokio::spawn(repoll_on_self_wake(async move {
            let _ = started.send(());
            receive.await
        }));
        // On this single-threaded runtime the task runs until it waits on `receive` before
        // the test goes on, so the value below arrives as a wake-up from outside its poll.
        let _ = has_started.await;
        let _ = send.send(7);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the waiting task was woken")
            .expect("it did not panic");
        assert_eq!(got.ok(), Some(7));
    }
}
