//! Kong's `key-auth` plugin and the `consumers[].keyauth_credentials[]` it checks.
//!
//! A route is protected when a key-auth plugin applies to it (its own, its service's, or a
//! global one, the most specific winning, as for ai-proxy-advanced). Every consumer's key
//! opens every protected route unless an `acl` plugin there scopes it by the consumer's groups.

use std::collections::HashMap;
use std::fmt;

use crate::ConfigError;
use crate::path::FieldPath;
use crate::raw::{ConsumerRaw, KeyAuthRaw, PluginRaw};
use crate::validate::Cx;

/// The plugin name, as Kong spells it.
pub(crate) const KEY_AUTH: &str = "key-auth";

/// A key-auth plugin's config with Kong's defaults applied, plus the keys it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAuthConfig {
    /// `key_names` (default `[apikey]`): the headers (and query parameters) carrying the
    /// key. `Authorization: Bearer <key>` is accepted as well, as OpenAI clients send it.
    pub key_names: Vec<String>,
    /// `key_in_header` (default true).
    pub key_in_header: bool,
    /// `key_in_query` (default true).
    pub key_in_query: bool,
    /// Every consumer's key, from `consumers[].keyauth_credentials[].key`.
    pub credentials: Vec<Credential>,
}

/// One consumer key. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The consumer's `username`, else `custom_id`, else `id`, else `consumers[i]`.
    pub consumer: String,
    /// The key itself (secret).
    pub key: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("consumer", &self.consumer)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Cx<'_> {
    /// Every consumer key in the file; a key may belong to one consumer only, as in Kong.
    pub(crate) fn consumer_keys(
        &self,
        consumers: &[ConsumerRaw],
    ) -> Result<Vec<Credential>, ConfigError> {
        let root = FieldPath::root().key("consumers");
        let mut credentials: Vec<Credential> = Vec::new();
        let mut seen: HashMap<String, FieldPath> = HashMap::new();
        for (ci, consumer) in consumers.iter().enumerate() {
            let path = root.index(ci);
            let name = consumer.display_name(ci);
            for (ki, credential) in consumer.keyauth_credentials.iter().flatten().enumerate() {
                let key_path = path.key("keyauth_credentials").index(ki).key("key");
                let key = self.dereference(&key_path, credential.key.clone())?;
                let Some(key) = key else {
                    return Err(self.invalid(&key_path, "required field missing"));
                };
                if key.is_empty() {
                    return Err(self.invalid(&key_path, "must not be empty"));
                }
                // The message names where the first copy is, never the key.
                if let Some(first) = seen.insert(key.clone(), key_path.clone()) {
                    return Err(self.invalid(
                        &key_path,
                        format!("duplicate key-auth key; {first} has the same key"),
                    ));
                }
                credentials.push(Credential {
                    consumer: name.clone(),
                    key,
                });
            }
        }
        Ok(credentials)
    }

    /// The config of an enabled key-auth plugin, without its keys (the caller adds the
    /// consumers'); `None`, with a warning, when the plugin will not run.
    pub(crate) fn key_auth_plugin(
        &mut self,
        plugin: &PluginRaw,
        path: &FieldPath,
    ) -> Result<Option<KeyAuthConfig>, ConfigError> {
        if plugin.enabled == Some(false) {
            self.warn(path, "key-auth is disabled (enabled: false); ignored");
            return Ok(None);
        }
        if plugin.consumer.is_some() || plugin.consumer_group.is_some() {
            self.warn(
                path,
                "key-auth scoped to a consumer or consumer group has nothing to check; ignored",
            );
            return Ok(None);
        }
        let config_path = path.key("config");
        let raw: KeyAuthRaw = match &plugin.config {
            None => KeyAuthRaw::default(),
            Some(value) => value
                .deserialize()
                .map_err(|err| self.figment_error(&config_path, err))?,
        };
        if raw.anonymous.is_some() {
            // Failing closed: a request without a key is refused, never let through.
            self.warn(
                &config_path.key("anonymous"),
                "anonymous consumers are not supported by aigw; requests without a key get 401",
            );
        }
        if raw.key_in_body == Some(true) {
            self.warn(
                &config_path.key("key_in_body"),
                "keys in the request body are not read by aigw; send them in a header",
            );
        }
        let names_path = config_path.key("key_names");
        let key_names = raw.key_names.unwrap_or_else(|| vec!["apikey".to_owned()]);
        if key_names.is_empty() {
            return Err(self.invalid(&names_path, "at least one key name is required"));
        }
        for (i, name) in key_names.iter().enumerate() {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(self.invalid(
                    &names_path.index(i),
                    format!("{name:?} is not a valid header name (letters, digits, - and _)"),
                ));
            }
        }
        Ok(Some(KeyAuthConfig {
            key_names: key_names
                .into_iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
            key_in_header: raw.key_in_header.unwrap_or(true),
            key_in_query: raw.key_in_query.unwrap_or(true),
            credentials: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::parse_deck;

    fn deck(key_auth_at: &str, consumers: &str) -> String {
        let route_plugin = if key_auth_at == "route" {
            "    plugins:\n    - name: key-auth\n      config: {key_names: [X-Api-Key]}\n"
        } else {
            ""
        };
        let service_plugin = if key_auth_at == "service" {
            "  plugins:\n  - name: key-auth\n"
        } else {
            ""
        };
        format!(
            r#"_format_version: "3.0"
{consumers}
services:
- name: svc
{service_plugin}  routes:
  - name: a
    paths: [/a]
{route_plugin}  - name: b
    paths: [/b]
plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - model: {{provider: bedrock, name: m}}
      route_type: llm/v1/chat
"#
        )
    }

    const ALICE: &str = "consumers:\n- username: alice\n  keyauth_credentials:\n  - key: k-alice\n- custom_id: bob\n  keyauth_credentials:\n  - key: k-bob\n";

    #[test]
    fn route_plugin_protects_only_its_route_with_every_consumer_key() {
        let config = parse_deck("t.yaml", &deck("route", ALICE)).expect("valid");
        let a = config.routes[0]
            .key_auth
            .as_ref()
            .expect("route a protected");
        assert_eq!(a.key_names, ["x-api-key"]);
        let owners: Vec<_> = a.credentials.iter().map(|c| c.consumer.as_str()).collect();
        assert_eq!(owners, ["alice", "bob"]);
        assert!(config.routes[1].key_auth.is_none());
        assert!(
            !config.warnings.iter().any(|w| w.contains("key-auth")),
            "key-auth is supported, not warned about: {:?}",
            config.warnings
        );
    }

    #[test]
    fn service_plugin_protects_its_routes_with_kong_defaults() {
        let config = parse_deck("t.yaml", &deck("service", ALICE)).expect("valid");
        for route in &config.routes {
            let auth = route.key_auth.as_ref().expect("protected");
            assert_eq!(auth.key_names, ["apikey"]);
            assert!(auth.key_in_header && auth.key_in_query);
        }
    }

    #[test]
    fn keys_never_show_in_debug_warnings_or_errors() {
        let config = parse_deck("t.yaml", &deck("route", ALICE)).expect("valid");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("k-alice") && !shown.contains("k-bob"),
            "{shown}"
        );

        let twice = "consumers:\n- username: a\n  keyauth_credentials:\n  - key: same-key\n- username: b\n  keyauth_credentials:\n  - key: same-key\n";
        let error = parse_deck("t.yaml", &deck("route", twice))
            .expect_err("duplicate keys are refused")
            .to_string();
        assert!(
            error.contains("consumers[1].keyauth_credentials[0].key"),
            "{error}"
        );
        assert!(!error.contains("same-key"), "{error}");
    }

    #[test]
    fn key_auth_without_consumers_warns_that_everything_is_refused() {
        let config = parse_deck("t.yaml", &deck("route", "")).expect("valid");
        assert!(config.routes[0].key_auth.is_some());
        assert!(
            config.warnings.iter().any(|w| w.contains("every request")),
            "{:?}",
            config.warnings
        );
    }
}
