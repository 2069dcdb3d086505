//! The Kong plugins aigw enforces besides ai-proxy-advanced and key-auth, and the rule for
//! every other plugin: a gateway must fail closed, so a plugin aigw does not enforce on a
//! route it serves stops the file from loading.
//!
//! Enforced here, from the decK file unchanged: `basic-auth` (with the consumers'
//! `basicauth_credentials`), `ip-restriction`, `request-termination` and
//! `request-size-limiting`. Each attaches as Kong attaches it: the route's own instance
//! wins over its service's, which wins over a global one.

use std::fmt;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::ConfigError;
use crate::consumers::{ACL, AclConfig};
use crate::path::FieldPath;
use crate::prompt::{AI_PROMPT_DECORATOR, AI_PROMPT_GUARD, PromptDecoratorRaw, PromptGuardRaw};
use crate::rate_limit::{AI_RATE_LIMITING, AiRateLimitConfig};
use crate::raw::{
    AclRaw, BasicAuthRaw, ConsumerRaw, Int, IpRestrictionRaw, JwtRaw, PluginRaw,
    RequestSizeLimitingRaw, RequestTerminationRaw,
};
use crate::validate::Cx;

/// Kong's `basic-auth`.
pub(crate) const BASIC_AUTH: &str = "basic-auth";
/// Kong's `ip-restriction`.
pub(crate) const IP_RESTRICTION: &str = "ip-restriction";
/// Kong's `request-termination`.
pub(crate) const REQUEST_TERMINATION: &str = "request-termination";
/// Kong's `request-size-limiting`.
pub(crate) const REQUEST_SIZE_LIMITING: &str = "request-size-limiting";
/// Kong's `jwt`.
pub(crate) const JWT: &str = "jwt";

/// The signature algorithms aigw verifies, as Kong's `jwt_secrets[].algorithm` names them
/// (all of Kong's but ES512).
pub const JWT_ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// Every plugin aigw enforces on the routes it serves.
pub const ENFORCED_PLUGINS: &[&str] = &[
    "ai-proxy-advanced",
    "key-auth",
    BASIC_AUTH,
    JWT,
    IP_RESTRICTION,
    REQUEST_TERMINATION,
    REQUEST_SIZE_LIMITING,
    ACL,
    AI_RATE_LIMITING,
    AI_PROMPT_GUARD,
    AI_PROMPT_DECORATOR,
];

/// Plugins that only observe traffic or add response headers a browser checks: leaving
/// them out can never let through a request Kong would have refused, so they load with a
/// warning. aigw exports its own metrics and traces.
pub const OBSERVE_ONLY_PLUGINS: &[&str] = &[
    "prometheus",
    "opentelemetry",
    "zipkin",
    "datadog",
    "statsd",
    "file-log",
    "http-log",
    "tcp-log",
    "udp-log",
    "syslog",
    "loggly",
    "cors",
];

/// A basic-auth plugin's config with Kong's defaults applied, plus the credentials it
/// accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuthConfig {
    /// The realm named in the `WWW-Authenticate` challenge (`realm`, default `aigw`).
    pub realm: String,
    /// Every consumer's credential, from `consumers[].basicauth_credentials[]`.
    pub credentials: Vec<BasicCredential>,
}

/// One consumer's username and password, kept only as a digest from load on.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredential {
    /// The consumer's `username`, else `custom_id`, else `id`, else `consumers[i]`.
    pub consumer: String,
    /// [`BasicCredential::digest`] of the username and password.
    pub digest: [u8; 32],
}

impl BasicCredential {
    /// The SHA-256 digest of a username and password, as stored and as compared: the
    /// username's length leads, so no two pairs share the digest's input.
    pub fn digest(username: &[u8], password: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update((username.len() as u64).to_le_bytes());
        hasher.update(username);
        hasher.update(password);
        let mut out = [0u8; 32];
        out.copy_from_slice(hasher.finalize().as_slice());
        out
    }
}

