//! aigw's configuration: the Kong decK file that says what to serve, and the gateway
//! settings that say how to run.
//!
//! A decK file written for Kong's `ai-proxy-advanced` plugin loads unchanged:
//! [`load_deck`] reads the YAML once into figment's value tree (resolving vault and decK
//! environment references there), deserializes plain serde types that mirror the file, then
//! validates those once into the runtime types ([`GatewayConfig`] and below) with every
//! Kong default applied. Kong fields aigw has no use for are accepted and skipped;
//! observe-only plugins, plugins on routes aigw does not serve, disabled plugins, and
//! unknown ai-proxy-advanced fields come back as
//! [`GatewayConfig::warnings`]. A bad file fails with a [`ConfigError`] that names the
//! file, line, column and Kong field path:
//!
//! ```text
//! config/x.yaml:17:22: services[0].routes[0].plugins[0].config.balancer.algorithm: unknown value "round-robbin", expected one of round-robin, lowest-latency, lowest-usage, least-connections, consistent-hashing, priority, semantic
//! ```
//!
//! Plugin attachment follows Kong: a route's own ai-proxy-advanced plugin wins over its
//! service's, which wins over a global one (top-level `plugins:` may target a route or
//! service by name or id). `_format_version` must be `"3.0"` or `"1.1"`. Secrets written
//! as Kong env-vault references, `{vault://env/NAME}`, are read from the environment, and
//! so are decK's `${{ env "DECK_NAME" }}` references, anywhere in a string; a reference to
//! an unset variable is a load error that names the variable.
//!
//! Kong's `key-auth` plugin, attached the same way, protects a route with the keys of the
//! file's `consumers[].keyauth_credentials[]` ([`RouteConfig::key_auth`]); `basic-auth`, `jwt`,
//! `ip-restriction`, `request-size-limiting`, `acl` (over the consumers' groups) and `request-termination` attach the same way
//! too. A gateway must fail closed: any other plugin that applies to a served route (on
//! it, its service, or globally) is refused with its file, line and name, except the
//! [`OBSERVE_ONLY_PLUGINS`], which cannot let a request through and load with a warning.
//!
//! [`Settings`] come from defaults, `aigw.toml`, `AIGW_*` variables and the command line.

#![forbid(unsafe_code)]

mod chat_tags;
mod consumers;
mod enums;
mod env;
mod error;
mod key_auth;
mod locate;
mod model;
mod path;
mod plugins;
mod prompt;
mod rate_limit;
mod raw;
mod routing;
mod schema;
mod semantic;
mod settings;
mod validate;

use std::path::Path;

pub use chat_tags::{ChatOptions, ImageFetch};
pub use consumers::{AclConfig, ConsumerConfig, ConsumerGroupRef};
pub use enums::{
    Algorithm, FailoverCriterion, LatencyStrategy, LogFormat, ParamLocation, Provider, ROUTE_TYPES,
    ResponseStreaming, TokensCountStrategy, UnknownValue,
};
pub use error::{ConfigError, Location};
pub use key_auth::{AwsCredential, Credential, KeyAuthConfig};
pub use model::{
    AiProxyConfig, BalancerConfig, BedrockOptions, GatewayConfig, LlmFormat, ModelConfig,
    ModelOptions, RouteConfig, SecretSource, TargetAuth, TargetConfig, TargetLogging,
};
pub use plugins::{
    BasicAuthConfig, BasicCredential, ENFORCED_PLUGINS, IpNet, IpRestrictionConfig, JWT_ALGORITHMS,
    JwtConfig, JwtCredential, OBSERVE_ONLY_PLUGINS, RequestSizeLimitConfig,
    RequestTerminationConfig,
};
pub use prompt::{BytePattern, DecoratorPrompt, PromptDecoratorConfig, PromptGuardConfig};
pub use rate_limit::{
    AiRateLimitConfig, Identifier, MatchKind, PolicyMatch, RateLimitPolicy, RedisConfig, Strategy,
    TokenCount, WindowLimit, WindowType,
};
pub use routing::{
    HeaderRule, HeaderValueMatch, HostKind, HostPattern, PathHandling, PathPattern, Pattern,
    RouteMatch,
};
pub use semantic::{CATCHALL, DistanceMetric, SemanticConfig};
pub use settings::{
    ENV_KEYS, SETTINGS_ENV, SETTINGS_FILE, Settings, SettingsOverrides, StatusListen,
};

/// The largest decK file aigw reads, in bytes (8 MiB). Parsing holds the file several
/// times over (YAML events, figment values, the typed mirror); a bound keeps a runaway
/// file, or a wrong path to a huge one, from taking the process down at start or reload.
pub const MAX_DECK_BYTES: u64 = 8 << 20;

/// The most routes one file may have aigw serve (1,000). Each served route holds its own
/// balancer stack, telemetry and metric series (about 50 KB), so this bounds the table to
/// some 50 MB and `/metrics` to a size a scraper takes in one go.
pub const MAX_ROUTES: usize = 1_000;

/// Loads and validates the decK file at `path`.
pub fn load_deck(path: &Path) -> Result<GatewayConfig, ConfigError> {
    let read_error = |io_error| ConfigError::Read {
        path: path.to_owned(),
        io_error,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    let source_name = path.display().to_string();
    if size > MAX_DECK_BYTES {
        return Err(too_big(&source_name, size));
    }
    let yaml = std::fs::read_to_string(path).map_err(read_error)?;
    parse_deck(&source_name, &yaml)
}

/// Validates decK text; `source_name` stands for the file in error messages.
pub fn parse_deck(source_name: &str, yaml: &str) -> Result<GatewayConfig, ConfigError> {
    let size = yaml.len() as u64;
    if size > MAX_DECK_BYTES {
        return Err(too_big(source_name, size));
    }
    validate::parse(source_name, yaml)
}

fn too_big(file: &str, size: u64) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_owned(),
        location: None,
        path: String::new(),
        message: format!(
            "the file is {size} bytes; aigw reads decK files of at most {MAX_DECK_BYTES} bytes (8 MiB)"
        ),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests;
