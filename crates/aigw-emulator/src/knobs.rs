//! Behaviour knobs: latency, answer length and injected faults, per model id or for all.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long an answer is when nobody says otherwise.
pub const DEFAULT_ANSWER_WORDS: usize = 24;

/// How one model (or, as the default, every model) behaves.
///
/// Over HTTP the durations are whole milliseconds (`latency_ms`, `token_delay_ms`); fields left
/// out take their default, so `{"latency_ms": 50}` is a complete knob set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelKnobs {
    /// Delay before the answer (unary) or before the response head and first frame (stream).
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Delay between two text deltas of a stream (`contentBlockDelta` frames, or the
    /// fake OpenAI-compatible upstream's content events).
    #[serde(rename = "token_delay_ms", with = "millis")]
    pub token_delay: Duration,
    /// Length of the full answer in words (one stream delta per word); at least 1.
    pub answer_words: usize,
    /// The fault to inject, if any.
    pub fault: Option<Fault>,
    /// How many of the next requests for this model get `fault`; `None` means all of them.
    pub fault_count: Option<u32>,
    /// A guardrail intervenes in every request that names one (`guardrailConfig`): the
    /// answer is a refusal with stop reason `guardrail_intervened`.
    pub guardrail_intervenes: bool,
}

impl Default for ModelKnobs {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            token_delay: Duration::ZERO,
            answer_words: DEFAULT_ANSWER_WORDS,
            fault: None,
            fault_count: None,
            guardrail_intervenes: false,
        }
    }
}

impl ModelKnobs {
    /// Default behaviour with `fault` injected into the next `count` requests (`None`: all).
    pub fn with_fault(fault: Fault, count: Option<u32>) -> Self {
        Self {
            fault: Some(fault),
            fault_count: count,
            ..Self::default()
        }
    }

    /// Default behaviour, except that a guardrail intervenes in every request naming one.
    pub fn with_guardrail_intervening() -> Self {
        Self {
            guardrail_intervenes: true,
            ..Self::default()
        }
    }
}

/// A failure the emulator injects instead of (or in the middle of) a normal answer.
///
/// Stream-only faults also affect `converse`, so a fault armed for a model is never silently
/// skipped: `CutStream` resets the connection mid-body, `BadCrc` and `InvalidJson` send a body the
/// SDK cannot decode, and `StreamException` answers with the matching HTTP error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// An AWS-style error answer: `status`, `x-amzn-ErrorType: error_type`, `{"message": ..}`.
    Status {
        /// HTTP status, e.g. 429, 500, 503, 400.
        status: u16,
        /// The AWS error type, e.g. `ThrottlingException`.
        error_type: String,
        /// The error message.
        message: String,
        /// Seconds for a `retry-after` header, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u32>,
    },
    /// Never answer; the request stays open until the client goes away (or the emulator stops).
    Hang,
    /// End the stream abruptly after this many deltas: no `messageStop`/`metadata`, and the
    /// connection is reset rather than the body ended cleanly.
    CutStream {
        /// Deltas sent before the cut (capped at the answer's length).
        after_deltas: usize,
    },
    /// After this many deltas, send a frame whose message CRC is wrong, then end the body.
    BadCrc {
        /// Deltas sent before the corrupt frame (capped at the answer's length).
        after_deltas: usize,
    },
    /// Answer 200 with a body that is not JSON (converse) or not an event stream (stream).
    InvalidJson,
    /// After this many deltas, send an event-stream exception frame and end the body.
    StreamException {
        /// Deltas (text deltas, then tool-input fragments) sent before the exception
        /// (capped at the answer's length).
        after_deltas: usize,
        /// The `:exception-type`, e.g. `throttlingException`, `internalServerException`,
        /// `modelStreamErrorException`, `serviceUnavailableException`, `validationException`.
        exception_type: String,
    },
}