impl fmt::Debug for BasicCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredential")
            .field("consumer", &self.consumer)
            .field("digest", &"<redacted>")
            .finish()
    }
}

/// An IP address or a CIDR block, IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Reads `10.0.0.1`, `10.0.0.0/8`, `::1` or `2001:db8::/32`.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().ok()?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= bits)?,
        };
        Some(IpNet { addr, prefix })
    }

    /// Whether `ip` is in the block; an IPv4-mapped IPv6 address counts as its IPv4 one.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(net.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(net.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    a & mask == b & mask
}

/// An ip-restriction plugin's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRestrictionConfig {
    /// `allow`: when not empty, only these addresses get in.
    pub allow: Vec<IpNet>,
    /// `deny`: these addresses never get in, even when `allow` lists them too.
    pub deny: Vec<IpNet>,
    /// `status` (default 403).
    pub status: u16,
    /// `message` (default "Your IP address is not allowed").
    pub message: String,
}

impl IpRestrictionConfig {
    /// Whether a client at `ip` gets in.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|net| net.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(ip))
    }
}

/// A request-termination plugin's config: the route answers by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTerminationConfig {
    /// `status_code` (default 503).
    pub status: u16,
    /// `message`, else the status's reason phrase; unused when `body` is set.
    pub message: String,
    /// `body` and `content_type` (default `application/json; charset=utf-8`): a raw
    /// answer instead of an error message.
    pub body: Option<(String, String)>,
    /// `trigger`: when set, only requests carrying this header or query parameter are
    /// terminated.
    pub trigger: Option<String>,
}

/// A request-size-limiting plugin's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSizeLimitConfig {
    /// `allowed_payload_size` × `size_unit`, in bytes.
    pub max_bytes: u64,
    /// `require_content_length` (default false): refuse a request without
    /// `Content-Length`.
    pub require_content_length: bool,
}

/// A jwt plugin's config with Kong's defaults applied, plus the consumers' secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// `uri_param_names` (default `[jwt]`): query parameters carrying the token.
    pub uri_param_names: Vec<String>,
    /// `cookie_names` (default none).
    pub cookie_names: Vec<String>,
    /// `header_names` (default `[authorization]`), lower-case; `Bearer ` is stripped.
    pub header_names: Vec<String>,
    /// `claims_to_verify` has `exp`: the token must carry an `exp` in the future.
    pub verify_exp: bool,
    /// `claims_to_verify` has `nbf`: the token must carry an `nbf` in the past.
    pub verify_nbf: bool,
    /// `key_claim_name` (default `iss`): the claim naming the consumer's secret `key`.
    pub key_claim_name: String,
    /// `secret_is_base64` (default false): HMAC secrets are base64 in the file.
    pub secret_is_base64: bool,
    /// `maximum_expiration` in seconds (default 0, off): how far in the future `exp` may be.
    pub maximum_expiration: u64,
    /// Every consumer's secret, from `consumers[].jwt_secrets[]`.
    pub credentials: Vec<JwtCredential>,
}

/// One consumer's `jwt_secrets[]` entry. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtCredential {
    /// The consumer's `username`, else `custom_id`, else `id`, else `consumers[i]`.
    pub consumer: String,
    /// `key`: what the token's key claim must say.
    pub key: String,
    /// `algorithm` (default `HS256`), one of [`JWT_ALGORITHMS`].
    pub algorithm: String,
    /// `secret`, for the HS algorithms (secret).
    pub secret: Option<String>,
    /// `rsa_public_key`, a PEM public key for the RS, PS, ES and EdDSA algorithms.
    pub public_key: Option<String>,
}

impl fmt::Debug for JwtCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtCredential")
            .field("consumer", &self.consumer)
            .field("key", &self.key)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_key", &self.public_key.is_some())
            .finish()
    }
}

