//! Kong's `ai-rate-limiting-advanced`: token (or cost) limits per time window, counted
//! from the provider's usage, in this process (`strategy: local`) or shared through Redis
//! (`strategy: redis`).
//!
//! Both of Kong's forms load: `policies` (each with `match` conditions and `limits`) and
//! the older `llm_providers` (a limit per provider). A field aigw does not act on is
//! refused with its line, since a rate limit silently not applied fails open.

use std::time::Duration;

use figment::value::Value;
use serde::Deserialize;

use crate::ConfigError;
use crate::path::FieldPath;
use crate::raw::{Int, Num};
use crate::schema::Shape;
use crate::validate::Cx;

/// Kong's `ai-rate-limiting-advanced`.
pub(crate) const AI_RATE_LIMITING: &str = "ai-rate-limiting-advanced";

/// An ai-rate-limiting-advanced plugin's config, Kong's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AiRateLimitConfig {
    /// The limits, one policy per `policies[]` entry or `llm_providers[]` entry.
    pub policies: Vec<RateLimitPolicy>,
    /// `identifier` (default `consumer`): whose counters a request uses.
    pub identifier: Identifier,
    /// `header_name`, for `identifier: header`.
    pub header_name: Option<String>,
    /// `strategy` (default `local`).
    pub strategy: Strategy,
    /// `sync_rate` in seconds with `strategy: redis`: `0` reads and writes Redis on every
    /// request, more batches writes that often; `-1` (or unset) with local.
    pub sync_rate: f64,
    /// `window_type` (default `sliding`).
    pub window_type: WindowType,
    /// `tokens_count_strategy` (default `total_tokens`).
    pub tokens_count_strategy: TokenCount,
    /// `hide_client_headers` (default false): no limit/remaining headers on answers.
    pub hide_client_headers: bool,
    /// `error_code` (default 429).
    pub error_code: u16,
    /// `error_message`; `None` is Kong's default, naming the spent limits.
    pub error_message: Option<String>,
    /// `namespace`: prefixes the counters' names, so that several plugins sharing a
    /// Redis never share counters by accident (default: the plugin's place in the file).
    pub namespace: String,
}

/// One limit set: the conditions a request must meet and its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitPolicy {
    /// How headers name the policy (`X-AI-RateLimit-Limit-<window>-<name>`).
    pub name: String,
    /// `match[]`, all of which must hold.
    pub matches: Vec<PolicyMatch>,
    /// `limits[]`.
    pub limits: Vec<WindowLimit>,
}

/// One `limits[]` entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowLimit {
    /// `limit`: tokens (or cost) per window.
    pub limit: f64,
    /// `window_size` in seconds.
    pub window: u64,
}

/// One `match[]` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyMatch {
    /// `type`.
    pub kind: MatchKind,
    /// `key`: the header name for `header`; for `consumer` `username` (default), `id`
    /// or `custom_id`; for `consumer_group` `name` (default) or `id`.
    pub key: Option<String>,
    /// `values`: any of them matches; empty matches any value.
    pub values: Vec<String>,
    /// `partition_by`: separate counters per value the request has.
    pub partition_by: bool,
}

macro_rules! simple_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $kong:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }
        impl $name {
            /// Every value's Kong spelling.
            pub const NAMES: &'static [&'static str] = &[$($kong),+];
            /// The Kong spelling.
            pub const fn as_str(self) -> &'static str { match self { $($name::$variant => $kong),+ } }
            fn parse(text: &str) -> Option<Self> { match text { $($kong => Some($name::$variant),)+ _ => None } }
        }
    };
}

simple_enum!(
    /// `match[].type`.
    MatchKind {
        /// The authenticated consumer.
        Consumer => "consumer",
        /// One of the consumer's consumer groups.
        ConsumerGroup => "consumer_group",
        /// A request header.
        Header => "header",
        /// The client's address (IPs or CIDR blocks).
        Ip => "ip",
        /// The request path.
        Path => "path",
        /// A target's model name.
        Model => "model",
        /// A target's provider.
        Provider => "provider",
    }
);

simple_enum!(
    /// `identifier`.
    Identifier {
        /// The consumer, else the client's address.
        Consumer => "consumer",
        /// The consumer (aigw names credentials by their consumer).
        Credential => "credential",
        /// The client's address.
        Ip => "ip",
        /// The route's service.
        Service => "service",
        /// The value of `header_name`.
        Header => "header",
        /// The request path.
        Path => "path",
        /// The consumer's first consumer group.
        ConsumerGroup => "consumer-group",
    }
);

