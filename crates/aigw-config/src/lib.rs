//! aigw's configuration: the Kong decK file that says what to serve, and the gateway
//! settings that say how to run.
//!
//! A decK file written for Kong's `ai-proxy-advanced` plugin loads unchanged:
//! [`load_deck`] reads it with figment into plain serde types that mirror the file, then
//! validates those once into the runtime types ([`GatewayConfig`] and below) with every
//! Kong default applied. Kong fields aigw has no use for are accepted and skipped; other
//! plugins, disabled plugins, and unknown ai-proxy-advanced fields come back as
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
//! file's `consumers[].keyauth_credentials[]` ([`RouteConfig::key_auth`]).
//!
//! [`Settings`] come from defaults, `aigw.toml`, `AIGW_*` variables and the command line.

#![forbid(unsafe_code)]

mod enums;
mod env;
mod error;
mod key_auth;
mod locate;
mod model;
mod path;
mod raw;
mod schema;
mod settings;
mod validate;

use std::path::Path;

pub use enums::{
    Algorithm, FailoverCriterion, LatencyStrategy, LogFormat, ParamLocation, Provider, ROUTE_TYPES,
    ResponseStreaming, TokensCountStrategy, UnknownValue,
};
pub use error::{ConfigError, Location};
pub use key_auth::{Credential, KeyAuthConfig};
pub use model::{
    AiProxyConfig, BalancerConfig, BedrockOptions, GatewayConfig, ModelConfig, ModelOptions,
    RouteConfig, TargetAuth, TargetConfig, TargetLogging,
};
pub use settings::{SETTINGS_ENV, SETTINGS_FILE, Settings, SettingsOverrides, StatusListen};

/// Loads and validates the decK file at `path`.
pub fn load_deck(path: &Path) -> Result<GatewayConfig, ConfigError> {
    let yaml = std::fs::read_to_string(path).map_err(|io_error| ConfigError::Read {
        path: path.to_owned(),
        io_error,
    })?;
    parse_deck(&path.display().to_string(), &yaml)
}

/// Validates decK text; `source_name` stands for the file in error messages.
pub fn parse_deck(source_name: &str, yaml: &str) -> Result<GatewayConfig, ConfigError> {
    validate::parse(source_name, yaml)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests;
