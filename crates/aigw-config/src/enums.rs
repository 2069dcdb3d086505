//! Kong's string-valued options as Rust enums.
//!
//! Deserialization is written by hand (not `#[serde(rename_all)]`) for the message: a bad
//! value is reported as `unknown value "x", expected one of a, b, c`, listing Kong's
//! spellings, instead of serde's backtick-quoted variant list.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A string that is not one of an option's allowed values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// What was given.
    pub value: String,
    /// Every allowed spelling, in Kong's order.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown value {:?}, expected one of {}",
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownValue {}

macro_rules! kong_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $kong:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value's Kong spelling, in Kong's order.
            pub const NAMES: &'static [&'static str] = &[$($kong),+];

            /// The value as Kong spells it in a decK file.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $kong, )+
                }
            }
        }

        impl Names for $name {
            const NAMES_LIST: &'static [&'static str] = $name::NAMES;
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $( $kong => Ok($name::$variant), )+
                    _ => Err(UnknownValue { value: s.to_owned(), expected: Self::NAMES }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(KongStrVisitor::<$name>::new())
            }
        }
    };
}

/// Reads a string and parses it with `T::from_str`, reporting [`UnknownValue`].
struct KongStrVisitor<T>(std::marker::PhantomData<T>);

impl<T> KongStrVisitor<T> {
    fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// The allowed spellings, for the visitor's "expected ..." text.
trait Names {
    const NAMES_LIST: &'static [&'static str];
}

impl<'de, T> Visitor<'de> for KongStrVisitor<T>
where
    T: FromStr<Err = UnknownValue> + Names,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {}", T::NAMES_LIST.join(", "))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

kong_enum! {
    /// How a route's balancer picks a target (`config.balancer.algorithm`).
    #[derive(Default)]
    pub enum Algorithm {
        /// Weighted round robin; Kong's default.
        #[default]
        RoundRobin => "round-robin",
        /// The target with the lowest observed latency (see [`LatencyStrategy`]).
        LowestLatency => "lowest-latency",
        /// The target with the lowest token usage (see [`TokensCountStrategy`]).
        LowestUsage => "lowest-usage",
        /// The target with the fewest requests in flight.
        LeastConnections => "least-connections",
        /// A hash of the `hash_on_header` header picks the target.
        ConsistentHashing => "consistent-hashing",
        /// Highest weight first; lower weights only on failover.
        Priority => "priority",
        /// The target whose description is semantically closest to the prompt.
        Semantic => "semantic",
    }
}

kong_enum! {
    /// What `lowest-usage` counts (`config.balancer.tokens_count_strategy`).
    #[derive(Default)]
    pub enum TokensCountStrategy {
        /// Prompt plus completion tokens; Kong's default.
        #[default]
        TotalTokens => "total-tokens",
        /// Prompt tokens only.
        PromptTokens => "prompt-tokens",
        /// Completion tokens only.
        CompletionTokens => "completion-tokens",
        /// Tokens weighted by the model's `input_cost`/`output_cost`.
        Cost => "cost",
    }
}

kong_enum! {
    /// What `lowest-latency` measures (`config.balancer.latency_strategy`).
    #[derive(Default)]
    pub enum LatencyStrategy {
        /// Time per output token; Kong's default.
        #[default]
        Tpot => "tpot",
        /// End-to-end response time.
        E2e => "e2e",
    }
}