simple_enum!(
    /// `window_type`.
    WindowType {
        /// Kong's default: the previous window's count, weighted by how much of it still
        /// overlaps, plus the current one's.
        Sliding => "sliding",
        /// Counts reset at each window boundary.
        Fixed => "fixed",
    }
);

simple_enum!(
    /// `tokens_count_strategy`.
    TokenCount {
        /// Prompt plus completion tokens.
        TotalTokens => "total_tokens",
        /// Prompt tokens.
        PromptTokens => "prompt_tokens",
        /// Completion tokens.
        CompletionTokens => "completion_tokens",
        /// `prompt × input_cost + completion × output_cost`, costs per million tokens
        /// from the serving target's `model.options`.
        Cost => "cost",
    }
);

/// `strategy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Counters in this process.
    Local,
    /// Counters in Redis, shared by every replica.
    Redis(RedisConfig),
}

/// `redis`, with Kong's defaults. Its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `host` (required).
    pub host: String,
    /// `port` (default 6379).
    pub port: u16,
    /// `database` (default 0).
    pub database: i64,
    /// `username` (Redis 6 ACL).
    pub username: Option<String>,
    /// `password` (secret; `{vault://env/NAME}` works).
    pub password: Option<String>,
    /// `ssl` (default false).
    pub tls: bool,
    /// `ssl_verify` (default false, as Kong): check the server's certificate against the
    /// system's roots and its name against `host`.
    pub tls_verify: bool,
    /// `connect_timeout` (default `timeout`, 2000 ms).
    pub connect_timeout: Duration,
    /// `read_timeout`/`send_timeout` (default `timeout`, 2000 ms): one command's bound.
    pub response_timeout: Duration,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
