//! The bounded log of requests the emulator has seen, for tests to inspect.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many requests are kept; older ones are dropped so a long benchmark stays bounded.
pub const RECORD_CAPACITY: usize = 10_000;

/// Which Bedrock Runtime operation a request called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// `POST /model/{modelId}/converse`.
    #[serde(rename = "converse")]
    Converse,
    /// `POST /model/{modelId}/converse-stream`.
    #[serde(rename = "converse-stream")]
    ConverseStream,
    /// `POST /v1/chat/completions`, OpenAI's API, unary or streamed (see the body's
    /// `stream`).
    #[serde(rename = "chat-completions")]
    ChatCompletions,
}

impl Operation {
    /// The operation's name: its path suffix, `converse` or `converse-stream`, or
    /// `chat-completions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Converse => "converse",
            Self::ConverseStream => "converse-stream",
            Self::ChatCompletions => "chat-completions",
        }
    }
}

/// One request as it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenRequest {
    /// Arrival order, starting at 1; also the tail of the `x-amzn-RequestId` answered.
    pub id: u64,
    /// HTTP method.
    pub method: String,
    /// The path exactly as sent, percent-encoding kept (`/model/a%3A0/converse`).
    pub raw_path: String,
    /// The model id, percent-decoded (`a:0`).
    pub model_id: String,
    /// The operation called.
    pub operation: Operation,
    /// Region of the SigV4 credential scope, if the request was signed.
    pub region: Option<String>,
    /// Service of the SigV4 credential scope (`bedrock`), if the request was signed.
    pub service: Option<String>,
    /// The decoded JSON body; `null` if it was not JSON.
    pub body: Value,
    /// The client went away before the answer was complete (mid-stream, or while waiting).
    pub client_went_away: bool,
    /// The query string, if any, as sent.
    #[serde(default)]
    pub query: Option<String>,
    /// The request headers (names lower-cased; values that are not text left out), so
    /// tests can see what credentials a client sent.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The request log: one short lock per request, only when recording is on.
#[derive(Debug)]
pub(crate) struct Recorder {
    enabled: AtomicBool,
    log: Mutex<VecDeque<SeenRequest>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            enabled: AtomicBool::new(true),
            log: Mutex::new(VecDeque::new()),
        }
    }
}

impl Recorder {
    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Records the request `make` builds; it is not even built when recording is off.
    pub(crate) fn record(&self, make: impl FnOnce() -> SeenRequest) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let seen = make();
        let mut log = self.lock();
        if log.len() >= RECORD_CAPACITY {
            log.pop_front();
        }
        log.push_back(seen);
    }

    /// Marks request `id` as abandoned by its client; a no-op if it is no longer kept.
    pub(crate) fn mark_went_away(&self, id: u64) {
        // The request is almost always among the newest, so search from the back.
        if let Some(seen) = self.lock().iter_mut().rev().find(|r| r.id == id) {
            seen.client_went_away = true;
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<SeenRequest> {
        self.lock().iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    // Every critical section is a single push, pop or flag write, so a poisoned log is intact.
    fn lock(&self) -> MutexGuard<'_, VecDeque<SeenRequest>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: u64) -> SeenRequest {
        SeenRequest {
            id,
            method: "POST".into(),
            raw_path: "/model/m/converse".into(),
            model_id: "m".into(),
            operation: Operation::Converse,
            region: None,
            service: None,
            body: Value::Null,
            client_went_away: false,
            query: None,
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn keeps_only_the_newest() {
        let r = Recorder::default();
        for id in 1..=(RECORD_CAPACITY as u64 + 5) {
            r.record(|| seen(id));
        }
        let all = r.snapshot();
        assert_eq!(all.len(), RECORD_CAPACITY);
        assert_eq!(all[0].id, 6);
        r.mark_went_away(RECORD_CAPACITY as u64 + 5);
        assert!(r.snapshot().last().is_some_and(|s| s.client_went_away));
    }

    #[test]
    fn disabled_recorder_records_nothing() {
        let r = Recorder::default();
        r.set_enabled(false);
        r.record(|| seen(1));
        assert!(r.snapshot().is_empty());
    }
}
