//! The validated, typed configuration the rest of the gateway consumes.
//!
//! Built once at start by [`crate::load_deck`]; every Kong default is already applied, so
//! consumers never see an `Option` standing for "Kong's default".

use std::fmt;
use std::time::Duration;

use crate::consumers::{AclConfig, ConsumerConfig};
use crate::enums::{
    Algorithm, FailoverCriterion, LatencyStrategy, ParamLocation, Provider, ResponseStreaming,
    TokensCountStrategy,
};
use crate::key_auth::KeyAuthConfig;
use crate::plugins::{
    BasicAuthConfig, IpRestrictionConfig, JwtConfig, RequestSizeLimitConfig,
    RequestTerminationConfig,
};
use crate::prompt::{PromptDecoratorConfig, PromptGuardConfig};
use crate::rate_limit::AiRateLimitConfig;
use crate::routing::RouteMatch;
use crate::semantic::SemanticConfig;

/// Everything aigw serves, from one decK file.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Every route with an enabled ai-proxy-advanced plugin, in file order.
    pub routes: Vec<RouteConfig>,
    /// Every consumer in the file, with its ACL and consumer groups.
    pub consumers: Vec<ConsumerConfig>,
    /// What was accepted but will not be acted on (other plugins, unknown fields,
    /// disabled plugins, routes without an AI plugin), one line each, led by the file,
    /// line and field path, for `aigw check` to print.
    pub warnings: Vec<String>,
}

/// One Kong route served by aigw.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// The route's `name`, else `<service name>.routes[i]` (or `routes[i]` for a
    /// top-level route), so that every route has a stable label for logs and metrics.
    pub name: String,
    /// The name of the route's service, when it has one.
    pub service: Option<String>,
    /// The request paths the route answers, each starting with `/`.
    pub paths: Vec<String>,
    /// What requests the route takes, by Kong's router: paths, methods, hosts, headers.
    pub matching: RouteMatch,
    /// The ai-proxy-advanced plugin that applies to the route (its own, else its
    /// service's, else a global one).
    pub ai: AiProxyConfig,
    /// The key-auth plugin that applies to the route, if any: then only callers with a
    /// consumer's key get through.
    pub key_auth: Option<KeyAuthConfig>,
    /// The basic-auth plugin that applies to the route, if any: then only callers with a
    /// consumer's username and password get through.
    pub basic_auth: Option<BasicAuthConfig>,
    /// The jwt plugin that applies to the route, if any: then only callers with a token
    /// signed with a consumer's secret get through.
    pub jwt: Option<JwtConfig>,
    /// The ip-restriction plugin that applies to the route, if any.
    pub ip_restriction: Option<IpRestrictionConfig>,
    /// The request-size-limiting plugin that applies to the route, if any.
    pub request_size_limiting: Option<RequestSizeLimitConfig>,
    /// The request-termination plugin that applies to the route, if any: the route then
    /// answers (authenticated) requests itself.
    pub request_termination: Option<RequestTerminationConfig>,
    /// The acl plugin that applies to the route, if any: then only consumers its groups
    /// allow get through, once an auth plugin has named them.
    pub acl: Option<AclConfig>,
    /// The ai-rate-limiting-advanced plugin that applies to the route, if any.
    pub ai_rate_limit: Option<AiRateLimitConfig>,
    /// The ai-prompt-guard plugin that applies to the route, if any.
    pub prompt_guard: Option<PromptGuardConfig>,
    /// The ai-prompt-decorator plugin that applies to the route, if any.
    pub prompt_decorator: Option<PromptDecoratorConfig>,
    /// aigw's chat options, from the route's `aigw-*` tags.
    pub chat: crate::ChatOptions,
}