impl Fault {
    /// An error answer with the given status, AWS error type and message.
    pub fn status(status: u16, error_type: &str, message: &str) -> Self {
        Self::Status {
            status,
            error_type: error_type.to_owned(),
            message: message.to_owned(),
            retry_after: None,
        }
    }

    /// 429 `ThrottlingException`, as Bedrock sends when over quota.
    pub fn throttling() -> Self {
        Self::status(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        )
    }

    /// 500 `InternalServerException`.
    pub fn internal_error() -> Self {
        Self::status(
            500,
            "InternalServerException",
            "The server encountered an internal error.",
        )
    }

    /// 503 `ServiceUnavailableException`.
    pub fn service_unavailable() -> Self {
        Self::status(
            503,
            "ServiceUnavailableException",
            "The service is temporarily unavailable.",
        )
    }
}

/// A whole knob set, as `PUT /_emulator/knobs` takes it and `GET /_emulator/knobs` shows it.
///
/// Whatever is present replaces what was there for that key; absent keys keep their knobs.
/// In a `GET`, `fault_count` shows how many faulted requests remain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnobSet {
    /// Knobs for every model without its own entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<ModelKnobs>,
    /// Knobs per (decoded) model id.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub models: HashMap<String, ModelKnobs>,
    /// If set, only these model ids are accepted; others get 404 `ResourceNotFoundException`.
    /// [`Knobs::reset`] goes back to accepting any model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
}

/// The live knobs: a cheap, clonable handle shared with the server.
///
/// Readers on the request path take a read lock for one map lookup; only the fault countdown
/// is written per request, and that is an atomic.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    table: Arc<RwLock<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    default: Arc<Slot>,
    models: HashMap<String, Arc<Slot>>,
    allowed: Option<HashSet<String>>,
}

/// One knob set plus its own fault countdown, shared with requests in flight.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) knobs: ModelKnobs,
    remaining: Option<AtomicU32>,
}

impl Slot {
    fn new(knobs: ModelKnobs) -> Arc<Self> {
        let remaining = knobs.fault_count.map(AtomicU32::new);
        Arc::new(Self { knobs, remaining })
    }

    /// The fault for this request, consuming one from the countdown.
    pub(crate) fn take_fault(&self) -> Option<&Fault> {
        let fault = self.knobs.fault.as_ref()?;
        match &self.remaining {
            None => Some(fault),
            Some(left) => left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .ok()
                .map(|_| fault),
        }
    }

    fn snapshot(&self) -> ModelKnobs {
        let mut knobs = self.knobs.clone();
        if let Some(left) = &self.remaining {
            knobs.fault_count = Some(left.load(Ordering::Acquire));
        }
        knobs
    }
}

/// What the request path learns from the knobs.
pub(crate) enum Lookup {
    Allowed(Arc<Slot>),
    UnknownModel,
}

impl Knobs {
    /// Sets the knobs for every model that has none of its own.
    pub fn set_default(&self, knobs: ModelKnobs) {
        self.write().default = Slot::new(knobs);
    }

    /// Sets the knobs of one model (its decoded id, e.g. `us.amazon.nova-micro-v1:0`),
    /// replacing the default for it entirely.
    pub fn set_model(&self, model_id: &str, knobs: ModelKnobs) {
        self.write()
            .models
            .insert(model_id.to_owned(), Slot::new(knobs));
    }

    /// Drops a model's own knobs so it follows the default again.
    pub fn clear_model(&self, model_id: &str) {
        self.write().models.remove(model_id);
    }

    /// Restricts the accepted model ids (`None`: accept any, the default).
    pub fn set_allowed_models(&self, models: Option<Vec<String>>) {
        self.write().allowed = models.map(|m| m.into_iter().collect());
    }

    /// Back to defaults: no per-model knobs, no faults, any model accepted.
    pub fn reset(&self) {
        *self.write() = Table::default();
    }

