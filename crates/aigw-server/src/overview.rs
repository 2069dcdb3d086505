//! What the status listener shows of the running configuration: per route its paths,
//! balancer algorithm, plugins and targets, and where each target's credentials come
//! from. Built once per route when the routes are (re)built, from the config alone, so it
//! never holds a credential: only a description of its source.

use aigw_config::{Provider, RouteConfig, TargetConfig};

use crate::BuildOptions;

/// One route's configuration as the operator sees it, redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteOverview {
    /// Kong's name of the balancer algorithm (`round-robin`, `lowest-latency`, …).
    pub algorithm: &'static str,
    /// Kong's names of the plugins on the route, ai-proxy-advanced first, then in the
    /// order admission applies them.
    pub plugins: Vec<&'static str>,
    /// The route's targets, in target order.
    pub targets: Vec<TargetOverview>,
}

/// One target as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOverview {
    /// `provider/model`.
    pub label: String,
    /// Kong's `weight`.
    pub weight: u32,
    /// Where the target's credentials come from, never their values.
    pub credentials: String,
}

impl RouteOverview {
    /// The overview of `route` as built with `options`.
    pub fn new(route: &RouteConfig, options: &BuildOptions) -> Self {
        let plugins = [
            ("ai-proxy-advanced", true),
            ("key-auth", route.key_auth.is_some()),
            ("jwt", route.jwt.is_some()),
            ("basic-auth", route.basic_auth.is_some()),
            ("ip-restriction", route.ip_restriction.is_some()),
            (
                "request-size-limiting",
                route.request_size_limiting.is_some(),
            ),
            ("request-termination", route.request_termination.is_some()),
        ];
        RouteOverview {
            algorithm: route.ai.balancer.algorithm.as_str(),
            plugins: plugins
                .iter()
                .filter(|(_, on)| *on)
                .map(|(name, _)| *name)
                .collect(),
            targets: route
                .ai
                .targets
                .iter()
                .map(|t| TargetOverview {
                    label: t.label(),
                    weight: t.weight,
                    credentials: credentials(t, options),
                })
                .collect(),
        }
    }
}

/// Where `target`'s credentials come from, in the terms an operator looks them up by.
fn credentials(target: &TargetConfig, options: &BuildOptions) -> String {
    let auth = &target.auth;
    let mut sources = Vec::new();
    if auth.aws_access_key_id.is_some() {
        let id = auth.source_of("aws_access_key_id");
        let secret = auth.source_of("aws_secret_access_key");
        sources.push(if id == secret {
            format!("AWS access key: {id}")
        } else {
            format!("AWS access key: {id}; secret: {secret}")
        });
    }
    if let (Some(name), Some(_)) = (&auth.header_name, &auth.header_value) {
        sources.push(format!("header {name}: {}", auth.source_of("header_value")));
    }
    if let (Some(name), Some(_)) = (&auth.param_name, &auth.param_value) {
        sources.push(format!(
            "parameter {name}: {}",
            auth.source_of("param_value")
        ));
    }
    if !sources.is_empty() {
        return sources.join("; ");
    }
    match target.model.provider {
        Provider::Bedrock if options.bedrock_credentials.is_some() => {
            "static key from the gateway's build options".to_owned()
        }
        Provider::Bedrock => "AWS default chain".to_owned(),
        _ => "none".to_owned(),
    }
}
