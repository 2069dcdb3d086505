//! Plain serde types that mirror a Kong decK file.
//!
//! Only what aigw reads is declared; serde skips every other key, which is how the many
//! Kong fields we have no use for (hosts, protocols, upstreams, consumers, ...) are
//! accepted. Almost everything is an `Option` because decK dumps write `null` for unset
//! fields, and so that "required" is checked in one place, by the validator, with the
//! field's path. Nothing here is an untagged or internally tagged enum: those buffer their
//! input and the error would lose its path.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::enums::{
    Algorithm, FailoverCriterion, LatencyStrategy, ParamLocation, Provider, ResponseStreaming,
    TokensCountStrategy,
};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct DeckRaw {
    #[serde(rename = "_format_version")]
    pub format_version: Option<FormatVersion>,
    pub services: Option<Vec<ServiceRaw>>,
    pub routes: Option<Vec<RouteRaw>>,
    pub plugins: Option<Vec<PluginRaw>>,
    pub consumers: Option<Vec<ConsumerRaw>>,
    pub consumer_groups: Option<Vec<ConsumerGroupRaw>>,
}

/// `consumer_groups[]`: named groups of consumers, for acl (`include_consumer_groups`) and
/// ai-rate-limiting-advanced's `consumer_group` match.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct ConsumerGroupRaw {
    pub id: Option<String>,
    pub name: Option<String>,
    /// decK writes a group's members here (`- username: alice`).
    pub consumers: Option<Vec<ConsumerRefRaw>>,
    /// Plugins scoped to the group: refused, since aigw does not run per-group plugins.
    pub plugins: Option<Vec<IgnoredAny>>,
}

/// A reference to a consumer inside `consumer_groups[].consumers[]`.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct ConsumerRefRaw {
    pub id: Option<String>,
    pub username: Option<String>,
    pub custom_id: Option<String>,
}

/// `consumers[].acls[]`: one ACL group a consumer belongs to.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct AclGroupRaw {
    pub group: Option<String>,
}

/// An acl plugin's `config`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct AclRaw {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub include_consumer_groups: Option<bool>,
    // `hide_groups_header` and `always_use_authenticated_groups` are allowed by the
    // schema check and moot: no groups header goes upstream, and there are no
    // authenticated groups without a consumer.
}

/// `consumers[]`: who may call key-auth protected routes.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct ConsumerRaw {
    pub id: Option<String>,
    pub username: Option<String>,
    pub custom_id: Option<String>,
    pub keyauth_credentials: Option<Vec<KeyAuthCredentialRaw>>,
    pub basicauth_credentials: Option<Vec<BasicAuthCredentialRaw>>,
    pub jwt_secrets: Option<Vec<JwtSecretRaw>>,
    pub acls: Option<Vec<AclGroupRaw>>,
    /// The consumer groups it belongs to, by name or id.
    pub groups: Option<Vec<EntityRef>>,
    /// aigw's extension (Kong has no such field): AWS-style key pairs whose SigV4
    /// signatures aigw verifies on `llm_format: bedrock` routes.
    pub aigw_aws_credentials: Option<Vec<AwsCredentialRaw>>,
}

/// `consumers[].aigw_aws_credentials[]`. Unknown fields are refused: a misspelt
/// `secret_access_key` would otherwise leave a pair that can never verify. Its `Debug`
/// never shows the secret.
#[derive(Deserialize)]
#[serde(expecting = "a mapping", deny_unknown_fields)]
pub(crate) struct AwsCredentialRaw {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for AwsCredentialRaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentialRaw")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl ConsumerRaw {
    /// How logs and errors name the consumer at `consumers[index]`: Kong's username, else
    /// its custom_id or id, else its place in the file.
    pub(crate) fn display_name(&self, index: usize) -> String {
        self.username
            .clone()
            .or_else(|| self.custom_id.clone())
            .or_else(|| self.id.clone())
            .unwrap_or_else(|| format!("consumers[{index}]"))
    }
}

/// `consumers[].jwt_secrets[]`.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct JwtSecretRaw {
    pub key: Option<String>,
    pub secret: Option<String>,
    pub algorithm: Option<String>,
    pub rsa_public_key: Option<String>,
}

