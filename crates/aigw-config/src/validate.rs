//! Turns the raw decK mirror into the runtime [`GatewayConfig`], once, at start.
//!
//! Every error built here names the field's Kong path and, through [`locate`], the line
//! and column where the file has it.

use std::collections::HashMap;
use std::fmt::Display;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Yaml};
use figment::value::Value;

use crate::enums::ROUTE_TYPES;
use crate::key_auth::{KEY_AUTH, KeyAuthConfig};
use crate::locate::{DocumentError, Root, check_document, from_yaml, locate, locate_key};
use crate::model::{
    AiProxyConfig, BalancerConfig, BedrockOptions, GatewayConfig, ModelConfig, ModelOptions,
    RouteConfig, TargetAuth, TargetConfig, TargetLogging,
};
use crate::path::FieldPath;
use crate::raw::{
    AiProxyRaw, AuthRaw, BalancerRaw, DeckRaw, EntityRef, Int, Num, OptionsRaw, PluginRaw,
    RouteRaw, ServiceRaw, TargetRaw,
};
use crate::{ConfigError, Location, env, schema};

/// The plugin aigw implements.
const AI_PROXY_ADVANCED: &str = "ai-proxy-advanced";

/// decK `_format_version`s we read: "3.0" (Kong 3.x) and "1.1" (Kong 2.x). Paths mean
/// the same in both for aigw, which takes every path literally.
const FORMAT_VERSIONS: &[&str] = &["3.0", "1.1"];

/// Kong's bound for its millisecond timeouts (`between = { 0, math.pow(2, 31) - 2 }`).
const MAX_MILLIS: u32 = 2_147_483_646;

pub(crate) fn parse(file: &str, yaml: &str) -> Result<GatewayConfig, ConfigError> {
    let mut cx = Cx {
        file,
        yaml,
        warnings: Vec::new(),
        unsupported: Vec::new(),
        located_warnings: 0,
        key_auth: Vec::new(),
    };
    cx.check_yaml()?;
    let mut tree: Value = Figment::from(Yaml::string(yaml))
        .extract()
        .map_err(|err| cx.figment_error(&FieldPath::root(), err))?;
    env::resolve_tree(&mut tree, &FieldPath::root())
        .map_err(|(path, message)| cx.invalid(&path, message))?;
    let deck: DeckRaw = Figment::from(Serialized::defaults(tree))
        .extract()
        .map_err(|err| cx.figment_error(&FieldPath::root(), err))?;
    cx.check_format_version(&deck)?;
    let routes = cx.build(&deck)?;
    if routes.is_empty() {
        return Err(ConfigError::NoAiRoutes {
            file: file.to_owned(),
        });
    }
    Ok(GatewayConfig {
        routes,
        warnings: cx.warnings,
    })
}

/// Locating re-reads the file, so a file with thousands of warnings (a big Kong file full
/// of other plugins and routes) would take quadratic time; past this many, warnings keep
/// their path but not their line.
const LOCATED_WARNINGS: usize = 100;

/// The file being validated, and what has been noticed so far.
pub(crate) struct Cx<'a> {
    file: &'a str,
    yaml: &'a str,
    warnings: Vec<String>,
    /// Other plugins by name: where the first is, and how many there are.
    unsupported: Vec<(String, FieldPath, usize)>,
    located_warnings: usize,
    /// Enabled key-auth plugins and what they are attached to.
    key_auth: Vec<KeyAuthCandidate>,
}

/// An enabled key-auth plugin and what it is attached to.
struct KeyAuthCandidate {
    scope: Scope,
    route: Option<usize>,
    service: Option<usize>,
    path: FieldPath,
    config: KeyAuthConfig,
}

/// How specific a plugin's attachment is; Kong runs the most specific one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Scope {
    Global,
    Service,
    Route,
    RouteAndService,
}

/// An enabled ai-proxy-advanced plugin and what it is attached to.
struct Candidate {
    scope: Scope,
    route: Option<usize>,
    service: Option<usize>,
    path: FieldPath,
    config: AiProxyConfig,
}