kong_enum! {
    /// When an attempt counts as failed and the next target is tried
    /// (`config.balancer.failover_criteria`), after nginx's `proxy_next_upstream`.
    pub enum FailoverCriterion {
        /// The connection failed or broke; on by default.
        Error => "error",
        /// The upstream timed out; on by default.
        Timeout => "timeout",
        /// The upstream's answer was malformed.
        InvalidHeader => "invalid_header",
        /// HTTP 403 from the upstream.
        Http403 => "http_403",
        /// HTTP 404 from the upstream.
        Http404 => "http_404",
        /// HTTP 429 (throttled) from the upstream.
        Http429 => "http_429",
        /// HTTP 500 from the upstream.
        Http500 => "http_500",
        /// HTTP 502 from the upstream.
        Http502 => "http_502",
        /// HTTP 503 from the upstream.
        Http503 => "http_503",
        /// HTTP 504 from the upstream.
        Http504 => "http_504",
        /// Also fail over requests that are not idempotent.
        NonIdempotent => "non_idempotent",
    }
}

kong_enum! {
    /// Whether answers may, must not, or must stream (`config.response_streaming`).
    #[derive(Default)]
    pub enum ResponseStreaming {
        /// Stream when the client asks; Kong's default.
        #[default]
        Allow => "allow",
        /// Refuse streaming requests.
        Deny => "deny",
        /// Stream every answer.
        Always => "always",
    }
}

kong_enum! {
    /// The LLM provider of a target (`config.targets[].model.provider`).
    pub enum Provider {
        /// OpenAI.
        OpenAi => "openai",
        /// Azure OpenAI.
        Azure => "azure",
        /// Anthropic.
        Anthropic => "anthropic",
        /// Cohere.
        Cohere => "cohere",
        /// Mistral.
        Mistral => "mistral",
        /// Self-hosted Llama 2.
        Llama2 => "llama2",
        /// Google Gemini.
        Gemini => "gemini",
        /// AWS Bedrock.
        Bedrock => "bedrock",
        /// Hugging Face.
        HuggingFace => "huggingface",
    }
}

impl Provider {
    /// The providers aigw has a driver for, in the order messages list them. The server
    /// registers a driver for exactly these (a test there keeps the two lists in step); any
    /// other provider is refused at load, naming the field.
    pub const SUPPORTED: &'static [Provider] = &[Provider::Bedrock, Provider::OpenAi];

    /// Whether aigw has a driver for this provider.
    pub fn is_supported(self) -> bool {
        Provider::SUPPORTED.contains(&self)
    }
}

kong_enum! {
    /// Where `auth.param_name`/`param_value` go (`config.targets[].auth.param_location`).
    pub enum ParamLocation {
        /// In the query string.
        Query => "query",
        /// In the request body.
        Body => "body",
    }
}

kong_enum! {
    /// How the gateway writes its logs.
    #[derive(Default)]
    pub enum LogFormat {
        /// Human-readable lines; the default.
        #[default]
        Text => "text",
        /// One JSON object per line.
        Json => "json",
    }
}

/// Kong's `route_type` values (`config.targets[].route_type`).
pub const ROUTE_TYPES: &[&str] = &[
    "llm/v1/chat",
    "llm/v1/completions",
    "llm/v1/embeddings",
    "llm/v1/responses",
    "llm/v1/assistants",
    "llm/v1/files",
    "llm/v1/batches",
    "llm/v1/audio/file",
    "llm/v1/audio/speech",
    "llm/v1/audio/transcriptions",
    "llm/v1/audio/translations",
    "llm/v1/realtime",
    "image/v1/images/generations",
    "image/v1/images/edits",
    "realtime/v1/realtime",
    "video/v1/videos/generations",
    "preserve",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_spellings_round_trip() {
        for name in Algorithm::NAMES {
            let parsed: Algorithm = name.parse().expect("known name");
            assert_eq!(parsed.as_str(), *name);
        }
        assert_eq!(FailoverCriterion::Http429.as_str(), "http_429");
        assert_eq!(Provider::HuggingFace.to_string(), "huggingface");
    }

    #[test]
    fn unknown_value_lists_the_choices() {
        let err = "round-robbin".parse::<Algorithm>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown value \"round-robbin\", expected one of round-robin, lowest-latency, \
             lowest-usage, least-connections, consistent-hashing, priority, semantic"
        );
    }
}
