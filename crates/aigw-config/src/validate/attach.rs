//! decK's entities and Kong's plugin attachment: which routes exist, which plugin runs on
//! each (a route's own wins over its service's, which wins over a global one), and the
//! rules across routes.

use std::collections::HashMap;

use crate::ConfigError;
use crate::consumers::{ACL, ConsumerConfig};
use crate::key_auth::{KEY_AUTH, KeyAuthConfig};
use crate::model::{AiProxyConfig, RouteConfig};
use crate::path::FieldPath;
use crate::plugins::{
    BASIC_AUTH, BasicAuthConfig, ENFORCED_PLUGINS, IP_RESTRICTION, JWT, JwtConfig,
    OBSERVE_ONLY_PLUGINS, Policy, REQUEST_SIZE_LIMITING, REQUEST_TERMINATION,
};
use crate::prompt::{AI_PROMPT_DECORATOR, AI_PROMPT_GUARD};
use crate::rate_limit::AI_RATE_LIMITING;
use crate::raw::{DeckRaw, EntityRef, PluginRaw, RouteRaw, ServiceRaw};
use crate::routing::{HeaderRule, PathHandling, RouteMatch};

use super::Cx;
use super::ai_proxy::AI_PROXY_ADVANCED;

/// Paths the gateway answers itself on the data port, ahead of any route. (`/metrics` and
/// `/status/*` are on the status listener, so routes may use those paths.)
const RESERVED_PATHS: &[&str] = &["/health"];

/// Path prefixes of the gateway's own gRPC services (chat, health, reflection).
const RESERVED_PREFIXES: &[&str] = &["/aigw.v1.ChatService/", "/grpc."];

/// Kong's route protocols that can carry an AI route. (aigw terminates no TLS: `https`
/// routes are served over plain HTTP, for a TLS proxy in front.)
const ROUTE_PROTOCOLS: &[&str] = &["http", "https", "grpc", "grpcs"];

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

/// An enabled key-auth plugin and what it is attached to.
struct KeyAuthCandidate {
    scope: Scope,
    route: Option<usize>,
    service: Option<usize>,
    path: FieldPath,
    config: KeyAuthConfig,
}

/// An enabled plugin of [`crate::plugins`] and what it is attached to.
struct PolicyCandidate {
    name: &'static str,
    scope: Scope,
    route: Option<usize>,
    service: Option<usize>,
    path: FieldPath,
    policy: Policy,
}

/// An enabled plugin aigw does not enforce, and what it is attached to.
struct Unenforced {
    name: String,
    scope: Scope,
    route: Option<usize>,
    service: Option<usize>,
    path: FieldPath,
}