struct RateLimitRaw {
    policies: Option<Vec<PolicyRaw>>,
    llm_providers: Option<Vec<ProviderRaw>>,
    identifier: Option<String>,
    header_name: Option<String>,
    strategy: Option<String>,
    sync_rate: Option<Num>,
    window_type: Option<String>,
    tokens_count_strategy: Option<String>,
    hide_client_headers: Option<bool>,
    error_code: Option<Int>,
    error_message: Option<String>,
    namespace: Option<String>,
    redis: Option<RedisRaw>,
    request_prompt_count_function: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
struct PolicyRaw {
    #[serde(rename = "match")]
    matches: Option<Vec<MatchRaw>>,
    limits: Option<Vec<LimitRaw>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
struct MatchRaw {
    #[serde(rename = "type")]
    kind: Option<String>,
    key: Option<String>,
    values: Option<Vec<String>>,
    partition_by: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
struct LimitRaw {
    limit: Option<Num>,
    window_size: Option<Num>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
struct ProviderRaw {
    name: Option<String>,
    limit: Option<Vec<Num>>,
    window_size: Option<Vec<Num>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
struct RedisRaw {
    host: Option<String>,
    port: Option<Int>,
    database: Option<Int>,
    username: Option<String>,
    password: Option<String>,
    ssl: Option<bool>,
    ssl_verify: Option<bool>,
    server_name: Option<String>,
    timeout: Option<Int>,
    connect_timeout: Option<Int>,
    send_timeout: Option<Int>,
    read_timeout: Option<Int>,
}

const MATCH_SHAPE: Shape = Shape::Record(&[
    ("type", Shape::Any),
    ("key", Shape::Any),
    ("values", Shape::Any),
    ("partition_by", Shape::Any),
]);
const LIMIT_SHAPE: Shape = Shape::Record(&[("limit", Shape::Any), ("window_size", Shape::Any)]);
const POLICY_SHAPE: Shape = Shape::Record(&[
    ("match", Shape::List(&MATCH_SHAPE)),
    ("limits", Shape::List(&LIMIT_SHAPE)),
]);
const PROVIDER_SHAPE: Shape = Shape::Record(&[
    ("name", Shape::Any),
    ("limit", Shape::Any),
    ("window_size", Shape::Any),
]);
/// Redis settings aigw reads; Kong's pool sizes (`keepalive_*`) are accepted and moot,
/// since one multiplexed connection serves every request.
const REDIS_SHAPE: Shape = Shape::Record(&[
    ("host", Shape::Any),
    ("port", Shape::Any),
    ("database", Shape::Any),
    ("username", Shape::Any),
    ("password", Shape::Any),
    ("ssl", Shape::Any),
    ("ssl_verify", Shape::Any),
    ("server_name", Shape::Any),
    ("timeout", Shape::Any),
    ("connect_timeout", Shape::Any),
    ("send_timeout", Shape::Any),
    ("read_timeout", Shape::Any),
    ("keepalive_pool_size", Shape::Any),
    ("keepalive_backlog", Shape::Any),
]);
const SHAPE: Shape = Shape::Record(&[
    ("policies", Shape::List(&POLICY_SHAPE)),
    ("llm_providers", Shape::List(&PROVIDER_SHAPE)),
    ("identifier", Shape::Any),
    ("header_name", Shape::Any),
    ("strategy", Shape::Any),
    ("sync_rate", Shape::Any),
    ("window_type", Shape::Any),
    ("tokens_count_strategy", Shape::Any),
    ("hide_client_headers", Shape::Any),
    ("error_code", Shape::Any),
    ("error_message", Shape::Any),
    ("namespace", Shape::Any),
    ("redis", REDIS_SHAPE),
    // Refused below with a reason rather than as an unknown field.
    ("request_prompt_count_function", Shape::Any),
    // Kong's shared-dictionary names: nginx internals with nothing to configure here.
    ("dictionary_name", Shape::Any),
    ("retry_after_jitter_max", Shape::Any),
]);

impl Cx<'_> {
    /// An ai-rate-limiting-advanced plugin's config; `place` names the plugin in the
    /// file, for the default namespace.
    pub(crate) fn ai_rate_limit(
        &self,
        base: &FieldPath,
        value: Option<&Value>,
        place: &FieldPath,
    ) -> Result<AiRateLimitConfig, ConfigError> {
        let Some(value) = value else {
            return Err(self.invalid(base, "required field missing (policies or llm_providers)"));
        };
        self.refuse_unknown(base, value, &SHAPE, AI_RATE_LIMITING)?;
        let raw: RateLimitRaw = value
            .deserialize()
            .map_err(|err| self.figment_error(base, err))?;
        if raw.request_prompt_count_function.is_some() {
            return Err(self.invalid(
                &base.key("request_prompt_count_function"),
                "request_prompt_count_function runs Lua inside Kong; aigw runs no Lua and \
                 counts tokens from the provider's usage: remove the field",
            ));
        }
        let one_of = |name: &str,
                      text: Option<String>,
                      names: &[&str]|
         -> Result<Option<String>, ConfigError> {
            match text {
                Some(t) if !names.contains(&t.as_str()) => Err(self.invalid(
                    &base.key(name),
                    format!("unknown value {t:?}, expected one of {}", names.join(", ")),
                )),
                other => Ok(other),
            }
        };
        let identifier = one_of("identifier", raw.identifier, Identifier::NAMES)?
            .and_then(|t| Identifier::parse(&t))
            .unwrap_or(Identifier::Consumer);
        if identifier == Identifier::Header && raw.header_name.as_deref().is_none_or(str::is_empty)
        {
            return Err(self.invalid(
                &base.key("header_name"),
                "identifier: header needs header_name",
            ));
        }
        let window_type = one_of("window_type", raw.window_type, WindowType::NAMES)?
            .and_then(|t| WindowType::parse(&t))
            .unwrap_or(WindowType::Sliding);
        let tokens_count_strategy = one_of(
            "tokens_count_strategy",
            raw.tokens_count_strategy,
            TokenCount::NAMES,
        )?
        .and_then(|t| TokenCount::parse(&t))
        .unwrap_or(TokenCount::TotalTokens);
        let strategy = match raw.strategy.as_deref() {
            None | Some("local") => Strategy::Local,
            Some("redis") => Strategy::Redis(self.redis(&base.key("redis"), raw.redis)?),
            Some("cluster") => {
                return Err(self.invalid(
                    &base.key("strategy"),
                    "strategy cluster keeps counters in Kong's database, which aigw has not; use redis (or local)",
                ));
            }
            Some(other) => {
                return Err(self.invalid(
                    &base.key("strategy"),
                    format!("unknown value {other:?}, expected one of local, redis"),
                ));
            }
        };
        let sync_rate = match (raw.sync_rate, &strategy) {
            (Some(Num(rate)), _) if rate < 0.0 && rate != -1.0 => {
                return Err(self.invalid(
                    &base.key("sync_rate"),
                    format!("must be -1, 0 or a number of seconds, got {rate}"),
                ));
            }
            (Some(Num(-1.0)), Strategy::Redis(_)) => {
                return Err(self.invalid(
                    &base.key("sync_rate"),
                    "sync_rate -1 never syncs, so strategy redis would count locally; use strategy local",
                ));
            }
            (Some(Num(rate)), _) => rate,
            (None, Strategy::Redis(_)) => 0.0,
            (None, Strategy::Local) => -1.0,
        };
        let mut policies = Vec::new();
        let policies_path = base.key("policies");
        for (pi, policy) in raw.policies.into_iter().flatten().enumerate() {
            policies.push(self.policy_of(&policies_path.index(pi), pi, policy)?);
        }
        let providers_path = base.key("llm_providers");
        for (pi, provider) in raw.llm_providers.into_iter().flatten().enumerate() {
            policies.push(self.provider_policy(&providers_path.index(pi), provider)?);
        }
        if policies.is_empty() {
            return Err(self.invalid(
                base,
                "at least one of policies or llm_providers must set a limit",
            ));
        }
        let error_code = self.ranged(&base.key("error_code"), raw.error_code, 429u16, 100, 599)?;
        Ok(AiRateLimitConfig {
            policies,
            identifier,
            header_name: raw.header_name.map(|h| h.to_ascii_lowercase()),
            strategy,
            sync_rate,
            window_type,
            tokens_count_strategy,
            hide_client_headers: raw.hide_client_headers.unwrap_or(false),
            error_code,
            error_message: raw.error_message,
            namespace: raw.namespace.unwrap_or_else(|| place.to_string()),
        })
    }