/// An ai-proxy-advanced plugin's config, with Kong's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AiProxyConfig {
    /// The plugin's `instance_name`.
    pub instance_name: Option<String>,
    /// How targets are picked and failed over.
    pub balancer: BalancerConfig,
    /// `embeddings` and `vectordb`, when the algorithm is `semantic`.
    pub semantic: Option<SemanticConfig>,
    /// The models requests are balanced over; never empty.
    pub targets: Vec<TargetConfig>,
    /// `response_streaming` (default `allow`).
    pub response_streaming: ResponseStreaming,
    /// `model_name_header` (default `true`): add `X-Kong-LLM-Model` to answers.
    pub model_name_header: bool,
    /// `max_request_body_size` in bytes (Kong's default 8192).
    pub max_request_body_size: usize,
    /// `llm_format` (default `openai`): the wire format clients speak to the route.
    pub llm_format: LlmFormat,
}

/// Kong's `llm_format`: which API a route's clients speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LlmFormat {
    /// OpenAI's chat completions (`POST <path>`, `/v1/chat/completions`).
    #[default]
    OpenAi,
    /// Anthropic's Messages API (`POST <path>/v1/messages`), what Claude Code speaks.
    Anthropic,
    /// Bedrock Runtime's native API (`POST <path>/model/{modelId}/converse`), what the AWS
    /// SDKs speak; such a route has Bedrock targets only.
    Bedrock,
}

/// `config.balancer`, with Kong's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerConfig {
    /// `algorithm` (default `round-robin`).
    pub algorithm: Algorithm,
    /// `tokens_count_strategy` (default `total-tokens`).
    pub tokens_count_strategy: TokensCountStrategy,
    /// `latency_strategy` (default `tpot`).
    pub latency_strategy: LatencyStrategy,
    /// `hash_on_header` (default `X-Kong-LLM-Request-ID`), for `consistent-hashing`.
    pub hash_on_header: String,
    /// `slots` (default 10000), the consistent-hashing ring size.
    pub slots: u32,
    /// `retries` (default 5): further attempts after the first.
    pub retries: u32,
    /// `connect_timeout` (default 60 s).
    pub connect_timeout: Duration,
    /// `write_timeout` (default 60 s).
    pub write_timeout: Duration,
    /// `read_timeout` (default 60 s).
    pub read_timeout: Duration,
    /// `failover_criteria` (default `[error, timeout]`).
    pub failover_criteria: Vec<FailoverCriterion>,
    /// `max_fails` (default 0, passive health checks off): failures within
    /// `fail_timeout` that take a target out of rotation.
    pub max_fails: u32,
    /// `fail_timeout` (default 10 s).
    pub fail_timeout: Duration,
}

impl Default for BalancerConfig {
    /// Kong's defaults.
    fn default() -> Self {
        Self {
            algorithm: Algorithm::RoundRobin,
            tokens_count_strategy: TokensCountStrategy::TotalTokens,
            latency_strategy: LatencyStrategy::Tpot,
            hash_on_header: "X-Kong-LLM-Request-ID".to_owned(),
            slots: 10_000,
            retries: 5,
            connect_timeout: Duration::from_millis(60_000),
            write_timeout: Duration::from_millis(60_000),
            read_timeout: Duration::from_millis(60_000),
            failover_criteria: vec![FailoverCriterion::Error, FailoverCriterion::Timeout],
            max_fails: 0,
            fail_timeout: Duration::from_millis(10_000),
        }
    }
}

/// One `config.targets[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// Which model, at which provider.
    pub model: ModelConfig,
    /// `route_type`, one of Kong's values such as `llm/v1/chat` or `preserve`.
    pub route_type: String,
    /// How to authenticate to the provider.
    pub auth: TargetAuth,
    /// `weight` (1–65535, default 100).
    pub weight: u32,
    /// What to log about this target's traffic.
    pub logging: TargetLogging,
    /// `description`, used by the `semantic` algorithm.
    pub description: Option<String>,
}

impl TargetConfig {
    /// `provider/model`: how logs, errors, `/status/targets` and metrics name the target.
    pub fn label(&self) -> String {
        format!("{}/{}", self.model.provider.as_str(), self.model.name)
    }
}

/// `targets[].model`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// `provider`.
    pub provider: Provider,
    /// `name`, the provider's model id (for Bedrock, a model or inference-profile id).
    pub name: String,
    /// `options`.
    pub options: ModelOptions,
}

