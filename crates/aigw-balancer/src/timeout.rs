use std::future::Future;
use std::time::Duration;

use aigw_core::{Around, AroundLayer, ChatReply, DriverFuture, Error, ErrorKind};

use crate::Attempt;

/// Bounds each attempt (until the answer, or a stream's first piece) by Kong's
/// `read_timeout`, so a hung target becomes a timeout the balancer can fail over from.
#[derive(Debug, Clone, Copy)]
pub struct AttemptTimeout {
    limit: Duration,
}

/// [`AttemptTimeout`] as a tower layer.
pub type AttemptTimeoutLayer = AroundLayer<AttemptTimeout>;

impl AttemptTimeout {
    /// Each attempt gets at most `limit`.
    pub fn layer(limit: Duration) -> AttemptTimeoutLayer {
        AroundLayer::new(AttemptTimeout { limit })
    }
}

impl Around<Attempt> for AttemptTimeout {
    fn around<F>(&self, attempt: Attempt, call: impl FnOnce(Attempt) -> F) -> DriverFuture
    where
        F: Future<Output = Result<ChatReply, Error>> + Send + 'static,
    {
        let limit = self.limit;
        let answer = call(attempt);
        Box::pin(async move {
            tokio::time::timeout(limit, answer)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::UpstreamTimeout,
                        format!("no answer within {} ms", limit.as_millis()),
                    ))
                })
        })
    }
}