    fn limit_of(
        &self,
        path: &FieldPath,
        limit: Option<Num>,
        window: Option<Num>,
    ) -> Result<WindowLimit, ConfigError> {
        let limit = match limit {
            Some(Num(v)) if v > 0.0 && v.is_finite() => v,
            Some(Num(v)) => {
                return Err(self.invalid(&path.key("limit"), format!("must be above 0, got {v}")));
            }
            None => return Err(self.invalid(&path.key("limit"), "required field missing")),
        };
        let window = match window {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked just here
            Some(Num(v)) if v >= 1.0 && v.fract() == 0.0 && v <= 31_536_000.0 => v as u64,
            Some(Num(v)) => {
                return Err(self.invalid(
                    &path.key("window_size"),
                    format!("must be a whole number of seconds between 1 and 31536000, got {v}"),
                ));
            }
            None => return Err(self.invalid(&path.key("window_size"), "required field missing")),
        };
        Ok(WindowLimit { limit, window })
    }

    fn policy_of(
        &self,
        path: &FieldPath,
        index: usize,
        raw: PolicyRaw,
    ) -> Result<RateLimitPolicy, ConfigError> {
        let mut matches = Vec::new();
        for (mi, m) in raw.matches.into_iter().flatten().enumerate() {
            let at = path.key("match").index(mi);
            let kind = match m.kind.as_deref() {
                None => return Err(self.invalid(&at.key("type"), "required field missing")),
                Some(t) => MatchKind::parse(t).ok_or_else(|| {
                    self.invalid(
                        &at.key("type"),
                        format!(
                            "unknown value {t:?}, expected one of {}",
                            MatchKind::NAMES.join(", ")
                        ),
                    )
                })?,
            };
            let allowed_keys: &[&str] = match kind {
                MatchKind::Consumer => &["username", "id", "custom_id"],
                MatchKind::ConsumerGroup => &["name", "id"],
                _ => &[],
            };
            match (&m.key, kind) {
                (None, MatchKind::Header) => {
                    return Err(
                        self.invalid(&at.key("key"), "type header needs key, the header's name")
                    );
                }
                (Some(key), _)
                    if !allowed_keys.is_empty() && !allowed_keys.contains(&key.as_str()) =>
                {
                    return Err(self.invalid(
                        &at.key("key"),
                        format!(
                            "unknown value {key:?}, expected one of {}",
                            allowed_keys.join(", ")
                        ),
                    ));
                }
                _ => {}
            }
            let values = m.values.unwrap_or_default();
            if kind == MatchKind::Ip {
                for (vi, v) in values.iter().enumerate() {
                    if crate::IpNet::parse(v).is_none() {
                        return Err(self.invalid(
                            &at.key("values").index(vi),
                            format!("{v:?} is not an IP address or CIDR block"),
                        ));
                    }
                }
            }
            matches.push(PolicyMatch {
                kind,
                key: m.key.map(|k| {
                    if kind == MatchKind::Header {
                        k.to_ascii_lowercase()
                    } else {
                        k
                    }
                }),
                values,
                partition_by: m.partition_by.unwrap_or(false),
            });
        }
        let limits_raw = raw.limits.unwrap_or_default();
        if limits_raw.is_empty() {
            return Err(self.invalid(&path.key("limits"), "at least one limit is required"));
        }
        let limits = limits_raw
            .into_iter()
            .enumerate()
            .map(|(li, l)| self.limit_of(&path.key("limits").index(li), l.limit, l.window_size))
            .collect::<Result<Vec<_>, _>>()?;
        // Kong's headers name a provider; a policy about one provider or model takes its
        // name, any other its place in the list.
        let name = matches
            .iter()
            .find(|m| {
                matches!(m.kind, MatchKind::Provider | MatchKind::Model) && m.values.len() == 1
            })
            .map_or_else(|| format!("policy{}", index + 1), |m| m.values[0].clone());
        Ok(RateLimitPolicy {
            name,
            matches,
            limits,
        })
    }