/// `targets[].model.options`; unset means "let the provider decide".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelOptions {
    /// `max_tokens`.
    pub max_tokens: Option<u32>,
    /// `temperature` (0–5).
    pub temperature: Option<f32>,
    /// `top_p` (0–1).
    pub top_p: Option<f32>,
    /// `top_k` (0–500).
    pub top_k: Option<u32>,
    /// `input_cost`, per million prompt tokens, for the `cost` token strategy.
    pub input_cost: Option<f64>,
    /// `output_cost`, per million completion tokens.
    pub output_cost: Option<f64>,
    /// `upstream_url`: call this endpoint instead of the provider's own.
    pub upstream_url: Option<String>,
    /// `bedrock`.
    pub bedrock: BedrockOptions,
}

/// `targets[].model.options.bedrock`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BedrockOptions {
    /// `aws_region`; unset means the AWS default chain.
    pub aws_region: Option<String>,
    /// `aws_assume_role_arn`.
    pub aws_assume_role_arn: Option<String>,
    /// `aws_role_session_name`.
    pub aws_role_session_name: Option<String>,
    /// `aws_sts_endpoint_url`.
    pub aws_sts_endpoint_url: Option<String>,
    /// `embeddings_normalize` (default false, as Kong's): embeddings answered as vectors of
    /// length 1 (Titan asked for them, Cohere's scaled by aigw).
    pub embeddings_normalize: bool,
}

/// `targets[].auth`. Its `Debug` hides every credential.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TargetAuth {
    /// `allow_override` (default false): a client's own credentials win.
    pub allow_override: bool,
    /// `aws_access_key_id` (secret).
    pub aws_access_key_id: Option<String>,
    /// `aws_secret_access_key` (secret).
    pub aws_secret_access_key: Option<String>,
    /// `header_name`.
    pub header_name: Option<String>,
    /// `header_value` (secret).
    pub header_value: Option<String>,
    /// `param_name`.
    pub param_name: Option<String>,
    /// `param_value` (secret).
    pub param_value: Option<String>,
    /// `param_location`.
    pub param_location: Option<ParamLocation>,
    /// Where each secret that is set came from, by field name; a secret not listed was
    /// written in the file.
    pub sources: Vec<(&'static str, SecretSource)>,
}

impl TargetAuth {
    /// Where the secret `field` (e.g. `aws_access_key_id`) came from.
    pub fn source_of(&self, field: &str) -> SecretSource {
        self.sources
            .iter()
            .find(|(name, _)| *name == field)
            .map_or(SecretSource::Literal, |(_, source)| source.clone())
    }
}

/// Where a secret in the decK file came from, for operators: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the file.
    Literal,
    /// Kong's env vault, `{vault://env/name}`: the variable it read.
    Vault(String),
    /// decK's `${{ env "DECK_NAME" }}`: the variables it read.
    DeckEnv(Vec<String>),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Literal => f.write_str("literal in the decK file"),
            SecretSource::Vault(variable) => write!(f, "env {variable} (vault reference)"),
            SecretSource::DeckEnv(variables) => {
                write!(f, "env {} (decK reference)", variables.join(", "))
            }
        }
    }
}

/// Shows whether a secret is set, never its value.
struct Redacted<'a>(&'a Option<String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(<redacted>)"),
            None => f.write_str("None"),
        }
    }
}

impl fmt::Debug for TargetAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetAuth")
            .field("allow_override", &self.allow_override)
            .field("aws_access_key_id", &Redacted(&self.aws_access_key_id))
            .field(
                "aws_secret_access_key",
                &Redacted(&self.aws_secret_access_key),
            )
            .field("header_name", &self.header_name)
            .field("header_value", &Redacted(&self.header_value))
            .field("param_name", &self.param_name)
            .field("param_value", &Redacted(&self.param_value))
            .field("param_location", &self.param_location)
            .field("sources", &self.sources)
            .finish()
    }
}

/// `targets[].logging`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetLogging {
    /// `log_statistics` (default false): usage and token metrics.
    pub log_statistics: bool,
    /// `log_payloads` (default false): request and answer bodies.
    pub log_payloads: bool,
}
