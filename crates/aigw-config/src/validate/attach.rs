//! decK's entities and Kong's plugin attachment: which routes exist, which plugin runs on
//! each (a route's own wins over its service's, which wins over a global one), and the
//! rules across routes.

use std::collections::HashMap;

use crate::ConfigError;
use crate::key_auth::{KEY_AUTH, KeyAuthConfig};
use crate::model::{AiProxyConfig, RouteConfig};
use crate::path::FieldPath;
use crate::plugins::{
    BASIC_AUTH, BasicAuthConfig, ENFORCED_PLUGINS, IP_RESTRICTION, JWT, JwtConfig,
    OBSERVE_ONLY_PLUGINS, Policy, REQUEST_SIZE_LIMITING, REQUEST_TERMINATION,
};
use crate::raw::{DeckRaw, EntityRef, PluginRaw, RouteRaw, ServiceRaw};

use super::Cx;
use super::ai_proxy::AI_PROXY_ADVANCED;

/// Paths the gateway answers itself on the data port, ahead of any route. (`/metrics` and
/// `/status/*` are on the status listener, so routes may use those paths.)
const RESERVED_PATHS: &[&str] = &["/health"];

/// Path prefixes of the gateway's own gRPC services (chat, health, reflection).
const RESERVED_PREFIXES: &[&str] = &["/aigw.v1.ChatService/", "/grpc."];

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
    pub(super) fn build(&mut self, deck: &DeckRaw) -> Result<Vec<RouteConfig>, ConfigError> {
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
        let credentials = self.consumer_keys(consumers)?;
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
            let paths = self.route_paths(route)?;
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
            served.push(Served {
                index,
                entry: route,
                config_path: chosen.path.key("config"),
                route: RouteConfig {
                    name: route.name.clone(),
                    service: route.service.and_then(|si| services[si].name.clone()),
                    paths,
                    ai: chosen.config.clone(),
                    key_auth,
                    basic_auth,
                    jwt,
                    ip_restriction,
                    request_size_limiting,
                    request_termination,
                    chat,
                },
            });
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
        Ok(served.into_iter().map(|served| served.route).collect())
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
        }
        Ok(paths)
    }

    /// Route names and paths must be unique among served routes: requests are routed by
    /// either, and a clash would make one route unreachable.
    fn check_unique(&self, served: &[Served<'_, '_>]) -> Result<(), ConfigError> {
        let mut names: HashMap<&str, &FieldPath> = HashMap::new();
        let mut paths: HashMap<&str, (&str, FieldPath)> = HashMap::new();
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
