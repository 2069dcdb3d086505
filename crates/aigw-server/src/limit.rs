//! Per-route concurrency limit with load shedding: past the limit a request is refused at
//! once with 503 instead of queueing, so a burst cannot pile up memory and sockets in front
//! of a slow model, and one busy route never makes another wait.

use std::time::Duration;

use aigw_core::{ChatReply, ChatRequest, Error, ErrorKind};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

/// A route's stack, as the front ends call it.
pub(crate) type RouteService = BoxCloneSyncService<ChatRequest, ChatReply, Error>;

/// Requests one route works on at once when the settings say nothing.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1024;

/// Limits applied to every route's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimits {
    /// Requests one route works on at once, until each answer's head (a stream's body is
    /// not counted); at least 1.
    pub max_concurrent_requests: usize,
}

impl Default for RouteLimits {
    fn default() -> Self {
        RouteLimits {
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }
}

/// `service` behind a shared concurrency limit that sheds what is over it.
pub(crate) fn shed_over_limit(service: RouteService, limits: RouteLimits) -> RouteService {
    let max = limits.max_concurrent_requests.max(1);
    let stack = ServiceBuilder::new()
        .map_err(
            move |error: tower::BoxError| match error.downcast::<Error>() {
                Ok(error) => *error,
                Err(_) => overloaded(max),
            },
        )
        // LoadShed turns "not ready" into an immediate error; ConcurrencyLimit is not
        // ready while `max` requests hold its permits.
        .load_shed()
        .concurrency_limit(max)
        .service(service);
    BoxCloneSyncService::new(stack)
}

fn overloaded(max: usize) -> Error {
    Error::new(
        ErrorKind::Overloaded,
        format!(
            "this route is already serving its limit of {max} concurrent requests; retry shortly"
        ),
    )
    .with_retry_after(Duration::from_secs(1))
}
