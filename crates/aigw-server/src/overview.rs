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
            ("acl", route.acl.is_some()),
            ("request-termination", route.request_termination.is_some()),
            ("ai-rate-limiting-advanced", route.ai_rate_limit.is_some()),
            ("ai-prompt-decorator", route.prompt_decorator.is_some()),
            ("ai-prompt-guard", route.prompt_guard.is_some()),
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
    let mut described = if !sources.is_empty() {
        sources.join("; ")
    } else {
        match target.model.provider {
            // `aigw demo` and the tests sign with throwaway keys given in code.
            Provider::Bedrock if options.bedrock_credentials.is_some() => {
                "static key from the gateway's build options".to_owned()
            }
            Provider::Bedrock => "AWS default chain".to_owned(),
            _ => "none".to_owned(),
        }
    };
    if auth.allow_override {
        described.push_str("; a client's own credentials win (allow_override)");
    }
    described
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_described_by_source_never_by_value() {
        let config = aigw_config::parse_deck(
            "x.yaml",
            r#"
_format_version: "3.0"
services:
- name: svc
  routes:
  - name: r
    paths: [/r]
    plugins:
    - name: ai-proxy-advanced
      config:
        targets:
        - model: {provider: openai, name: a, options: {upstream_url: "http://127.0.0.1:9/v1/chat/completions"}}
          route_type: llm/v1/chat
          auth: {header_name: Authorization, header_value: "Bearer sk-literal-1234"}
        - model: {provider: openai, name: b, options: {upstream_url: "http://127.0.0.1:9/v1/chat/completions"}}
          route_type: llm/v1/chat
        - model: {provider: bedrock, name: c, options: {bedrock: {aws_region: us-west-2}}}
          route_type: llm/v1/chat
          auth: {allow_override: true}
"#,
        )
        .expect("loads");
        let overview = RouteOverview::new(&config.routes[0], &BuildOptions::default());
        let described: Vec<&str> = overview
            .targets
            .iter()
            .map(|t| t.credentials.as_str())
            .collect();
        assert_eq!(
            described,
            [
                "header Authorization: literal in the decK file",
                "none",
                "AWS default chain; a client's own credentials win (allow_override)",
            ]
        );
        assert_eq!(overview.algorithm, "round-robin");
        assert_eq!(overview.plugins, ["ai-proxy-advanced"]);
    }
}