    fn provider_policy(
        &self,
        path: &FieldPath,
        raw: ProviderRaw,
    ) -> Result<RateLimitPolicy, ConfigError> {
        let Some(name) = raw.name.filter(|n| !n.is_empty()) else {
            return Err(self.invalid(&path.key("name"), "required field missing"));
        };
        if name == "requestPrompt" {
            return Err(self.invalid(
                &path.key("name"),
                "requestPrompt counts with request_prompt_count_function, Lua that aigw does not run",
            ));
        }
        let limits = raw.limit.unwrap_or_default();
        let windows = raw.window_size.unwrap_or_default();
        if limits.is_empty() || limits.len() != windows.len() {
            return Err(self.invalid(
                &path.key("window_size"),
                format!(
                    "limit and window_size must be lists of the same, non-zero length ({} and {})",
                    limits.len(),
                    windows.len()
                ),
            ));
        }
        let limits = limits
            .into_iter()
            .zip(windows)
            .map(|(l, w)| self.limit_of(path, Some(l), Some(w)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RateLimitPolicy {
            matches: vec![PolicyMatch {
                kind: MatchKind::Provider,
                key: None,
                values: vec![name.clone()],
                partition_by: false,
            }],
            name,
            limits,
        })
    }

    fn redis(&self, base: &FieldPath, raw: Option<RedisRaw>) -> Result<RedisConfig, ConfigError> {
        let raw = raw.unwrap_or_default();
        let Some(host) = raw.host.filter(|h| !h.is_empty()) else {
            return Err(self.invalid(
                &base.key("host"),
                "required field missing: strategy redis needs redis.host",
            ));
        };
        let timeout = self.ranged(&base.key("timeout"), raw.timeout, 2000u32, 1, 2_147_483_646)?;
        let ms = |key: &str, v: Option<Int>| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(u64::from(self.ranged(
                &base.key(key),
                v,
                timeout,
                1,
                2_147_483_646,
            )?)))
        };
        let read = ms("read_timeout", raw.read_timeout)?;
        let send = ms("send_timeout", raw.send_timeout)?;
        if let Some(name) = raw.server_name.as_deref().filter(|n| *n != host) {
            return Err(self.invalid(
                &base.key("server_name"),
                format!("a TLS name ({name:?}) other than host is not supported by aigw; set host to the name the certificate carries"),
            ));
        }
        let password = self.dereference(&base.key("password"), raw.password)?;
        let username = self.dereference(&base.key("username"), raw.username)?;
        Ok(RedisConfig {
            host,
            port: self.ranged(&base.key("port"), raw.port, 6379u16, 1, 65535)?,
            database: i64::from(self.ranged(
                &base.key("database"),
                raw.database,
                0u16,
                0,
                65535,
            )?),
            username,
            password,
            tls: raw.ssl.unwrap_or(false),
            tls_verify: raw.ssl_verify.unwrap_or(false),
            connect_timeout: ms("connect_timeout", raw.connect_timeout)?,
            response_timeout: read.max(send),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deck(config: &str) -> String {
        format!(
            "_format_version: \"3.0\"\nservices:\n- name: svc\n  routes:\n  - name: a\n    paths: [/a]\nplugins:\n- name: ai-rate-limiting-advanced\n  config:\n{config}- name: ai-proxy-advanced\n  config:\n    targets:\n    - model: {{provider: bedrock, name: m}}\n      route_type: llm/v1/chat\n"
        )
    }

    #[test]
    fn both_forms_load_with_kongs_defaults() {
        let yaml = deck(
            "    llm_providers:\n    - {name: bedrock, limit: [100, 1000], window_size: [60, 3600]}\n    policies:\n    - match:\n      - {type: provider, partition_by: true, values: [openai]}\n      - {type: consumer, key: username, values: [alice]}\n      limits:\n      - {limit: 5, window_size: 60}\n",
        );
        let config = crate::parse_deck("t.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
        let limit = config.routes[0].ai_rate_limit.as_ref().expect("attached");
        assert_eq!(limit.strategy, Strategy::Local);
        assert_eq!(limit.window_type, WindowType::Sliding);
        assert_eq!(limit.identifier, Identifier::Consumer);
        assert_eq!(limit.error_code, 429);
        let names: Vec<_> = limit.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["openai", "bedrock"]);
        assert_eq!(
            limit.policies[1].limits[1],
            WindowLimit {
                limit: 1000.0,
                window: 3600
            }
        );
    }

    #[test]
    fn lua_unknown_fields_and_cluster_are_refused_at_their_line() {
        let refused = |config: &str| {
            crate::parse_deck("t.yaml", &deck(config))
                .expect_err("refused")
                .to_string()
        };
        let lua = refused(
            "    llm_providers:\n    - {name: bedrock, limit: [1], window_size: [1]}\n    request_prompt_count_function: return 1\n",
        );
        assert!(
            lua.starts_with("t.yaml:12:36: plugins[0].config.request_prompt_count_function: request_prompt_count_function runs Lua"),
            "{lua}"
        );
        let unknown = refused(
            "    llm_providers:\n    - {name: bedrock, limit: [1], window_size: [1]}\n    window_typ: fixed\n",
        );
        assert!(
            unknown.starts_with("t.yaml:12:5: plugins[0].config.window_typ: unknown or unsupported ai-rate-limiting-advanced field"),
            "{unknown}"
        );
        let nested =
            refused("    policies:\n    - limits:\n      - {limit: 1, window_size: 1, burst: 2}\n");
        assert!(
            nested.contains("plugins[0].config.policies[0].limits[0].burst: unknown"),
            "{nested}"
        );
        let cluster = refused(
            "    strategy: cluster\n    llm_providers:\n    - {name: bedrock, limit: [1], window_size: [1]}\n",
        );
        assert!(cluster.contains("use redis"), "{cluster}");
        let no_host = refused(
            "    strategy: redis\n    llm_providers:\n    - {name: bedrock, limit: [1], window_size: [1]}\n",
        );
        assert!(no_host.contains("redis.host"), "{no_host}");
        let lengths =
            refused("    llm_providers:\n    - {name: bedrock, limit: [1, 2], window_size: [1]}\n");
        assert!(lengths.contains("same, non-zero length"), "{lengths}");
    }

    #[test]
    fn redis_settings_take_kongs_defaults_and_hide_the_password() {
        let yaml = deck(
            "    strategy: redis\n    redis: {host: redis.internal, password: s3cret, timeout: 500}\n    llm_providers:\n    - {name: bedrock, limit: [1], window_size: [1]}\n",
        );
        let config = crate::parse_deck("t.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
        let limit = config.routes[0].ai_rate_limit.as_ref().expect("attached");
        let Strategy::Redis(redis) = &limit.strategy else {
            panic!("redis")
        };
        assert_eq!(
            (redis.host.as_str(), redis.port, redis.database),
            ("redis.internal", 6379, 0)
        );
        assert_eq!(redis.response_timeout, Duration::from_millis(500));
        assert_eq!(limit.sync_rate, 0.0);
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
