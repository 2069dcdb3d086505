//! Kong's `key-auth` plugin and the `consumers[].keyauth_credentials[]` it checks.
//!
//! A route is protected when a key-auth plugin applies to it (its own, its service's, or a
//! global one, the most specific winning, as for ai-proxy-advanced). Every consumer's key
//! opens every protected route unless an `acl` plugin there scopes it by the consumer's groups.
//!
//! aigw's extension `consumers[].aigw_aws_credentials[]` gives a consumer AWS-style key
//! pairs: on protected `llm_format: bedrock` routes a request SigV4-signed with such a pair
//! is let in as that consumer, so AWS SDKs need no extra key header.

use std::collections::HashMap;
use std::fmt;

use crate::ConfigError;
use crate::path::FieldPath;
use crate::raw::{ConsumerRaw, KeyAuthRaw, PluginRaw};
use crate::validate::Cx;

/// The plugin name, as Kong spells it.
pub(crate) const KEY_AUTH: &str = "key-auth";

/// aigw's consumer field for AWS-style key pairs; the `aigw_` prefix marks it as no Kong
/// field.
pub(crate) const AWS_CREDENTIALS: &str = "aigw_aws_credentials";

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
    /// Every consumer's AWS-style key pair, from `consumers[].aigw_aws_credentials[]`:
    /// SigV4 signatures made with them are verified on `llm_format: bedrock` routes.
    pub aws_credentials: Vec<AwsCredential>,
}

/// One consumer's AWS-style key pair (aigw's `aigw_aws_credentials` extension). Its
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredential {
    /// The consumer's name, as for [`Credential::consumer`].
    pub consumer: String,
    /// `access_key_id`: what a SigV4 `Credential=` names; not secret, unique in the file.
    pub access_key_id: String,
    /// `secret_access_key` (secret).
    pub secret_access_key: String,
}