/// A jwt plugin's `config`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct JwtRaw {
    pub uri_param_names: Option<Vec<String>>,
    pub cookie_names: Option<Vec<String>>,
    pub header_names: Option<Vec<String>>,
    pub claims_to_verify: Option<Vec<String>>,
    pub key_claim_name: Option<String>,
    pub secret_is_base64: Option<bool>,
    pub maximum_expiration: Option<Int>,
    pub anonymous: Option<String>,
}

/// `consumers[].basicauth_credentials[]`.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct BasicAuthCredentialRaw {
    pub username: Option<String>,
    pub password: Option<String>,
}

/// A basic-auth plugin's `config`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct BasicAuthRaw {
    pub anonymous: Option<String>,
    // `hide_credentials` is left to serde to skip: aigw never forwards a client's headers.
    pub realm: Option<String>,
}

/// An ip-restriction plugin's `config`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct IpRestrictionRaw {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub status: Option<Int>,
    pub message: Option<String>,
}

/// A request-termination plugin's `config`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct RequestTerminationRaw {
    pub status_code: Option<Int>,
    pub message: Option<String>,
    pub body: Option<String>,
    pub content_type: Option<String>,
    pub trigger: Option<String>,
    pub echo: Option<bool>,
}

/// A request-size-limiting plugin's `config`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct RequestSizeLimitingRaw {
    pub allowed_payload_size: Option<Int>,
    pub size_unit: Option<String>,
    pub require_content_length: Option<bool>,
}

/// `consumers[].keyauth_credentials[]`.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct KeyAuthCredentialRaw {
    pub key: Option<String>,
}

/// A key-auth plugin's `config`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct KeyAuthRaw {
    pub key_names: Option<Vec<String>>,
    pub key_in_header: Option<bool>,
    pub key_in_query: Option<bool>,
    pub key_in_body: Option<bool>,
    pub anonymous: Option<String>,
}

/// `_format_version`, which people write both quoted (`"3.0"`) and bare (`3.0`, a float).
#[derive(Debug)]
pub(crate) struct FormatVersion(pub String);