/// What [`Cx::collect_plugins`] found, by what aigw does with it.
#[derive(Default)]
struct Plugins {
    ai: Vec<Candidate>,
    key_auth: Vec<KeyAuthCandidate>,
    policies: Vec<PolicyCandidate>,
    unenforced: Vec<Unenforced>,
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

/// A route that will be served, with where its ai-proxy-advanced config is.
struct Served<'e, 'd> {
    index: usize,
    entry: &'e RouteEntry<'d>,
    config_path: FieldPath,
    route: RouteConfig,
}

impl Cx<'_> {
    /// Every served route, with the plugins that apply to it.
    pub(super) fn build(
        &mut self,
        deck: &DeckRaw,
    ) -> Result<(Vec<RouteConfig>, Vec<ConsumerConfig>), ConfigError> {
        let root = FieldPath::root();
        let services: &[ServiceRaw] = deck.services.as_deref().unwrap_or_default();
        let routes = self.collect_routes(deck, services)?;
        let Plugins {
            ai: candidates,
            key_auth,
            policies,
            unenforced,
        } = self.collect_plugins(deck, services, &routes)?;
        let consumers = deck.consumers.as_deref().unwrap_or_default();
        let consumer_groups = deck.consumer_groups.as_deref().unwrap_or_default();
        let consumer_configs = self.consumers(consumers, consumer_groups)?;
        let credentials = self.consumer_keys(consumers)?;
        let aws_credentials = self.consumer_aws_credentials(consumers)?;
        if credentials.is_empty() && !key_auth.is_empty() {
            let first = key_auth[0].path.clone();
            self.warn(
                &first,
                "key-auth is on but no consumer has keyauth_credentials; every request to its routes gets 401",
            );
        }
        let passwords = self.basic_credentials(consumers)?;
        let jwt_secrets = self.jwt_credentials(consumers)?;
        if let Some(first) = policies.iter().find(|c| c.name == JWT) {
            if jwt_secrets.is_empty() {
                let first = first.path.clone();
                self.warn(
                    &first,
                    "jwt is on but no consumer has jwt_secrets; every request to its routes gets 401",
                );
            }
        }
        if let Some(first) = policies.iter().find(|c| c.name == BASIC_AUTH) {
            if passwords.is_empty() {
                let first = first.path.clone();
                self.warn(
                    &first,
                    "basic-auth is on but no consumer has basicauth_credentials; every request to its routes gets 401",
                );
            }
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
            let (paths, matching) = self.route_match(route)?;
            let tags = route.raw.tags.as_deref().unwrap_or_default();
            let chat = crate::chat_tags::parse(tags).map_err(|(index, message)| {
                self.invalid(&route.path.key("tags").index(index), message)
            })?;
            let key_auth = key_auth
                .iter()
                .filter(|c| applies(c.scope, c.route, c.service, index, route.service))
                .max_by_key(|c| c.scope)
                .map(|c| KeyAuthConfig {
                    credentials: credentials.clone(),
                    aws_credentials: aws_credentials.clone(),
                    ..c.config.clone()
                });
            // Per plugin name, the most specific instance runs, as for ai-proxy-advanced.
            let policy = |name: &str| {
                policies
                    .iter()
                    .filter(|c| c.name == name)
                    .filter(|c| applies(c.scope, c.route, c.service, index, route.service))
                    .max_by_key(|c| c.scope)
                    .map(|c| &c.policy)
            };
            let basic_auth = match policy(BASIC_AUTH) {
                Some(Policy::BasicAuth(config)) => Some(BasicAuthConfig {
                    credentials: passwords.clone(),
                    ..config.clone()
                }),
                _ => None,
            };
            let jwt = match policy(JWT) {
                Some(Policy::Jwt(config)) => Some(JwtConfig {
                    credentials: jwt_secrets.clone(),
                    ..config.clone()
                }),
                _ => None,
            };
            let ip_restriction = match policy(IP_RESTRICTION) {
                Some(Policy::IpRestriction(config)) => Some(config.clone()),
                _ => None,
            };
            let request_size_limiting = match policy(REQUEST_SIZE_LIMITING) {
                Some(Policy::SizeLimit(config)) => Some(*config),
                _ => None,
            };
            let request_termination = match policy(REQUEST_TERMINATION) {
                Some(Policy::Termination(config)) => Some(config.clone()),
                _ => None,
            };
            let ai_rate_limit = match policy(AI_RATE_LIMITING) {
                Some(Policy::AiRateLimit(config)) => Some((**config).clone()),
                _ => None,
            };
            let acl = match policy(ACL) {
                Some(Policy::Acl(config)) => Some(config.clone()),
                _ => None,
            };
            if acl.is_some() && key_auth.is_none() && basic_auth.is_none() && jwt.is_none() {
                let at = policies
                    .iter()
                    .find(|c| c.name == ACL)
                    .map(|c| c.path.clone())
                    .unwrap_or_else(|| route.path.clone());
                self.warn(
                    &at,
                    format!(
                        "acl applies to route {} but no key-auth, basic-auth or jwt names a consumer there; every request to it gets 401",
                        route.name
                    ),
                );
            }
            let prompt_guard = match policy(AI_PROMPT_GUARD) {
                Some(Policy::PromptGuard(config)) => Some(config.clone()),
                _ => None,
            };
            let prompt_decorator = match policy(AI_PROMPT_DECORATOR) {
                Some(Policy::PromptDecorator(config)) => Some(config.clone()),
                _ => None,
            };
            served.push(Served {
                index,
                entry: route,
                config_path: chosen.path.key("config"),
                route: RouteConfig {
                    name: route.name.clone(),
                    service: route.service.and_then(|si| services[si].name.clone()),
                    paths,
                    matching,
                    ai: chosen.config.clone(),
                    key_auth,
                    basic_auth,
                    jwt,
                    ip_restriction,
                    request_size_limiting,
                    request_termination,
                    acl,
                    ai_rate_limit,
                    prompt_guard,
                    prompt_decorator,
                    chat,
                },
            });
        }

        let verified_somewhere = served.iter().any(|s| {
            s.route.key_auth.is_some() && s.route.ai.llm_format == crate::LlmFormat::Bedrock
        });
        if !aws_credentials.is_empty() && !verified_somewhere {
            let first = consumers
                .iter()
                .position(|c| {
                    c.aigw_aws_credentials
                        .as_ref()
                        .is_some_and(|p| !p.is_empty())
                })
                .unwrap_or_default();
            self.warn(
                &root.key("consumers").index(first).key(crate::key_auth::AWS_CREDENTIALS),
                "no route has both key-auth and llm_format: bedrock; these AWS key pairs let no request in",
            );
        }
        self.check_enforced(&unenforced, &served, &routes)?;
        self.check_unique(&served)?;
        if let Some(over) = served.get(crate::MAX_ROUTES) {
            return Err(self.invalid(
                &over.entry.path,
                format!(
                    "more than {} routes would be served ({} are); split the file across gateways",
                    crate::MAX_ROUTES,
                    served.len()
                ),
            ));
        }
        // Only on served routes: a plugin that runs nowhere cannot fail to run.
        for route in &served {
            self.check_supported(&route.config_path, &route.route.ai)?;
        }
        for (si, service) in services.iter().enumerate() {
            if service.enabled == Some(false) {
                self.warn(
                    &root.key("services").index(si),
                    "service is disabled (enabled: false); its routes are not served",
                );
            }
        }
        let routes = served.into_iter().map(|served| served.route).collect();
        Ok((routes, consumer_configs))
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

    /// Every enabled plugin with its attachment: the ones aigw enforces validated, the
    /// others kept for [`Cx::check_enforced`]; warnings for the disabled and observe-only.
    fn collect_plugins(
        &mut self,
        deck: &DeckRaw,
        services: &[ServiceRaw],
        routes: &[RouteEntry<'_>],
    ) -> Result<Plugins, ConfigError> {
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

        let mut plugins = Plugins::default();
        // Observe-only plugins by name: where the first is, and how many there are.
        let mut unsupported: Vec<(String, FieldPath, usize)> = Vec::new();
        for Attached {
            plugin,
            path,
            scope,
            route,
            service,
        } in found
        {
            match plugin.name.as_deref() {
                None => return Err(self.invalid(&path.key("name"), "required field missing")),
                Some(KEY_AUTH) => {
                    if let Some(config) = self.key_auth_plugin(plugin, &path)? {
                        plugins.key_auth.push(KeyAuthCandidate {
                            scope,
                            route,
                            service,
                            path,
                            config,
                        });
                    }
                    continue;
                }
                Some(AI_PROXY_ADVANCED) => {}
                Some(name) => {
                    if let Some(&known) = [
                        BASIC_AUTH,
                        JWT,
                        IP_RESTRICTION,
                        REQUEST_SIZE_LIMITING,
                        REQUEST_TERMINATION,
                        ACL,
                        AI_RATE_LIMITING,
                        AI_PROMPT_GUARD,
                        AI_PROMPT_DECORATOR,
                    ]
                    .iter()
                    .find(|known| **known == name)
                    {
                        let attached = Attached {
                            plugin,
                            path,
                            scope,
                            route,
                            service,
                        };
                        self.push_policy(&mut plugins, known, attached)?;
                    } else if plugin.enabled == Some(false) {
                        self.warn(
                            &path,
                            format!("{name} is disabled (enabled: false); ignored"),
                        );
                    } else if OBSERVE_ONLY_PLUGINS.contains(&name) {
                        match unsupported.iter_mut().find(|(n, _, _)| n == name) {
                            Some((_, _, count)) => *count += 1,
                            None => unsupported.push((name.to_owned(), path, 1)),
                        }
                    } else {
                        plugins.unenforced.push(Unenforced {
                            name: name.to_owned(),
                            scope,
                            route,
                            service,
                            path,
                        });
                    }
                    continue;
                }
            }
            let Some(config) = self.plugin_config(plugin, &path)? else {
                continue;
            };
            if let Some(first) = plugins
                .ai
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
            plugins.ai.push(Candidate {
                scope,
                route,
                service,
                path,
                config,
            });
        }
        // One line per plugin name, not per instance: a Kong file may carry hundreds.
        for (name, first, count) in unsupported {
            let more = match count {
                1 => String::new(),
                n => format!(" ({n} instances; this is the first)"),
            };
            self.warn(
                &first,
                format!(
                    "plugin {name:?} only observes traffic and is not run by aigw; ignored{more}"
                ),
            );
        }
        Ok(plugins)
    }

    /// Validates one instance of a plugin of [`crate::plugins`] into `plugins`; Kong
    /// allows one instance of a plugin per attachment.
    fn push_policy(
        &mut self,
        plugins: &mut Plugins,
        name: &'static str,
        attached: Attached<'_>,
    ) -> Result<(), ConfigError> {
        let Attached {
            plugin,
            path,
            scope,
            route,
            service,
        } = attached;
        let Some(policy) = self.policy(name, plugin, &path)? else {
            return Ok(());
        };
        if let Some(first) = plugins.policies.iter().find(|c| {
            c.name == name && c.scope == scope && c.route == route && c.service == service
        }) {
            return Err(self.invalid(
                &path,
                format!(
                    "a second {name} plugin on the same {}; the first is {}",
                    scope_name(scope),
                    first.path
                ),
            ));
        }
        plugins.policies.push(PolicyCandidate {
            name,
            scope,
            route,
            service,
            path,
            policy,
        });
        Ok(())
    }

    /// Fails closed: a plugin aigw does not enforce must not silently stop protecting a
    /// route it serves. One on routes aigw does not serve is only a warning.
    fn check_enforced(
        &mut self,
        unenforced: &[Unenforced],
        served: &[Served<'_, '_>],
        routes: &[RouteEntry<'_>],
    ) -> Result<(), ConfigError> {
        let mut warned: Vec<&str> = Vec::new();
        for plugin in unenforced {
            let hit = served.iter().find(|s| {
                applies(
                    plugin.scope,
                    plugin.route,
                    plugin.service,
                    s.index,
                    routes[s.index].service,
                )
            });
            if let Some(hit) = hit {
                return Err(self.invalid(
                    &plugin.path.key("name"),
                    format!(
                        "plugin {:?} applies to route {}, but aigw does not enforce it; refusing \
                         to serve the route without it (aigw enforces {}; remove the plugin or \
                         set enabled: false)",
                        plugin.name,
                        hit.route.name,
                        ENFORCED_PLUGINS.join(", ")
                    ),
                ));
            }
            if !warned.contains(&plugin.name.as_str()) {
                warned.push(&plugin.name);
                self.warn(
                    &plugin.path,
                    format!(
                        "plugin {:?} is not enforced by aigw; it applies to no served route, so it is ignored",
                        plugin.name
                    ),
                );
            }
        }
        Ok(())
    }

    /// The route's `paths` as written (gRPC callers name routes by them) and its Kong
    /// matching attributes, validated: at least one of `paths`, `methods`, `hosts`,
    /// `headers` or `snis`, as Kong requires of an HTTP route.
    fn route_match(
        &self,
        route: &RouteEntry<'_>,
    ) -> Result<(Vec<String>, RouteMatch), ConfigError> {
        let raw = route.raw;
        let path = route.path.key("paths");
        let paths = raw.paths.clone().unwrap_or_default();
        let mut matching = RouteMatch {
            strip_path: raw.strip_path.unwrap_or(true),
            regex_priority: raw.regex_priority.unwrap_or(0),
            id: raw.id.clone(),
            protocols: raw
                .protocols
                .clone()
                .unwrap_or_else(|| vec!["http".to_owned(), "https".to_owned()]),
            snis: raw.snis.clone().unwrap_or_default(),
            ..RouteMatch::default()
        };
        for (i, p) in paths.iter().enumerate() {
            let pattern = RouteMatch::path(p).map_err(|m| self.invalid(&path.index(i), m))?;
            let reserved = RESERVED_PATHS.contains(&p.as_str())
                || RESERVED_PREFIXES.iter().any(|prefix| p.starts_with(prefix));
            if reserved {
                return Err(self.invalid(
                    &path.index(i),
                    format!(
                        "path {p:?} is the gateway's own ({} and the gRPC services under {}); \
                         a route there would never be reached",
                        RESERVED_PATHS.join(", "),
                        RESERVED_PREFIXES.join(", ")
                    ),
                ));
            }
            matching.paths.push(pattern);
        }
        for (i, method) in raw.methods.iter().flatten().enumerate() {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(self.invalid(
                    &route.path.key("methods").index(i),
                    format!("method {method:?} must be uppercase letters, as in \"POST\""),
                ));
            }
            matching.methods.push(method.clone());
        }
        for (i, host) in raw.hosts.iter().flatten().enumerate() {
            let host = RouteMatch::host(host)
                .map_err(|m| self.invalid(&route.path.key("hosts").index(i), m))?;
            matching.hosts.push(host);
        }
        for (name, values) in raw.headers.iter().flatten() {
            let here = route.path.key("headers").key(name);
            if name.eq_ignore_ascii_case("host") {
                return Err(self.invalid(
                    &here,
                    "a route's headers cannot hold \"host\"; use its hosts",
                ));
            }
            let mut rule = HeaderRule {
                name: name.to_ascii_lowercase(),
                values: Vec::new(),
            };
            for (i, value) in values.iter().enumerate() {
                let value =
                    RouteMatch::header_value(value).map_err(|m| self.invalid(&here.index(i), m))?;
                rule.values.push(value);
            }
            matching.headers.push(rule);
        }
        for (i, protocol) in matching.protocols.iter().enumerate() {
            if !ROUTE_PROTOCOLS.contains(&protocol.as_str()) {
                return Err(self.invalid(
                    &route.path.key("protocols").index(i),
                    format!(
                        "protocol {protocol:?} cannot carry an AI route; expected one of {}",
                        ROUTE_PROTOCOLS.join(", ")
                    ),
                ));
            }
        }
        matching.path_handling = match raw.path_handling.as_deref() {
            None | Some("v0") => PathHandling::V0,
            Some("v1") => PathHandling::V1,
            Some(other) => {
                return Err(self.invalid(
                    &route.path.key("path_handling"),
                    format!("unknown value {other:?}, expected one of v0, v1"),
                ));
            }
        };
        if matching.paths.is_empty()
            && matching.methods.is_empty()
            && matching.hosts.is_empty()
            && matching.headers.is_empty()
            && matching.snis.is_empty()
        {
            return Err(self.invalid(
                &path,
                format!(
                    "route {} has an ai-proxy-advanced plugin but no paths; Kong needs at least one of paths, methods, hosts, headers or snis, usually a path starting with \"/\"",
                    route.name
                ),
            ));
        }
        Ok((paths, matching))
    }

    /// Route names must be unique among served routes (gRPC callers name routes), and so
    /// must a path among routes that match nothing else differently: the later route
    /// would never be reached on it.
    fn check_unique(&self, served: &[Served<'_, '_>]) -> Result<(), ConfigError> {
        let mut names: HashMap<&str, &FieldPath> = HashMap::new();
        let mut paths: HashMap<(&str, String), (&str, FieldPath)> = HashMap::new();
        for Served { entry, route, .. } in served {
            if let Some(first) = names.insert(&route.name, &entry.path) {
                return Err(self.invalid(
                    &entry.path.key("name"),
                    format!(
                        "duplicate route name {:?}, also used by {first}",
                        route.name
                    ),
                ));
            }
            let m = &route.matching;
            let rest = format!("{:?}", (&m.methods, &m.hosts, &m.headers, &m.protocols));
            for (i, p) in route.paths.iter().enumerate() {
                let here = entry.path.key("paths").index(i);
                let key = (p.as_str(), rest.clone());
                if let Some((owner, first)) = paths.get(&key) {
                    return Err(self.invalid(
                        &here,
                        format!("duplicate path {p:?}: route {owner} already has it ({first})"),
                    ));
                }
                paths.insert(key, (&route.name, here));
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