/// One validated instance of a plugin enforced here.
#[derive(Debug, Clone)]
pub(crate) enum Policy {
    BasicAuth(BasicAuthConfig),
    Jwt(JwtConfig),
    IpRestriction(IpRestrictionConfig),
    Termination(RequestTerminationConfig),
    SizeLimit(RequestSizeLimitConfig),
    Acl(AclConfig),
    AiRateLimit(Box<AiRateLimitConfig>),
    PromptGuard(crate::prompt::PromptGuardConfig),
    PromptDecorator(crate::prompt::PromptDecoratorConfig),
}

impl Cx<'_> {
    /// The validated config of an enabled plugin enforced here; `None` (with a warning)
    /// when it is disabled. basic-auth's credentials are added by the caller.
    pub(crate) fn policy(
        &mut self,
        name: &str,
        plugin: &PluginRaw,
        path: &FieldPath,
    ) -> Result<Option<Policy>, ConfigError> {
        if plugin.enabled == Some(false) {
            self.warn(
                path,
                format!("{name} is disabled (enabled: false); ignored"),
            );
            return Ok(None);
        }
        if plugin.consumer.is_some() || plugin.consumer_group.is_some() {
            // Kong would run it for that consumer only; aigw keeps no consumer per
            // request, and skipping it would fail open.
            return Err(self.invalid(
                path,
                format!(
                    "{name} scoped to a consumer or consumer group is not enforced by aigw; \
                     attach it to a route, a service or globally"
                ),
            ));
        }
        let config_path = path.key("config");
        let value = plugin.config.as_ref();
        macro_rules! raw {
            ($ty:ty) => {
                match value {
                    None => <$ty>::default(),
                    Some(value) => value
                        .deserialize::<$ty>()
                        .map_err(|err| self.figment_error(&config_path, err))?,
                }
            };
        }
        Ok(Some(match name {
            BASIC_AUTH => Policy::BasicAuth(self.basic_auth(&config_path, raw!(BasicAuthRaw))),
            JWT => Policy::Jwt(self.jwt(&config_path, raw!(JwtRaw))?),
            IP_RESTRICTION => {
                Policy::IpRestriction(self.ip_restriction(&config_path, raw!(IpRestrictionRaw))?)
            }
            REQUEST_TERMINATION => {
                Policy::Termination(self.termination(&config_path, raw!(RequestTerminationRaw))?)
            }
            REQUEST_SIZE_LIMITING => {
                Policy::SizeLimit(self.size_limit(&config_path, raw!(RequestSizeLimitingRaw))?)
            }
            ACL => Policy::Acl(self.acl(&config_path, value, raw!(AclRaw))?),
            AI_RATE_LIMITING => {
                Policy::AiRateLimit(Box::new(self.ai_rate_limit(&config_path, value, path)?))
            }
            AI_PROMPT_GUARD => {
                Policy::PromptGuard(self.prompt_guard(&config_path, raw!(PromptGuardRaw))?)
            }
            AI_PROMPT_DECORATOR => Policy::PromptDecorator(
                self.prompt_decorator(&config_path, raw!(PromptDecoratorRaw))?,
            ),
            other => {
                return Err(self.invalid(
                    &path.key("name"),
                    format!("plugin {other:?} is not enforced by aigw"),
                ));
            }
        }))
    }

    fn basic_auth(&mut self, base: &FieldPath, raw: BasicAuthRaw) -> BasicAuthConfig {
        if raw.anonymous.is_some() {
            // Failing closed: a request without credentials is refused, never let through.
            self.warn(
                &base.key("anonymous"),
                "anonymous consumers are not supported by aigw; requests without credentials get 401",
            );
        }
        // `hide_credentials` needs nothing: aigw never forwards a client's headers upstream.
        BasicAuthConfig {
            realm: raw
                .realm
                .filter(|r| !r.is_empty() && !r.contains('"'))
                .unwrap_or_else(|| "aigw".to_owned()),
            credentials: Vec::new(),
        }
    }

    fn jwt(&mut self, base: &FieldPath, raw: JwtRaw) -> Result<JwtConfig, ConfigError> {
        if raw.anonymous.is_some() {
            self.warn(
                &base.key("anonymous"),
                "anonymous consumers are not supported by aigw; requests without a token get 401",
            );
        }
        let claims_path = base.key("claims_to_verify");
        let claims = raw.claims_to_verify.unwrap_or_default();
        for (i, claim) in claims.iter().enumerate() {
            if claim != "exp" && claim != "nbf" {
                return Err(self.invalid(
                    &claims_path.index(i),
                    format!("unknown value {claim:?}, expected one of exp, nbf"),
                ));
            }
        }
        let maximum_path = base.key("maximum_expiration");
        let maximum_expiration = match raw.maximum_expiration {
            None => 0,
            Some(Int(v)) if (0..=31_536_000).contains(&v) => v.unsigned_abs(),
            Some(Int(v)) => {
                return Err(self.invalid(
                    &maximum_path,
                    format!("must be between 0 and 31536000, got {v}"),
                ));
            }
        };
        if maximum_expiration > 0 && !claims.iter().any(|c| c == "exp") {
            return Err(self.invalid(
                &maximum_path,
                "maximum_expiration needs exp in claims_to_verify (Kong requires it)",
            ));
        }
        let header_names: Vec<String> = raw
            .header_names
            .unwrap_or_else(|| vec!["authorization".to_owned()]);
        for (i, name) in header_names.iter().enumerate() {
            if http::HeaderName::try_from(name.as_str()).is_err() {
                return Err(self.invalid(
                    &base.key("header_names").index(i),
                    format!("{name:?} is not a valid header name"),
                ));
            }
        }
        Ok(JwtConfig {
            uri_param_names: raw
                .uri_param_names
                .unwrap_or_else(|| vec!["jwt".to_owned()]),
            cookie_names: raw.cookie_names.unwrap_or_default(),
            header_names: header_names
                .into_iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
            verify_exp: claims.iter().any(|c| c == "exp"),
            verify_nbf: claims.iter().any(|c| c == "nbf"),
            key_claim_name: raw.key_claim_name.unwrap_or_else(|| "iss".to_owned()),
            secret_is_base64: raw.secret_is_base64.unwrap_or(false),
            maximum_expiration,
            credentials: Vec::new(),
        })
    }

    /// Every consumer's jwt secret; a `key` may belong to one entry only, as in Kong.
    pub(crate) fn jwt_credentials(
        &self,
        consumers: &[ConsumerRaw],
    ) -> Result<Vec<JwtCredential>, ConfigError> {
        let root = FieldPath::root().key("consumers");
        let mut credentials: Vec<JwtCredential> = Vec::new();
        let mut seen: std::collections::HashMap<String, FieldPath> = Default::default();
        for (ci, consumer) in consumers.iter().enumerate() {
            let name = consumer.display_name(ci);
            for (i, raw) in consumer.jwt_secrets.iter().flatten().enumerate() {
                let path = root.index(ci).key("jwt_secrets").index(i);
                let key_path = path.key("key");
                let key = match self.dereference(&key_path, raw.key.clone())? {
                    Some(k) if !k.is_empty() => k,
                    _ => return Err(self.invalid(&key_path, "required field missing")),
                };
                if let Some(first) = seen.insert(key.clone(), key_path.clone()) {
                    return Err(self.invalid(
                        &key_path,
                        format!("duplicate jwt key; {first} has the same key"),
                    ));
                }
                let algorithm = raw.algorithm.clone().unwrap_or_else(|| "HS256".to_owned());
                if !JWT_ALGORITHMS.contains(&algorithm.as_str()) {
                    return Err(self.invalid(
                        &path.key("algorithm"),
                        format!(
                            "{algorithm:?} is not supported (supported: {})",
                            JWT_ALGORITHMS.join(", ")
                        ),
                    ));
                }
                let secret = self.dereference(&path.key("secret"), raw.secret.clone())?;
                let public_key =
                    self.dereference(&path.key("rsa_public_key"), raw.rsa_public_key.clone())?;
                if algorithm.starts_with("HS") {
                    if secret.as_deref().is_none_or(str::is_empty) {
                        return Err(self.invalid(
                            &path.key("secret"),
                            format!("required field missing: {algorithm} needs a secret"),
                        ));
                    }
                } else if !public_key.as_deref().is_some_and(|k| {
                    k.contains("-----BEGIN PUBLIC KEY-----")
                        || k.contains("-----BEGIN RSA PUBLIC KEY-----")
                }) {
                    return Err(self.invalid(
                        &path.key("rsa_public_key"),
                        format!("{algorithm} needs rsa_public_key, a PEM public key"),
                    ));
                }
                credentials.push(JwtCredential {
                    consumer: name.clone(),
                    key,
                    algorithm,
                    secret,
                    public_key,
                });
            }
        }
        Ok(credentials)
    }

    fn ip_restriction(
        &self,
        base: &FieldPath,
        raw: IpRestrictionRaw,
    ) -> Result<IpRestrictionConfig, ConfigError> {
        let list = |key: &str, items: Option<Vec<String>>| -> Result<Vec<IpNet>, ConfigError> {
            let path = base.key(key);
            items
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    IpNet::parse(text).ok_or_else(|| {
                        self.invalid(
                            &path.index(i),
                            format!("{text:?} is not an IP address or CIDR block"),
                        )
                    })
                })
                .collect()
        };
        let allow = list("allow", raw.allow)?;
        let deny = list("deny", raw.deny)?;
        if allow.is_empty() && deny.is_empty() {
            return Err(self.invalid(
                base,
                "one of allow or deny must list at least one address (Kong requires it)",
            ));
        }
        Ok(IpRestrictionConfig {
            allow,
            deny,
            status: self.status(&base.key("status"), raw.status, 403)?,
            message: raw
                .message
                .unwrap_or_else(|| "Your IP address is not allowed".to_owned()),
        })
    }

    fn termination(
        &self,
        base: &FieldPath,
        raw: RequestTerminationRaw,
    ) -> Result<RequestTerminationConfig, ConfigError> {
        if raw.echo == Some(true) {
            return Err(self.invalid(
                &base.key("echo"),
                "echo: true is not supported by aigw (it would send the request back)",
            ));
        }
        if raw.message.is_some() && raw.body.is_some() {
            return Err(self.invalid(&base.key("body"), "message and body are mutually exclusive"));
        }
        if raw.content_type.is_some() && raw.body.is_none() {
            return Err(self.invalid(&base.key("content_type"), "content_type needs body"));
        }
        let status = self.status(&base.key("status_code"), raw.status_code, 503)?;
        if let Some(content_type) = &raw.content_type {
            if http::HeaderValue::from_str(content_type).is_err() {
                return Err(self.invalid(
                    &base.key("content_type"),
                    "not a valid Content-Type header value",
                ));
            }
        }
        let message = raw.message.unwrap_or_else(|| {
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Request terminated")
                .to_owned()
        });
        let trigger = match raw.trigger {
            Some(t) if http::HeaderName::try_from(t.as_str()).is_err() => {
                return Err(self.invalid(
                    &base.key("trigger"),
                    format!("{t:?} is not a valid header name"),
                ));
            }
            other => other.map(|t| t.to_ascii_lowercase()),
        };
        Ok(RequestTerminationConfig {
            status,
            message,
            body: raw.body.map(|body| {
                let content_type = raw
                    .content_type
                    .unwrap_or_else(|| "application/json; charset=utf-8".to_owned());
                (content_type, body)
            }),
            trigger,
        })
    }

    fn size_limit(
        &self,
        base: &FieldPath,
        raw: RequestSizeLimitingRaw,
    ) -> Result<RequestSizeLimitConfig, ConfigError> {
        let unit = match raw.size_unit.as_deref() {
            None | Some("megabytes") => 1 << 20,
            Some("kilobytes") => 1 << 10,
            Some("bytes") => 1,
            Some(other) => {
                return Err(self.invalid(
                    &base.key("size_unit"),
                    format!("unknown value {other:?}, expected one of megabytes, kilobytes, bytes"),
                ));
            }
        };
        let size_path = base.key("allowed_payload_size");
        let size = match raw.allowed_payload_size {
            None => 128,
            Some(Int(v)) if v >= 0 => v.unsigned_abs(),
            Some(Int(v)) => {
                return Err(self.invalid(&size_path, format!("must be at least 0, got {v}")));
            }
        };
        let max_bytes = size
            .checked_mul(unit)
            .ok_or_else(|| self.invalid(&size_path, "too large"))?;
        Ok(RequestSizeLimitConfig {
            max_bytes,
            require_content_length: raw.require_content_length.unwrap_or(false),
        })
    }

    fn status(
        &self,
        path: &FieldPath,
        value: Option<Int>,
        default: u16,
    ) -> Result<u16, ConfigError> {
        match value {
            None => Ok(default),
            Some(Int(v)) => u16::try_from(v)
                .ok()
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| {
                    self.invalid(
                        path,
                        format!("must be an HTTP status between 100 and 599, got {v}"),
                    )
                }),
        }
    }

    /// Every consumer's basic-auth credential, hashed; a username may belong to one
    /// credential only, as in Kong. Passwords never appear in a message.
    pub(crate) fn basic_credentials(
        &self,
        consumers: &[ConsumerRaw],
    ) -> Result<Vec<BasicCredential>, ConfigError> {
        let root = FieldPath::root().key("consumers");
        let mut credentials = Vec::new();
        let mut seen: std::collections::HashMap<String, FieldPath> = Default::default();
        for (ci, consumer) in consumers.iter().enumerate() {
            let name = consumer.display_name(ci);
            for (i, raw) in consumer.basicauth_credentials.iter().flatten().enumerate() {
                let path = root.index(ci).key("basicauth_credentials").index(i);
                let username = match &raw.username {
                    Some(u) if !u.is_empty() && !u.contains(':') => u.clone(),
                    Some(_) => {
                        return Err(
                            self.invalid(&path.key("username"), "must not be empty or contain ':'")
                        );
                    }
                    None => {
                        return Err(self.invalid(&path.key("username"), "required field missing"));
                    }
                };
                let password_path = path.key("password");
                let Some(password) = self.dereference(&password_path, raw.password.clone())? else {
                    return Err(self.invalid(&password_path, "required field missing"));
                };
                if let Some(first) = seen.insert(username.clone(), path.key("username")) {
                    return Err(self.invalid(
                        &path.key("username"),
                        format!("duplicate basic-auth username {username:?}; {first} has it"),
                    ));
                }
                credentials.push(BasicCredential {
                    consumer: name.clone(),
                    digest: BasicCredential::digest(username.as_bytes(), password.as_bytes()),
                });
            }
        }
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        IpNet::parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("{text} is an address"))
    }

    #[test]
    fn cidr_blocks_match_their_addresses_in_both_families() {
        assert!(net("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(net("192.168.1.7/24").contains(ip("192.168.1.200")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!net("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(net("::1").contains(ip("::1")));
        assert!(net("::/0").contains(ip("fe80::1")));
        // A v4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        assert!(net("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert!(!net("10.0.0.0/8").contains(ip("::1")));
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0", "host", "10.0.0.0/x"] {
            assert!(IpNet::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn deny_wins_over_allow() {
        let config = IpRestrictionConfig {
            allow: vec![net("10.0.0.0/8")],
            deny: vec![net("10.0.0.5")],
            status: 403,
            message: String::new(),
        };
        assert!(config.allows(ip("10.0.0.4")));
        assert!(!config.allows(ip("10.0.0.5")));
        assert!(!config.allows(ip("192.168.0.1")));
    }
}