    /// Applies a [`KnobSet`]: each present part replaces what it names.
    pub fn apply(&self, set: KnobSet) {
        let mut table = self.write();
        if let Some(default) = set.default {
            table.default = Slot::new(default);
        }
        for (model, knobs) in set.models {
            table.models.insert(model, Slot::new(knobs));
        }
        if let Some(allowed) = set.allowed_models {
            table.allowed = Some(allowed.into_iter().collect());
        }
    }

    /// The current knobs, with remaining fault counts.
    pub fn snapshot(&self) -> KnobSet {
        let table = self.read();
        KnobSet {
            default: Some(table.default.snapshot()),
            models: table
                .models
                .iter()
                .map(|(model, slot)| (model.clone(), slot.snapshot()))
                .collect(),
            allowed_models: table.allowed.as_ref().map(|a| a.iter().cloned().collect()),
        }
    }

    /// The knobs in force for `model_id` (its own, else the default).
    pub fn for_model(&self, model_id: &str) -> ModelKnobs {
        match self.lookup(model_id) {
            Lookup::Allowed(slot) => slot.snapshot(),
            Lookup::UnknownModel => self.read().default.snapshot(),
        }
    }

    pub(crate) fn lookup(&self, model_id: &str) -> Lookup {
        let table = self.read();
        if let Some(allowed) = &table.allowed {
            if !allowed.contains(model_id) {
                return Lookup::UnknownModel;
            }
        }
        let slot = table.models.get(model_id).unwrap_or(&table.default);
        Lookup::Allowed(Arc::clone(slot))
    }

    // A panic while holding the lock cannot leave the table half-written (every write is a
    // single assignment or insert), so a poisoned lock is still safe to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `Duration` as whole milliseconds, so the HTTP API reads `"latency_ms": 50`.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_count_runs_down_then_stops() {
        let knobs = Knobs::default();
        knobs.set_model("m", ModelKnobs::with_fault(Fault::throttling(), Some(2)));
        let take = || match knobs.lookup("m") {
            Lookup::Allowed(slot) => slot.take_fault().is_some(),
            Lookup::UnknownModel => panic!("model should be allowed"),
        };
        assert!(take());
        assert!(take());
        assert!(!take());
        assert_eq!(knobs.for_model("m").fault_count, Some(0));
    }

    #[test]
    fn model_knobs_replace_default_and_reset_clears() {
        let knobs = Knobs::default();
        knobs.set_default(ModelKnobs {
            answer_words: 5,
            ..ModelKnobs::default()
        });
        knobs.set_model(
            "m",
            ModelKnobs {
                answer_words: 7,
                ..ModelKnobs::default()
            },
        );
        assert_eq!(knobs.for_model("m").answer_words, 7);
        assert_eq!(knobs.for_model("other").answer_words, 5);
        knobs.reset();
        assert_eq!(knobs.for_model("m").answer_words, DEFAULT_ANSWER_WORDS);
    }

    #[test]
    fn allow_list_rejects_unknown_models() {
        let knobs = Knobs::default();
        knobs.set_allowed_models(Some(vec!["a".to_owned()]));
        assert!(matches!(knobs.lookup("a"), Lookup::Allowed(_)));
        assert!(matches!(knobs.lookup("b"), Lookup::UnknownModel));
    }

    #[test]
    fn knob_json_uses_millis_and_tagged_faults() {
        let set: KnobSet = serde_json::from_str(
            r#"{"default":{"latency_ms":50},
                "models":{"m":{"token_delay_ms":3,"fault":{"kind":"cut_stream","after_deltas":2},"fault_count":1}}}"#,
        )
        .expect("valid knob json");
        let default = set.default.expect("default present");
        assert_eq!(default.latency, Duration::from_millis(50));
        assert_eq!(default.answer_words, DEFAULT_ANSWER_WORDS);
        let m = &set.models["m"];
        assert_eq!(m.token_delay, Duration::from_millis(3));
        assert_eq!(m.fault, Some(Fault::CutStream { after_deltas: 2 }));
        assert!(serde_json::from_str::<KnobSet>(r#"{"defualt":{}}"#).is_err());
    }
}
