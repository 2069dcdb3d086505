//! What one request learned on its way down the stack, for its access-log line, its server
//! span and its metrics.
//!
//! The server layer opens a [`RequestRecord`] in a task-local scope around the handler; the
//! handler and the attempt layer, polled inside that scope, fill it in. A task-local keeps
//! the front ends and the core types unaware of telemetry.

use std::sync::{Arc, Mutex, PoisonError};

tokio::task_local! {
    static CURRENT: Arc<RequestRecord>;
}

/// What is known of one request so far.
#[derive(Debug, Default)]
pub(crate) struct RequestRecord {
    inner: Mutex<Recorded>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Recorded {
    pub(crate) route: Option<Arc<str>>,
    /// The route path (as the config writes it) an HTTP request matched, for `http.route`.
    pub(crate) http_route: Option<Arc<str>>,
    /// The target of the last attempt (the serving one when the request succeeded).
    pub(crate) target: Option<Arc<str>>,
    pub(crate) model: Option<Arc<str>>,
    /// The model the client asked for (OpenAI's `model`, Bedrock's `modelId` in the path,
    /// Anthropic's `model`), which the balancer may serve with another.
    pub(crate) requested_model: Option<Arc<str>>,
    pub(crate) input_tokens: Option<u32>,
    pub(crate) output_tokens: Option<u32>,
    pub(crate) attempts: u32,
    pub(crate) stream: bool,
    /// The error code of the last attempt, when it failed.
    pub(crate) error: Option<&'static str>,
}

impl RequestRecord {
    pub(crate) fn update(&self, change: impl FnOnce(&mut Recorded)) {
        // A panic elsewhere while holding the lock leaves plain data behind; keep using it.
        change(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub(crate) fn snapshot(&self) -> Recorded {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Runs `future` with `record` as the current request's record.
pub(crate) fn scope<F: std::future::Future>(
    record: Arc<RequestRecord>,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<Arc<RequestRecord>, F> {
    CURRENT.scope(record, future)
}

/// Applies `change` to the current request's record, if the caller runs inside one.
pub(crate) fn update(change: impl FnOnce(&mut Recorded)) {
    let _ = CURRENT.try_with(|record| record.update(change));
}

/// Names the route path (as the config writes it: a prefix, or `~` and a regex) the
/// current HTTP request matched, so the server span's `http.route` and name stay as few
/// as the config's paths, whatever the request's own path.
pub fn record_http_route(path: &str) {
    update(|r| r.http_route = Some(Arc::from(path)));
}

/// The longest requested model name kept; a client's string goes into spans, logs and a
/// metric label, so it is bounded.
const REQUESTED_MODEL_MAX: usize = 128;

/// Names the model the current request's client asked for, whatever target serves it.
pub fn record_requested_model(name: &str) {
    let mut end = name.len().min(REQUESTED_MODEL_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let name = &name[..end];
    update(|r| r.requested_model = Some(Arc::from(name)));
}

/// Names the route serving the current request, for its log line, span and metrics. Front
/// ends call it once the route is known, so requests refused before reaching a target still
/// carry their route.
pub fn record_route(name: &str) {
    update(|r| {
        if r.route.as_deref() != Some(name) {
            r.route = Some(Arc::from(name));
        }
    });
}