impl<'de> Deserialize<'de> for FormatVersion {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FormatVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a version string such as \"3.0\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FormatVersion, E> {
                Ok(FormatVersion(v.to_owned()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FormatVersion, E> {
                // `{:?}` keeps the ".0" that `{}` would drop from 3.0.
                Ok(FormatVersion(format!("{v:?}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FormatVersion, E> {
                Ok(FormatVersion(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FormatVersion, E> {
                Ok(FormatVersion(v.to_string()))
            }
        }
        de.deserialize_any(V)
    }
}

/// `services[]`.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct ServiceRaw {
    pub id: Option<String>,
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub routes: Option<Vec<RouteRaw>>,
    pub plugins: Option<Vec<PluginRaw>>,
}

/// `services[].routes[]` or top-level `routes[]`.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct RouteRaw {
    pub id: Option<String>,
    pub name: Option<String>,
    pub paths: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub hosts: Option<Vec<String>>,
    /// Header name to accepted values.
    pub headers: Option<std::collections::BTreeMap<String, Vec<String>>>,
    pub protocols: Option<Vec<String>>,
    pub snis: Option<Vec<String>>,
    pub strip_path: Option<bool>,
    pub path_handling: Option<String>,
    pub regex_priority: Option<i64>,
    /// Only on top-level routes: the service they belong to.
    pub service: Option<EntityRef>,
    pub plugins: Option<Vec<PluginRaw>>,
    /// Kong's free-form tags; those starting with `aigw-` set aigw's chat options.
    pub tags: Option<Vec<String>>,
}

/// `plugins[]` at any level.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct PluginRaw {
    pub name: Option<String>,
    pub instance_name: Option<String>,
    pub enabled: Option<bool>,
    /// Kept untyped until we know the plugin's name: only ai-proxy-advanced's config is
    /// read, and every other plugin's is ignored.
    pub config: Option<figment::value::Value>,
    /// Only on top-level plugins: the route they apply to.
    pub route: Option<EntityRef>,
    /// Only on top-level plugins: the service they apply to.
    pub service: Option<EntityRef>,
    pub consumer: Option<IgnoredAny>,
    pub consumer_group: Option<IgnoredAny>,
}

/// A reference to a route or service: its name or id, written as a bare string or as a
/// mapping with `name` or `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntityRef(pub String);

impl<'de> Deserialize<'de> for EntityRef {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EntityRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or id, or a mapping with `name` or `id`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EntityRef, E> {
                Ok(EntityRef(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntityRef, A::Error> {
                let (mut name, mut id) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => name = map.next_value::<Option<String>>()?,
                        "id" => id = map.next_value::<Option<String>>()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                name.or(id)
                    .map(EntityRef)
                    .ok_or_else(|| de::Error::custom("a reference needs `name` or `id`"))
            }
        }
        de.deserialize_any(V)
    }
}

/// An ai-proxy-advanced plugin's `config`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct AiProxyRaw {
    pub balancer: Option<BalancerRaw>,
    pub targets: Option<Vec<TargetRaw>>,
    pub response_streaming: Option<ResponseStreaming>,
    pub model_name_header: Option<bool>,
    pub max_request_body_size: Option<Int>,
    pub llm_format: Option<String>,
    pub embeddings: Option<crate::semantic::EmbeddingsRaw>,
    pub vectordb: Option<crate::semantic::VectordbRaw>,
}

/// `config.balancer`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct BalancerRaw {
    pub algorithm: Option<Algorithm>,
    pub tokens_count_strategy: Option<TokensCountStrategy>,
    pub latency_strategy: Option<LatencyStrategy>,
    pub hash_on_header: Option<String>,
    pub slots: Option<Int>,
    pub retries: Option<Int>,
    pub connect_timeout: Option<Int>,
    pub write_timeout: Option<Int>,
    pub read_timeout: Option<Int>,
    pub failover_criteria: Option<Vec<FailoverCriterion>>,
    pub max_fails: Option<Int>,
    pub fail_timeout: Option<Int>,
}

/// `config.targets[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct TargetRaw {
    pub model: Option<ModelRaw>,
    pub route_type: Option<String>,
    pub auth: Option<AuthRaw>,
    pub weight: Option<Int>,
    pub logging: Option<LoggingRaw>,
    pub description: Option<String>,
}

/// `config.targets[].model`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct ModelRaw {
    pub provider: Option<Provider>,
    pub name: Option<String>,
    pub options: Option<OptionsRaw>,
}

/// `config.targets[].model.options`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct OptionsRaw {
    pub max_tokens: Option<Int>,
    pub temperature: Option<Num>,
    pub top_p: Option<Num>,
    pub top_k: Option<Int>,
    pub input_cost: Option<Num>,
    pub output_cost: Option<Num>,
    pub upstream_url: Option<String>,
    pub bedrock: Option<BedrockRaw>,
}

/// `config.targets[].model.options.bedrock`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct BedrockRaw {
    pub aws_region: Option<String>,
    pub aws_assume_role_arn: Option<String>,
    pub aws_role_session_name: Option<String>,
    pub aws_sts_endpoint_url: Option<String>,
    pub embeddings_normalize: Option<bool>,
}

/// `config.targets[].auth`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct AuthRaw {
    pub allow_override: Option<bool>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub header_name: Option<String>,
    pub header_value: Option<String>,
    pub param_name: Option<String>,
    pub param_value: Option<String>,
    pub param_location: Option<ParamLocation>,
}

/// `config.targets[].logging`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct LoggingRaw {
    pub log_statistics: Option<bool>,
    pub log_payloads: Option<bool>,
}

/// A YAML integer, read wide so that range checks, not the type, reject `0` or `70000`
/// and can say what the range is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom(format!("integer {v} is too large")))
            }
        }
        de.deserialize_any(V)
    }
}

/// A YAML number, integer or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Num(pub f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v))
            }
            #[allow(clippy::cast_precision_loss)] // config numbers are small
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            #[allow(clippy::cast_precision_loss)] // config numbers are small
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
        }
        de.deserialize_any(V)
    }
}