/// A plugin (of any name) and what it is attached to, before validation.
struct Attached<'d> {
    plugin: &'d PluginRaw,
    path: FieldPath,
    scope: Scope,
    route: Option<usize>,
    service: Option<usize>,
}

/// A route wherever it was declared.
struct RouteEntry<'d> {
    path: FieldPath,
    raw: &'d RouteRaw,
    name: String,
    service: Option<usize>,
}

impl Cx<'_> {
    fn location(&self, path: &FieldPath) -> Option<Location> {
        locate(self.yaml, path)
    }

    pub(crate) fn invalid(&self, path: &FieldPath, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            location: self.location(path),
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn warn(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.push_warning(path, message.into(), false);
    }

    /// A warning about a key that should not be there, located at the key itself.
    fn warn_key(&mut self, path: &FieldPath, message: &str) {
        self.push_warning(path, message.to_owned(), true);
    }

    fn push_warning(&mut self, path: &FieldPath, message: String, at_key: bool) {
        let location = if self.located_warnings < LOCATED_WARNINGS {
            self.located_warnings += 1;
            if at_key {
                locate_key(self.yaml, path)
            } else {
                locate(self.yaml, path)
            }
        } else {
            None
        };
        let line = ConfigError::Invalid {
            file: self.file.to_owned(),
            location,
            path: path.to_string(),
            message,
        }
        .to_string();
        self.warnings.push(line);
    }

    /// Syntax, duplicate keys, and the document's shape, with serde_yaml's positions,
    /// before figment (which keeps no positions and lets a duplicate key silently win).
    fn check_yaml(&self) -> Result<(), ConfigError> {
        match check_document(self.yaml) {
            Ok(Root::Mapping) => Ok(()),
            Ok(Root::Empty) => Err(ConfigError::Invalid {
                file: self.file.to_owned(),
                location: None,
                path: String::new(),
                message: "the file is empty; expected a decK file with `_format_version` and `services`".to_owned(),
            }),
            Ok(Root::Other(kind)) => Err(self.invalid(
                &FieldPath::root(),
                format!("expected a mapping (a decK file with `_format_version` and `services`), found {kind}"),
            )),
            Err(DocumentError::DuplicateKey(path, location)) => Err(ConfigError::Invalid {
                file: self.file.to_owned(),
                location,
                path: path.to_string(),
                message: "duplicate key; each key may appear once in a mapping".to_owned(),
            }),
            Err(DocumentError::Syntax(err)) => {
                let location = err.location().map_or(Location { line: 1, column: 1 }, from_yaml);
                // serde_yaml appends the position to its message; we lead with it instead.
                let suffix = format!(" at line {} column {}", location.line, location.column);
                let message = err.to_string().replacen(&suffix, "", 1);
                Err(ConfigError::Syntax {
                    file: self.file.to_owned(),
                    location,
                    message,
                })
            }
        }
    }

    /// A figment extraction error, as a located error on `base` + the error's own path.
    pub(crate) fn figment_error(&self, base: &FieldPath, err: figment::Error) -> ConfigError {
        let path = base.join_figment(&err.path);
        match &err.kind {
            figment::error::Kind::MissingField(field) => {
                self.invalid(&path.key(field), "required field missing")
            }
            kind => self.invalid(&path, kind.to_string()),
        }
    }

    fn check_format_version(&self, deck: &DeckRaw) -> Result<(), ConfigError> {
        let path = FieldPath::root().key("_format_version");
        let expected = FORMAT_VERSIONS
            .iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
            .join(" or ");
        match &deck.format_version {
            None => Err(self.invalid(
                &path,
                format!("required field missing; expected {expected}"),
            )),
            Some(v) if FORMAT_VERSIONS.contains(&v.0.as_str()) => Ok(()),
            Some(v) => Err(self.invalid(
                &path,
                format!(
                    "unsupported decK format version {:?}, expected {expected}",
                    v.0
                ),
            )),
        }
    }

    fn build(&mut self, deck: &DeckRaw) -> Result<Vec<RouteConfig>, ConfigError> {
        let root = FieldPath::root();
        let services: &[ServiceRaw] = deck.services.as_deref().unwrap_or_default();
        let routes = self.collect_routes(deck, services)?;
        let candidates = self.collect_plugins(deck, services, &routes)?;
        let credentials = self.consumer_keys(deck.consumers.as_deref().unwrap_or_default())?;
        if credentials.is_empty() && !self.key_auth.is_empty() {
            let first = self.key_auth[0].path.clone();
            self.warn(
                &first,
                "key-auth is on but no consumer has keyauth_credentials; every request to its routes gets 401",
            );
        }

        let mut served = Vec::new();
        for (index, route) in routes.iter().enumerate() {
            if let Some(si) = route.service {
                if services[si].enabled == Some(false) {
                    continue;
                }
            }
            let chosen = candidates
                .iter()
                .filter(|c| applies(c.scope, c.route, c.service, index, route.service))
                .max_by_key(|c| c.scope);
            let Some(chosen) = chosen else {
                self.warn(
                    &route.path,
                    format!(
                        "route {} has no ai-proxy-advanced plugin; not served",
                        route.name
                    ),
                );
                continue;
            };
            let paths = self.route_paths(route)?;
            let key_auth = self
                .key_auth
                .iter()
                .filter(|c| applies(c.scope, c.route, c.service, index, route.service))
                .max_by_key(|c| c.scope)
                .map(|c| KeyAuthConfig {
                    credentials: credentials.clone(),
                    ..c.config.clone()
                });
            served.push((
                route,
                RouteConfig {
                    name: route.name.clone(),
                    service: route.service.and_then(|si| services[si].name.clone()),
                    paths,
                    ai: chosen.config.clone(),
                    key_auth,
                },
            ));
        }

        self.check_unique(&served)?;
        for (si, service) in services.iter().enumerate() {
            if service.enabled == Some(false) {
                self.warn(
                    &root.key("services").index(si),
                    "service is disabled (enabled: false); its routes are not served",
                );
            }
        }
        Ok(served.into_iter().map(|(_, route)| route).collect())
    }

    fn collect_routes<'d>(
        &self,
        deck: &'d DeckRaw,
        services: &'d [ServiceRaw],
    ) -> Result<Vec<RouteEntry<'d>>, ConfigError> {
        let root = FieldPath::root();
        let mut routes = Vec::new();
        for (si, service) in services.iter().enumerate() {
            let service_path = root.key("services").index(si);
            for (ri, raw) in service.routes.iter().flatten().enumerate() {
                let owner = service
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("services[{si}]"));
                routes.push(RouteEntry {
                    path: service_path.key("routes").index(ri),
                    raw,
                    name: raw
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("{owner}.routes[{ri}]")),
                    service: Some(si),
                });
            }
        }
        for (ri, raw) in deck.routes.iter().flatten().enumerate() {
            let path = root.key("routes").index(ri);
            let service = match &raw.service {
                Some(reference) => {
                    Some(self.find_service(services, reference, &path.key("service"))?)
                }
                None => None,
            };
            routes.push(RouteEntry {
                path,
                raw,
                name: raw.name.clone().unwrap_or_else(|| format!("routes[{ri}]")),
                service,
            });
        }
        Ok(routes)
    }

    fn find_service(
        &self,
        services: &[ServiceRaw],
        reference: &EntityRef,
        path: &FieldPath,
    ) -> Result<usize, ConfigError> {
        services
            .iter()
            .position(|s| {
                s.name.as_deref() == Some(reference.0.as_str())
                    || s.id.as_deref() == Some(reference.0.as_str())
            })
            .ok_or_else(|| {
                self.invalid(
                    path,
                    format!("no service named {:?} in this file", reference.0),
                )
            })
    }

    fn find_route(
        &self,
        routes: &[RouteEntry<'_>],
        reference: &EntityRef,
        path: &FieldPath,
    ) -> Result<usize, ConfigError> {
        routes
            .iter()
            .position(|r| {
                r.raw.name.as_deref() == Some(reference.0.as_str())
                    || r.raw.id.as_deref() == Some(reference.0.as_str())
            })
            .ok_or_else(|| {
                self.invalid(
                    path,
                    format!("no route named {:?} in this file", reference.0),
                )
            })
    }

    /// Every enabled ai-proxy-advanced plugin, validated, with its attachment; warnings
    /// for every other plugin.
    fn collect_plugins(
        &mut self,
        deck: &DeckRaw,
        services: &[ServiceRaw],
        routes: &[RouteEntry<'_>],
    ) -> Result<Vec<Candidate>, ConfigError> {
        let root = FieldPath::root();
        let mut found: Vec<Attached<'_>> = Vec::new();
        for (si, service) in services.iter().enumerate() {
            let path = root.key("services").index(si).key("plugins");
            for (pi, plugin) in service.plugins.iter().flatten().enumerate() {
                found.push(Attached {
                    plugin,
                    path: path.index(pi),
                    scope: Scope::Service,
                    route: None,
                    service: Some(si),
                });
            }
        }
        for (index, route) in routes.iter().enumerate() {
            let path = route.path.key("plugins");
            for (pi, plugin) in route.raw.plugins.iter().flatten().enumerate() {
                found.push(Attached {
                    plugin,
                    path: path.index(pi),
                    scope: Scope::Route,
                    route: Some(index),
                    service: None,
                });
            }
        }
        for (pi, plugin) in deck.plugins.iter().flatten().enumerate() {
            let path = root.key("plugins").index(pi);
            let route = match &plugin.route {
                Some(r) => Some(self.find_route(routes, r, &path.key("route"))?),
                None => None,
            };
            let service = match &plugin.service {
                Some(s) => Some(self.find_service(services, s, &path.key("service"))?),
                None => None,
            };
            let scope = match (route, service) {
                (Some(_), Some(_)) => Scope::RouteAndService,
                (Some(_), None) => Scope::Route,
                (None, Some(_)) => Scope::Service,
                (None, None) => Scope::Global,
            };
            found.push(Attached {
                plugin,
                path,
                scope,
                route,
                service,
            });
        }

        let mut candidates: Vec<Candidate> = Vec::new();
        for Attached {
            plugin,
            path,
            scope,
            route,
            service,
        } in found
        {
            if plugin.name.as_deref() == Some(KEY_AUTH) {
                if let Some(config) = self.key_auth_plugin(plugin, &path)? {
                    self.key_auth.push(KeyAuthCandidate {
                        scope,
                        route,
                        service,
                        path,
                        config,
                    });
                }
                continue;
            }
            let Some(config) = self.plugin_config(plugin, &path)? else {
                continue;
            };
            if let Some(first) = candidates
                .iter()
                .find(|c| c.scope == scope && c.route == route && c.service == service)
            {
                return Err(self.invalid(
                    &path,
                    format!(
                        "a second ai-proxy-advanced plugin on the same {}; the first is {}",
                        scope_name(scope),
                        first.path
                    ),
                ));
            }
            if let (Some(ri), Some(si)) = (route, service) {
                if routes[ri].service != Some(si) {
                    self.warn(
                        &path,
                        format!(
                            "route {} does not belong to this service; the plugin applies to no route",
                            routes[ri].name
                        ),
                    );
                }
            }
            candidates.push(Candidate {
                scope,
                route,
                service,
                path,
                config,
            });
        }
        // One line per plugin name, not per instance: a Kong file may carry hundreds.
        for (name, first, count) in std::mem::take(&mut self.unsupported) {
            let more = match count {
                1 => String::new(),
                n => format!(" ({n} instances; this is the first)"),
            };
            self.warn(
                &first,
                format!("plugin {name:?} is not supported by aigw; ignored{more}"),
            );
        }
        Ok(candidates)
    }

    /// The validated config of an enabled ai-proxy-advanced plugin; `None` (with a
    /// warning) for any plugin aigw will not run.
    fn plugin_config(
        &mut self,
        plugin: &PluginRaw,
        path: &FieldPath,
    ) -> Result<Option<AiProxyConfig>, ConfigError> {
        let Some(name) = plugin.name.as_deref() else {
            return Err(self.invalid(&path.key("name"), "required field missing"));
        };
        if name != AI_PROXY_ADVANCED {
            match self.unsupported.iter_mut().find(|(n, _, _)| n == name) {
                Some((_, _, count)) => *count += 1,
                None => self.unsupported.push((name.to_owned(), path.clone(), 1)),
            }
            return Ok(None);
        }
        if plugin.enabled == Some(false) {
            self.warn(
                path,
                "ai-proxy-advanced is disabled (enabled: false); ignored",
            );
            return Ok(None);
        }
        if plugin.consumer.is_some() || plugin.consumer_group.is_some() {
            self.warn(
                path,
                "ai-proxy-advanced scoped to a consumer or consumer group; aigw has no consumers; ignored",
            );
            return Ok(None);
        }
        let config_path = path.key("config");
        let Some(value) = &plugin.config else {
            return Err(self.invalid(&config_path, "required field missing"));
        };
        let raw: AiProxyRaw = value
            .deserialize()
            .map_err(|err| self.figment_error(&config_path, err))?;
        let mut unknown = Vec::new();
        schema::unknown_keys(value, &schema::AI_PROXY_ADVANCED, &mut |at, key| {
            unknown.push(config_path.join_figment(at).key(key));
        });
        for field in unknown {
            self.warn_key(
                &field,
                "unknown field, ignored (not an ai-proxy-advanced field aigw knows)",
            );
        }
        let config = self.ai_config(&config_path, raw, plugin.instance_name.clone())?;
        Ok(Some(config))
    }

    fn ai_config(
        &mut self,
        base: &FieldPath,
        raw: AiProxyRaw,
        instance_name: Option<String>,
    ) -> Result<AiProxyConfig, ConfigError> {
        if let Some(format) = raw.llm_format.as_deref() {
            if format != "openai" {
                self.warn(
                    &base.key("llm_format"),
                    format!("llm_format {format:?} is not supported; aigw speaks the OpenAI format to clients"),
                );
            }
        }
        let balancer = self.balancer(&base.key("balancer"), raw.balancer.unwrap_or_default())?;
        let targets_path = base.key("targets");
        let raw_targets = raw.targets.unwrap_or_default();
        if raw_targets.is_empty() {
            return Err(self.invalid(&targets_path, "at least one target is required"));
        }
        let targets = raw_targets
            .into_iter()
            .enumerate()
            .map(|(i, t)| self.target(&targets_path.index(i), t))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, target) in targets.iter().enumerate() {
            if target.auth.allow_override {
                self.warn(
                    &targets_path.index(i).key("auth").key("allow_override"),
                    "allow_override: true is not supported; clients can never supply their own upstream credentials",
                );
            }
        }
        let max_request_body_size = self.ranged(
            &base.key("max_request_body_size"),
            raw.max_request_body_size,
            8192,
            1,
            u32::MAX,
        )?;
        Ok(AiProxyConfig {
            instance_name,
            balancer,
            targets,
            response_streaming: raw.response_streaming.unwrap_or_default(),
            model_name_header: raw.model_name_header.unwrap_or(true),
            max_request_body_size: usize::try_from(max_request_body_size).unwrap_or(usize::MAX),
        })
    }

    fn balancer(&self, base: &FieldPath, raw: BalancerRaw) -> Result<BalancerConfig, ConfigError> {
        let kong = BalancerConfig::default();
        let hash_on_header = match raw.hash_on_header {
            Some(h) if h.trim().is_empty() => {
                return Err(self.invalid(&base.key("hash_on_header"), "must not be empty"));
            }
            Some(h) => h,
            None => kong.hash_on_header,
        };
        Ok(BalancerConfig {
            algorithm: raw.algorithm.unwrap_or(kong.algorithm),
            tokens_count_strategy: raw
                .tokens_count_strategy
                .unwrap_or(kong.tokens_count_strategy),
            latency_strategy: raw.latency_strategy.unwrap_or(kong.latency_strategy),
            hash_on_header,
            slots: self.ranged(&base.key("slots"), raw.slots, kong.slots, 10, 65_536)?,
            retries: self.ranged(&base.key("retries"), raw.retries, kong.retries, 0, 32_767)?,
            connect_timeout: self.millis(
                &base.key("connect_timeout"),
                raw.connect_timeout,
                kong.connect_timeout,
            )?,
            write_timeout: self.millis(
                &base.key("write_timeout"),
                raw.write_timeout,
                kong.write_timeout,
            )?,
            read_timeout: self.millis(
                &base.key("read_timeout"),
                raw.read_timeout,
                kong.read_timeout,
            )?,
            failover_criteria: raw.failover_criteria.unwrap_or(kong.failover_criteria),
            max_fails: self.ranged(
                &base.key("max_fails"),
                raw.max_fails,
                kong.max_fails,
                0,
                32_767,
            )?,
            fail_timeout: self.millis(
                &base.key("fail_timeout"),
                raw.fail_timeout,
                kong.fail_timeout,
            )?,
        })
    }

    fn target(&self, base: &FieldPath, raw: TargetRaw) -> Result<TargetConfig, ConfigError> {
        let model_path = base.key("model");
        let Some(model) = raw.model else {
            return Err(self.invalid(&model_path, "required field missing"));
        };
        let Some(provider) = model.provider else {
            return Err(self.invalid(&model_path.key("provider"), "required field missing"));
        };
        let name = match model.name {
            None => return Err(self.invalid(&model_path.key("name"), "required field missing")),
            Some(n) if n.trim().is_empty() => {
                return Err(self.invalid(&model_path.key("name"), "must not be empty"));
            }
            Some(n) => n,
        };
        let options = self.options(
            &model_path.key("options"),
            model.options.unwrap_or_default(),
        )?;

        let route_type_path = base.key("route_type");
        let route_type = match raw.route_type {
            None => return Err(self.invalid(&route_type_path, "required field missing")),
            Some(rt) if ROUTE_TYPES.contains(&rt.as_str()) => rt,
            Some(rt) => {
                return Err(self.invalid(
                    &route_type_path,
                    format!(
                        "unknown value {rt:?}, expected one of {}",
                        ROUTE_TYPES.join(", ")
                    ),
                ));
            }
        };
        let logging = raw.logging.unwrap_or_default();
        Ok(TargetConfig {
            model: ModelConfig {
                provider,
                name,
                options,
            },
            route_type,
            auth: self.auth(&base.key("auth"), raw.auth.unwrap_or_default())?,
            weight: self.ranged(&base.key("weight"), raw.weight, 100, 1, 65_535)?,
            logging: TargetLogging {
                log_statistics: logging.log_statistics.unwrap_or(false),
                log_payloads: logging.log_payloads.unwrap_or(false),
            },
            description: raw.description,
        })
    }

    fn options(&self, base: &FieldPath, raw: OptionsRaw) -> Result<ModelOptions, ConfigError> {
        let upstream_url = match raw.upstream_url {
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(self.invalid(
                    &base.key("upstream_url"),
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
            other => other,
        };
        let bedrock = raw.bedrock.unwrap_or_default();
        Ok(ModelOptions {
            max_tokens: self.ranged_opt(&base.key("max_tokens"), raw.max_tokens, 1, u32::MAX)?,
            temperature: self
                .number(&base.key("temperature"), raw.temperature, 0.0, 5.0)?
                .map(narrow),
            top_p: self
                .number(&base.key("top_p"), raw.top_p, 0.0, 1.0)?
                .map(narrow),
            top_k: self.ranged_opt(&base.key("top_k"), raw.top_k, 0, 500)?,
            input_cost: self.number(&base.key("input_cost"), raw.input_cost, 0.0, f64::MAX)?,
            output_cost: self.number(&base.key("output_cost"), raw.output_cost, 0.0, f64::MAX)?,
            upstream_url,
            bedrock: BedrockOptions {
                aws_region: bedrock.aws_region,
                aws_assume_role_arn: bedrock.aws_assume_role_arn,
                aws_role_session_name: bedrock.aws_role_session_name,
                aws_sts_endpoint_url: bedrock.aws_sts_endpoint_url,
            },
        })
    }

    fn auth(&self, base: &FieldPath, raw: AuthRaw) -> Result<TargetAuth, ConfigError> {
        let secret = |key: &str, value: Option<String>| self.dereference(&base.key(key), value);
        let auth = TargetAuth {
            allow_override: raw.allow_override.unwrap_or(false),
            aws_access_key_id: secret("aws_access_key_id", raw.aws_access_key_id)?,
            aws_secret_access_key: secret("aws_secret_access_key", raw.aws_secret_access_key)?,
            header_name: secret("header_name", raw.header_name)?,
            header_value: secret("header_value", raw.header_value)?,
            param_name: secret("param_name", raw.param_name)?,
            param_value: secret("param_value", raw.param_value)?,
            param_location: raw.param_location,
        };
        // Kong's `mutually_required` checks: half a credential is a mistake, not a default.
        let groups: [&[(&str, bool)]; 3] = [
            &[
                ("header_name", auth.header_name.is_some()),
                ("header_value", auth.header_value.is_some()),
            ],
            &[
                ("param_name", auth.param_name.is_some()),
                ("param_value", auth.param_value.is_some()),
                ("param_location", auth.param_location.is_some()),
            ],
            &[
                ("aws_access_key_id", auth.aws_access_key_id.is_some()),
                (
                    "aws_secret_access_key",
                    auth.aws_secret_access_key.is_some(),
                ),
            ],
        ];
        for group in groups {
            let set: Vec<&str> = group.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
            if !set.is_empty() && set.len() < group.len() {
                let all: Vec<&str> = group.iter().map(|(k, _)| *k).collect();
                let missing = group.iter().find(|(_, s)| !s).map_or("", |(k, _)| *k);
                return Err(self.invalid(
                    &base.key(missing),
                    format!(
                        "required field missing: {} must be set together",
                        all.join(", ")
                    ),
                ));
            }
        }
        Ok(auth)
    }

    /// Resolves a Kong vault reference `{vault://env/name}` to the environment variable
    /// `NAME` (upper-cased, `-` as `_`), as Kong's env vault does; other values pass through.
    pub(crate) fn dereference(
        &self,
        path: &FieldPath,
        value: Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let Some(reference) = value
            .trim()
            .strip_prefix("{vault://")
            .and_then(|r| r.strip_suffix('}'))
        else {
            return Ok(Some(value));
        };
        let Some(name) = reference.strip_prefix("env/") else {
            let backend = reference.split('/').next().unwrap_or_default();
            return Err(self.invalid(
                path,
                format!(
                    "vault backend {backend:?} is not supported by aigw; only {{vault://env/NAME}}"
                ),
            ));
        };
        if name.is_empty() || name.contains('/') {
            return Err(self.invalid(
                path,
                format!("unsupported env vault reference {value:?}; expected {{vault://env/NAME}}"),
            ));
        }
        let var = name.to_ascii_uppercase().replace('-', "_");
        match std::env::var(&var) {
            Ok(resolved) => Ok(Some(resolved)),
            Err(_) => Err(self.invalid(
                path,
                format!("vault reference {value:?}: environment variable {var} is not set"),
            )),
        }
    }

    fn ranged<T>(
        &self,
        path: &FieldPath,
        value: Option<Int>,
        default: T,
        min: T,
        max: T,
    ) -> Result<T, ConfigError>
    where
        T: TryFrom<i64> + Into<i64> + Copy + Display,
    {
        Ok(self.ranged_opt(path, value, min, max)?.unwrap_or(default))
    }

    fn ranged_opt<T>(
        &self,
        path: &FieldPath,
        value: Option<Int>,
        min: T,
        max: T,
    ) -> Result<Option<T>, ConfigError>
    where
        T: TryFrom<i64> + Into<i64> + Copy + Display,
    {
        let Some(Int(v)) = value else { return Ok(None) };
        if v < min.into() || v > max.into() {
            return Err(self.invalid(path, format!("must be between {min} and {max}, got {v}")));
        }
        T::try_from(v)
            .map(Some)
            .map_err(|_| self.invalid(path, format!("must be between {min} and {max}, got {v}")))
    }

    fn millis(
        &self,
        path: &FieldPath,
        value: Option<Int>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let ms = self.ranged_opt(path, value, 0, MAX_MILLIS)?;
        Ok(ms.map_or(default, |ms| Duration::from_millis(u64::from(ms))))
    }

    fn number(
        &self,
        path: &FieldPath,
        value: Option<Num>,
        min: f64,
        max: f64,
    ) -> Result<Option<f64>, ConfigError> {
        match value {
            None => Ok(None),
            Some(Num(v)) if v.is_finite() && v >= min && v <= max => Ok(Some(v)),
            Some(Num(v)) if max == f64::MAX => {
                Err(self.invalid(path, format!("must be at least {min}, got {v}")))
            }
            Some(Num(v)) => {
                Err(self.invalid(path, format!("must be between {min} and {max}, got {v}")))
            }
        }
    }

    fn route_paths(&self, route: &RouteEntry<'_>) -> Result<Vec<String>, ConfigError> {
        let path = route.path.key("paths");
        let paths = route.raw.paths.clone().unwrap_or_default();
        if paths.is_empty() {
            return Err(self.invalid(
                &path,
                format!(
                    "route {} has an ai-proxy-advanced plugin but no paths; at least one path starting with \"/\" is required",
                    route.name
                ),
            ));
        }
        for (i, p) in paths.iter().enumerate() {
            if !p.starts_with('/') {
                return Err(self.invalid(
                    &path.index(i),
                    format!("path {p:?} must start with \"/\" (regex paths are not supported)"),
                ));
            }
        }
        Ok(paths)
    }

    /// Route names and paths must be unique among served routes: requests are routed by
    /// either, and a clash would make one route unreachable.
    fn check_unique(&self, served: &[(&RouteEntry<'_>, RouteConfig)]) -> Result<(), ConfigError> {
        let mut names: HashMap<&str, &FieldPath> = HashMap::new();
        let mut paths: HashMap<&str, (&str, FieldPath)> = HashMap::new();
        for (entry, route) in served {
            if let Some(first) = names.insert(&route.name, &entry.path) {
                return Err(self.invalid(
                    &entry.path.key("name"),
                    format!(
                        "duplicate route name {:?}, also used by {first}",
                        route.name
                    ),
                ));
            }
            for (i, p) in route.paths.iter().enumerate() {
                let here = entry.path.key("paths").index(i);
                if let Some((owner, first)) = paths.get(p.as_str()) {
                    return Err(self.invalid(
                        &here,
                        format!("duplicate path {p:?}: route {owner} already has it ({first})"),
                    ));
                }
                paths.insert(p, (&route.name, here));
            }
        }
        Ok(())
    }
}

/// Whether a plugin attached at `scope` to (`at_route`, `at_service`) runs on `route`.
fn applies(
    scope: Scope,
    at_route: Option<usize>,
    at_service: Option<usize>,
    route: usize,
    service: Option<usize>,
) -> bool {
    match scope {
        Scope::Global => true,
        Scope::Service => at_service.is_some() && at_service == service,
        Scope::Route => at_route == Some(route),
        Scope::RouteAndService => {
            at_route == Some(route) && at_service.is_some() && at_service == service
        }
    }
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Global => "global level",
        Scope::Service => "service",
        Scope::Route => "route",
        Scope::RouteAndService => "route and service",
    }
}

/// Model options are carried as f32, as providers take them; the range check already
/// ran on the f64.
#[allow(clippy::cast_possible_truncation)]
fn narrow(v: f64) -> f32 {
    v as f32
}