impl fmt::Debug for AwsCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredential")
            .field("consumer", &self.consumer)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
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

    /// Every consumer's `aigw_aws_credentials` pair; an access key id may belong to one
    /// pair only, since it alone picks the secret a signature is checked with.
    pub(crate) fn consumer_aws_credentials(
        &self,
        consumers: &[ConsumerRaw],
    ) -> Result<Vec<AwsCredential>, ConfigError> {
        let root = FieldPath::root().key("consumers");
        let mut pairs: Vec<AwsCredential> = Vec::new();
        let mut seen: HashMap<String, FieldPath> = HashMap::new();
        for (ci, consumer) in consumers.iter().enumerate() {
            let name = consumer.display_name(ci);
            for (i, raw) in consumer.aigw_aws_credentials.iter().flatten().enumerate() {
                let path = root.index(ci).key(AWS_CREDENTIALS).index(i);
                let id_path = path.key("access_key_id");
                let secret_path = path.key("secret_access_key");
                let required = |path: &FieldPath, value: Option<String>| match value {
                    None => Err(self.invalid(path, "required field missing")),
                    Some(v) if v.is_empty() => Err(self.invalid(path, "must not be empty")),
                    Some(v) => Ok(v),
                };
                let access_key_id = required(
                    &id_path,
                    self.dereference(&id_path, raw.access_key_id.clone())?,
                )?;
                // It is read back out of `Credential=<id>/<date>/…`, and HTTP header values
                // are visible ASCII.
                if !access_key_id
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'/' && b != b',')
                {
                    return Err(self.invalid(
                        &id_path,
                        "must be visible ASCII without '/' or ',' (a SigV4 credential names it)",
                    ));
                }
                let secret_access_key = required(
                    &secret_path,
                    self.dereference(&secret_path, raw.secret_access_key.clone())?,
                )?;
                if let Some(first) = seen.insert(access_key_id.clone(), id_path.clone()) {
                    return Err(self.invalid(
                        &id_path,
                        format!("duplicate access key id {access_key_id:?}; {first} has it too"),
                    ));
                }
                pairs.push(AwsCredential {
                    consumer: name.clone(),
                    access_key_id,
                    secret_access_key,
                });
            }
        }
        Ok(pairs)
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
            aws_credentials: Vec::new(),
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

    /// A key-auth protected `llm_format: bedrock` route, and `consumers` before it.
    fn bedrock_deck(consumers: &str) -> String {
        format!(
            r#"_format_version: "3.0"
{consumers}
services:
- name: svc
  routes:
  - name: a
    paths: [/a]
    plugins:
    - name: key-auth
    - name: ai-proxy-advanced
      config:
        llm_format: bedrock
        targets:
        - model: {{provider: bedrock, name: m}}
          route_type: llm/v1/chat
"#
        )
    }

    const PAIRS: &str = "consumers:\n- username: alice\n  aigw_aws_credentials:\n  - access_key_id: AKIDALICE\n    secret_access_key: alice-secret\n- username: bob\n  keyauth_credentials:\n  - key: k-bob\n  aigw_aws_credentials:\n  - {access_key_id: AKIDBOB, secret_access_key: bob-secret}\n";

    #[test]
    fn aws_key_pairs_reach_protected_routes_and_their_secrets_never_show() {
        let config = parse_deck("t.yaml", &bedrock_deck(PAIRS)).expect("valid");
        let auth = config.routes[0].key_auth.as_ref().expect("protected");
        let pairs: Vec<_> = auth
            .aws_credentials
            .iter()
            .map(|p| (p.consumer.as_str(), p.access_key_id.as_str()))
            .collect();
        assert_eq!(pairs, [("alice", "AKIDALICE"), ("bob", "AKIDBOB")]);
        assert_eq!(auth.aws_credentials[1].secret_access_key, "bob-secret");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("alice-secret") && !shown.contains("bob-secret"),
            "{shown}"
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn a_bad_aws_key_pair_is_refused_at_its_line_without_its_secret() {
        let refused = |consumers: &str| {
            parse_deck("t.yaml", &bedrock_deck(consumers))
                .expect_err("refused")
                .to_string()
        };
        let error = refused(&PAIRS.replace("    secret_access_key: alice-secret\n", ""));
        assert_eq!(
            error,
            "t.yaml:5:5: consumers[0].aigw_aws_credentials[0].secret_access_key: required field missing"
        );
        let error = refused(&PAIRS.replace("access_key_id: AKIDALICE", "access_key_id: \"\""));
        assert!(
            error.starts_with(
                "t.yaml:5:20: consumers[0].aigw_aws_credentials[0].access_key_id: must not be empty"
            ),
            "{error}"
        );
        let error =
            refused(&PAIRS.replace("secret_access_key: bob-secret", "secret_access_key: ''"));
        assert!(
            error.contains(
                "consumers[1].aigw_aws_credentials[0].secret_access_key: must not be empty"
            ),
            "{error}"
        );
        let error = refused(&PAIRS.replace("AKIDBOB", "AKIDALICE"));
        assert!(
            error.starts_with("t.yaml:11:21:")
                && error.contains("consumers[1].aigw_aws_credentials[0].access_key_id: duplicate access key id \"AKIDALICE\"; consumers[0].aigw_aws_credentials[0].access_key_id has it too"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
        let error = refused(&PAIRS.replace("AKIDBOB", "AKID/BOB"));
        assert!(error.contains("without '/'"), "{error}");
        let error = refused(&PAIRS.replace(
            "    secret_access_key: alice-secret",
            "    secret_key: alice-secret",
        ));
        assert!(
            error.starts_with(
                "t.yaml:6:17: consumers[0].aigw_aws_credentials[0].secret_key: unknown field: found `secret_key`"
            ),
            "{error}"
        );
        assert!(!error.contains("alice-secret"), "{error}");
    }

    #[test]
    fn aws_key_pairs_without_a_protected_bedrock_route_are_warned_about() {
        let deck = bedrock_deck(PAIRS).replace("        llm_format: bedrock\n", "");
        let config = parse_deck("t.yaml", &deck).expect("valid");
        assert!(
            config.warnings.iter().any(|w| w.starts_with("t.yaml:5:3: consumers[0].aigw_aws_credentials: no route has both key-auth and llm_format: bedrock")),
            "{:?}",
            config.warnings
        );
    }
}
