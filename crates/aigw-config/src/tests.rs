//! Loading decK files end to end: the seed file, attachment rules, and located errors.

use std::path::Path;
use std::time::Duration;

use figment::Jail;

use crate::*;

const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../config/ai-proxy-advanced.yaml"
);
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> GatewayConfig {
    load_deck(&Path::new(FIXTURES).join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn route<'c>(config: &'c GatewayConfig, name: &str) -> &'c RouteConfig {
    config
        .routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route {name} in {:?}", config.routes))
}

/// The 1-based line and column of the first occurrence of `needle`.
fn position(yaml: &str, needle: &str) -> (usize, usize) {
    for (i, line) in yaml.lines().enumerate() {
        if let Some(col) = line.find(needle) {
            return (i + 1, col + 1);
        }
    }
    panic!("{needle:?} not in the yaml");
}

fn error(yaml: &str) -> String {
    parse_deck("x.yaml", yaml)
        .expect_err("should fail")
        .to_string()
}

/// A valid one-route file with `{balancer}`/`{target}` slots for the tests to fill.
fn deck(balancer: &str, target: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: svc
  routes:
  - name: route1
    paths:
    - /chat
    plugins:
    - name: ai-proxy-advanced
      config:
        balancer:
          algorithm: round-robin
{balancer}
        targets:
        - model:
            provider: bedrock
            name: m1
          route_type: llm/v1/chat
{target}
"#
    )
}

#[test]
fn seed_file_loads_unchanged_with_kong_defaults() {
    let config = load_deck(Path::new(SEED)).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.routes.len(), 1);
    let route = &config.routes[0];
    assert_eq!(route.name, "route1");
    assert_eq!(route.service.as_deref(), Some("ai-proxy-advanced-service"));
    assert_eq!(route.paths, vec!["/bedrock-route"]);

    let ai = &route.ai;
    assert_eq!(
        ai.instance_name.as_deref(),
        Some("ai-proxy-advanced-bedrock")
    );
    assert_eq!(ai.balancer, BalancerConfig::default());
    assert_eq!(ai.balancer.algorithm, Algorithm::RoundRobin);
    assert_eq!(
        ai.balancer.tokens_count_strategy,
        TokensCountStrategy::TotalTokens
    );
    assert_eq!(ai.balancer.latency_strategy, LatencyStrategy::Tpot);
    assert_eq!(ai.balancer.hash_on_header, "X-Kong-LLM-Request-ID");
    assert_eq!(ai.balancer.slots, 10_000);
    assert_eq!(ai.balancer.retries, 5);
    assert_eq!(ai.balancer.connect_timeout, Duration::from_secs(60));
    assert_eq!(ai.balancer.write_timeout, Duration::from_secs(60));
    assert_eq!(ai.balancer.read_timeout, Duration::from_secs(60));
    assert_eq!(
        ai.balancer.failover_criteria,
        vec![FailoverCriterion::Error, FailoverCriterion::Timeout]
    );
    assert_eq!(ai.balancer.max_fails, 0);
    assert_eq!(ai.balancer.fail_timeout, Duration::from_secs(10));
    assert_eq!(ai.response_streaming, ResponseStreaming::Allow);
    assert!(ai.model_name_header);
    assert_eq!(ai.max_request_body_size, 8192);

    let names: Vec<&str> = ai.targets.iter().map(|t| t.model.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "us.amazon.nova-micro-v1:0",
            "us.meta.llama3-3-70b-instruct-v1:0"
        ]
    );
    for target in &ai.targets {
        assert_eq!(target.model.provider, Provider::Bedrock);
        assert_eq!(
            target.model.options.bedrock.aws_region.as_deref(),
            Some("us-west-2")
        );
        assert_eq!(target.model.options.max_tokens, None);
        assert_eq!(target.model.options.upstream_url, None);
        assert_eq!(target.route_type, "llm/v1/chat");
        assert_eq!(target.weight, 100);
        assert_eq!(target.auth, TargetAuth::default());
        assert_eq!(target.logging, TargetLogging::default());
        assert_eq!(target.description, None);
    }
}

#[test]
fn service_plugin_serves_every_route_without_its_own() {
    let config = fixture("service-plugin.yaml");
    let order: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["shared-a", "llm.routes[1]", "own"]);

    let shared = route(&config, "shared-a");
    assert_eq!(shared.ai.instance_name.as_deref(), Some("llm-shared"));
    assert_eq!(route(&config, "llm.routes[1]").paths, ["/b", "/b2"]);
    assert_eq!(route(&config, "llm.routes[1]").ai, shared.ai);
    let b = &shared.ai.balancer;
    assert_eq!(b.algorithm, Algorithm::LowestLatency);
    assert_eq!(b.latency_strategy, LatencyStrategy::E2e);
    assert_eq!(b.retries, 2);
    assert_eq!(b.read_timeout, Duration::from_secs(15));
    assert_eq!(b.connect_timeout, Duration::from_secs(60));
    assert_eq!(
        b.failover_criteria,
        [
            FailoverCriterion::Error,
            FailoverCriterion::Timeout,
            FailoverCriterion::Http429,
            FailoverCriterion::Http503
        ]
    );
    let [first, second] = &shared.ai.targets[..] else {
        panic!("two targets expected");
    };
    assert_eq!(first.weight, 30);
    assert_eq!(first.model.options.max_tokens, Some(512));
    assert_eq!(first.model.options.temperature, Some(0.5));
    assert_eq!(
        first.model.options.bedrock.aws_region.as_deref(),
        Some("eu-west-1")
    );
    assert_eq!(first.description.as_deref(), Some("fast"));
    assert_eq!(second.weight, 100);
    assert_eq!(
        second.auth.aws_access_key_id.as_deref(),
        Some("AKIDEXAMPLE")
    );
    assert!(second.logging.log_statistics);
    assert!(!second.logging.log_payloads);

    let own = route(&config, "own");
    assert_eq!(own.ai.targets[0].model.name, "anthropic.claude-3-haiku");
    assert_eq!(own.ai.response_streaming, ResponseStreaming::Deny);
    assert!(!own.ai.model_name_header);
    assert_eq!(own.ai.max_request_body_size, 1_048_576);
    assert_eq!(own.ai.balancer, BalancerConfig::default());

    let warnings = config.warnings.join("\n");
    assert!(
        warnings.contains("rate-limiting is disabled (enabled: false); ignored"),
        "{warnings}"
    );
    assert!(
        warnings.contains("route no-ai has no ai-proxy-advanced plugin"),
        "{warnings}"
    );
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("service-plugin.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (line, col) = position(&text, "- name: rate-limiting");
    assert!(
        warnings.contains(&format!(
            "service-plugin.yaml:{line}:{}: services[0].plugins[1]: rate-limiting",
            col + 2
        )),
        "{warnings}"
    );
}

/// Failing closed: the fixture's rate-limiting plugin, enabled, is one aigw does not
/// enforce on the service's routes, so the file does not load.
#[test]
fn an_unenforced_plugin_on_a_served_route_refuses_the_file() {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("service-plugin.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .replace(
            "    enabled: false\n    config:\n      minute: 5",
            "    config:\n      minute: 5",
        );
    let (line, col) = position(&text, "rate-limiting");
    let err = parse_deck("s.yaml", &text)
        .expect_err("refused")
        .to_string();
    assert!(
        err.starts_with(&format!(
            "s.yaml:{line}:{col}: services[0].plugins[1].name: plugin \"rate-limiting\" applies to route shared-a, but aigw does not enforce it"
        )),
        "{err}"
    );

    // Globally and on a route alike.
    for (name, at) in [
        ("ai-semantic-cache", "global"),
        ("request-transformer", "route"),
        ("rate-limiting", "global"),
    ] {
        let yaml = match at {
            "global" => format!("{}plugins:\n- name: {name}\n  config: {{}}\n", deck("", "")),
            _ => deck("", "").replace(
                "    plugins:\n",
                &format!("    plugins:\n    - name: {name}\n"),
            ),
        };
        let err = error(&yaml);
        let (line, col) = position(&yaml, &format!("name: {name}"));
        assert!(
            err.contains(&format!("x.yaml:{line}:{}: ", col + 6))
                && err.contains(&format!("plugin \"{name}\" applies to route")),
            "{name} {at}: {err}"
        );
    }
}

#[test]
fn an_unenforced_plugin_on_an_unserved_route_is_a_warning() {
    let yaml = format!(
        "{}routes:\n- name: plain\n  paths: [/plain]\n  plugins:\n  - name: rate-limiting\n",
        deck("", "")
    );
    let config = parse_deck("x.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config.warnings.iter().any(|w| w
            .contains("\"rate-limiting\" is not enforced by aigw; it applies to no served route")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn global_plugins_attach_by_reference_with_kong_precedence() {
    let config = fixture("global-plugins.yaml");
    let model = |name: &str| route(&config, name).ai.targets[0].model.name.clone();
    assert_eq!(model("r-route"), "route-model");
    assert_eq!(model("r-service"), "service-model");
    assert_eq!(model("r-global"), "global-model");
    assert_eq!(
        model("r-disabled"),
        "global-model",
        "a disabled plugin is skipped"
    );
    assert_eq!(model("r-top"), "global-model");
    assert_eq!(route(&config, "r-top").service.as_deref(), Some("svc-two"));
    let warnings = config.warnings.join("\n");
    assert!(warnings.contains("disabled (enabled: false)"), "{warnings}");
    assert!(warnings.contains("plugin \"prometheus\""), "{warnings}");
}

#[test]
fn disabled_plugin_is_honoured() {
    let yaml = deck("", "").replace(
        "    - name: ai-proxy-advanced\n",
        "    - name: ai-proxy-advanced\n      enabled: false\n",
    );
    let err = parse_deck("x.yaml", &yaml).expect_err("nothing to serve");
    assert!(matches!(err, ConfigError::NoAiRoutes { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("x.yaml: no route has an enabled ai-proxy-advanced")
    );
}

#[test]
fn misspelled_algorithm_names_line_path_and_choices() {
    let yaml = deck("", "").replace("algorithm: round-robin", "algorithm: round-robbin");
    let (line, col) = position(&yaml, "round-robbin");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.balancer.algorithm: \
             unknown value \"round-robbin\", expected one of round-robin, lowest-latency, \
             lowest-usage, least-connections, consistent-hashing, priority, semantic"
        )
    );
}

#[test]
fn other_enum_values_are_checked_the_same_way() {
    let yaml = deck("          failover_criteria: [error, http_418]", "");
    let (line, col) = position(&yaml, "http_418");
    let err = error(&yaml);
    assert!(
        err.starts_with(&format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.balancer.failover_criteria[1]: unknown value \"http_418\""
        )),
        "{err}"
    );

    let yaml = deck("", "").replace("provider: bedrock", "provider: bedrok");
    let (line, _) = position(&yaml, "bedrok");
    let err = error(&yaml);
    assert!(
        err.starts_with(&format!(
            "x.yaml:{line}:23: services[0].routes[0].plugins[0].config.targets[0].model.provider: unknown value \"bedrok\", expected one of openai, azure,"
        )),
        "{err}"
    );

    let yaml = deck("", "").replace("llm/v1/chat", "llm/v2/chat");
    let (line, col) = position(&yaml, "llm/v2/chat");
    let err = error(&yaml);
    assert!(
        err.starts_with(&format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.targets[0].route_type: unknown value \"llm/v2/chat\", expected one of llm/v1/chat,"
        )),
        "{err}"
    );
}

#[test]
fn a_route_mixing_chat_and_embeddings_targets_is_refused_at_the_odd_one() {
    let second = "        - model:\n            provider: bedrock\n            name: amazon.titan-embed-text-v2:0\n          route_type: llm/v1/embeddings";
    let yaml = deck("", second);
    let (line, col) = position(&yaml, "llm/v1/embeddings");
    let err = error(&yaml);
    assert!(
        err.starts_with(&format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.targets[1].route_type: \"llm/v1/embeddings\" differs from targets[0]'s \"llm/v1/chat\""
        )),
        "{err}"
    );
}

#[test]
fn what_aigw_cannot_serve_yet_is_refused_with_line_and_path() {
    // semantic needs its embeddings model (and vectordb), as in Kong.
    let yaml = deck("", "").replace("algorithm: round-robin", "algorithm: semantic");
    let err = error(&yaml);
    assert!(
        err.starts_with("x.yaml:")
            && err.contains(
                "services[0].routes[0].plugins[0].config.embeddings: required field missing"
            ),
        "{err}"
    );

    let yaml = deck("", "").replace("provider: bedrock", "provider: anthropic");
    let (line, col) = position(&yaml, "anthropic");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.targets[0].model.provider: \
             \"anthropic\" is not supported yet (supported: bedrock, openai)"
        )
    );

    let yaml = deck("          hash_on_header: X Session", "")
        .replace("algorithm: round-robin", "algorithm: consistent-hashing");
    let (line, col) = position(&yaml, "X Session");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.balancer.hash_on_header: \
             \"X Session\" is not a valid header name"
        )
    );
    let yaml = deck("          hash_on_header: X-Session", "")
        .replace("algorithm: round-robin", "algorithm: consistent-hashing");
    parse_deck("x.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn cost_strategy_needs_a_price_on_every_target_of_lowest_usage() {
    let yaml = deck("          tokens_count_strategy: cost", "")
        .replace("algorithm: round-robin", "algorithm: lowest-usage");
    // No options at all: the error points at the model that should hold them.
    let (line, col) = position(&yaml, "provider: bedrock");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.targets[0].model.options: \
             no input_cost or output_cost, which balancer.tokens_count_strategy \"cost\" needs \
             (a missing price would make the target look free and take all the traffic)"
        )
    );
    let priced = yaml.replace(
        "            name: m1\n",
        "            name: m1\n            options:\n              output_cost: 0.6\n",
    );
    let config = parse_deck("x.yaml", &priced).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.routes[0].ai.targets[0].model.options.output_cost,
        Some(0.6)
    );
}

#[test]
fn a_plugin_no_route_runs_is_not_refused_for_what_it_would_need() {
    // The route's own plugin wins over the global one, which therefore serves nothing.
    let yaml = format!(
        "{}plugins:\n- name: ai-proxy-advanced\n  config:\n    balancer: {{algorithm: semantic}}\n    \
         targets:\n    - model: {{provider: anthropic, name: m}}\n      route_type: llm/v1/chat\n",
        deck("", "")
    );
    let config = parse_deck("x.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.routes[0].ai.balancer.algorithm,
        Algorithm::RoundRobin
    );
}

#[test]
fn weight_out_of_range_is_rejected_with_its_line() {
    for weight in ["0", "70000", "-1"] {
        let yaml = deck("", &format!("          weight: {weight}"));
        let (line, col) = position(&yaml, &format!("weight: {weight}"));
        assert_eq!(
            error(&yaml),
            format!(
                "x.yaml:{line}:{}: services[0].routes[0].plugins[0].config.targets[0].weight: \
                 must be between 1 and 65535, got {weight}",
                col + "weight: ".len()
            )
        );
    }
    let yaml = deck("", "          weight: 65535");
    let config = parse_deck("x.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.routes[0].ai.targets[0].weight, 65_535);
}

#[test]
fn type_errors_name_path_and_line() {
    let yaml = deck("          retries: lots", "");
    let (line, col) = position(&yaml, "lots");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.balancer.retries: \
             invalid type: found string \"lots\", expected an integer"
        )
    );

    let yaml = deck("", "").replace("    - /chat\n", "    - /chat\n    - [nested]\n");
    let (line, col) = position(&yaml, "[nested]");
    let err = error(&yaml);
    assert!(
        err.starts_with(&format!(
            "x.yaml:{line}:{col}: services[0].routes[0].paths[1]: invalid type"
        )),
        "{err}"
    );
}

#[test]
fn missing_model_name_points_at_the_model_mapping() {
    let yaml = deck("", "").replace("            name: m1\n", "");
    let (line, col) = position(&yaml, "provider: bedrock");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.targets[0].model.name: \
             required field missing"
        )
    );
}

#[test]
fn route_rules_are_located() {
    // No paths: points at the route's mapping.
    let yaml = deck("", "").replace("    paths:\n    - /chat\n", "");
    let (line, _) = position(&yaml, "name: route1");
    let err = error(&yaml);
    assert!(
        err.starts_with(&format!("x.yaml:{line}:5: services[0].routes[0].paths: route route1 has an ai-proxy-advanced plugin but no paths")),
        "{err}"
    );

    // A path that starts with neither "/" nor "~".
    let yaml = deck("", "").replace("- /chat", "- chat");
    let (line, col) = position(&yaml, "- chat");
    assert!(error(&yaml).starts_with(&format!(
        "x.yaml:{line}:{}: services[0].routes[0].paths[0]: path \"chat\" must start with \"/\"",
        col + 2
    )),);

    // Kong's router attributes, each refused where it is wrong: a regex path the regex
    // crate cannot compile, a lowercase method, a misplaced wildcard, a header regex, an
    // unknown path_handling.
    for (replacement, at, field, says) in [
        ("- ~/chat(", "~/chat(", "paths[0]", "does not compile"),
        (
            "- /chat\n    methods: [post]",
            "post",
            "methods[0]",
            "uppercase",
        ),
        (
            "- /chat\n    hosts: [a.*.com]",
            "a.*.com",
            "hosts[0]",
            "wildcard",
        ),
        (
            "- /chat\n    headers: {x-team: [\"~*(\"]}",
            "\"~*(\"",
            "headers.x-team[0]",
            "does not compile",
        ),
        (
            "- /chat\n    path_handling: v9",
            "v9",
            "path_handling",
            "v0, v1",
        ),
    ] {
        let yaml = deck("", "").replace("- /chat", replacement);
        let (line, col) = position(&yaml, at);
        let err = error(&yaml);
        let want = format!("x.yaml:{line}:{col}: services[0].routes[0].{field}: ");
        assert!(
            err.starts_with(&want) && err.contains(says),
            "{replacement}: {err}"
        );
    }

    // No targets.
    let yaml = format!(
        "{}        targets: []\n",
        deck("", "")
            .split("        targets:\n")
            .next()
            .unwrap_or_default()
    );
    let (line, col) = position(&yaml, "[]");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.targets: at least one target is required"
        )
    );
}

#[test]
fn duplicate_paths_across_routes_are_an_error() {
    let yaml = r#"_format_version: "3.0"
services:
- name: svc
  plugins:
  - name: ai-proxy-advanced
    config:
      targets:
      - model: {provider: bedrock, name: m}
        route_type: llm/v1/chat
  routes:
  - name: one
    paths: [/a, /b]
  - name: two
    paths:
    - /c
    - /b
"#;
    let (line, col) = position(yaml, "- /b");
    assert_eq!(
        error(yaml),
        format!(
            "x.yaml:{line}:{}: services[0].routes[1].paths[1]: duplicate path \"/b\": route one already has it (services[0].routes[0].paths[1])",
            col + 2
        )
    );
}

#[test]
fn format_version_and_document_shape() {
    let yaml = deck("", "").replace("\"3.0\"", "\"2.0\"");
    assert_eq!(
        error(&yaml),
        "x.yaml:1:18: _format_version: unsupported decK format version \"2.0\", expected \"3.0\" or \"1.1\""
    );
    let yaml = deck("", "").replace("_format_version: \"3.0\"\n", "");
    assert!(error(&yaml).starts_with("x.yaml:1:1: _format_version: required field missing"));
    let yaml = deck("", "").replace("\"3.0\"", "3.0");
    assert!(
        parse_deck("x.yaml", &yaml).is_ok(),
        "an unquoted 3.0 is fine"
    );

    assert!(error("").starts_with("x.yaml: the file is empty"));
    assert!(error("- a\n- b\n").starts_with("x.yaml:1:1: expected a mapping"));

    let yaml = "_format_version: \"3.0\"\nservices: [\n";
    let err = parse_deck("x.yaml", yaml).expect_err("bad yaml");
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert!(
        err.to_string().starts_with("x.yaml:3:1: invalid YAML: "),
        "{err}"
    );

    let yaml = "_format_version: \"3.0\"\nservices: []\nservices: []\n";
    assert_eq!(
        error(yaml),
        "x.yaml:3:1: services: duplicate key; each key may appear once in a mapping"
    );
    let yaml = deck("", "").replace(
        "            name: m1\n",
        "            name: m1\n            name: m2\n",
    );
    let (line, col) = position(&yaml, "name: m2");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.targets[0].model.name: duplicate key; each key may appear once in a mapping"
        )
    );

    let yaml = "_format_version: \"3.0\"\nservices: []\n";
    assert_eq!(
        error(yaml),
        "x.yaml: no route has an enabled ai-proxy-advanced plugin (on the route, its service, or globally); nothing to serve"
    );
}

#[test]
fn missing_file_is_a_read_error() {
    let err = load_deck(Path::new("does/not/exist.yaml")).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("does/not/exist.yaml: cannot read file:"),
        "{err}"
    );
}

#[test]
fn unknown_config_fields_are_warnings_with_lines() {
    let yaml = deck("          algoritm: priority", "");
    let (line, col) = position(&yaml, "algoritm");
    let config = parse_deck("x.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.warnings,
        [format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.balancer.algoritm: \
             unknown field, ignored (not an ai-proxy-advanced field aigw knows)"
        )]
    );
    // Kong fields that aigw does not act on are accepted quietly, as decK dumps have them.
    let yaml = deck(
        "          tokens_count_strategy: cost",
        "          auth:\n            azure_use_managed_identity: false\n            gcp_use_service_account: false",
    );
    let config = parse_deck("x.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn global_plugin_with_unknown_route_is_an_error() {
    let yaml = r#"_format_version: "3.0"
services:
- name: svc
  routes:
  - name: one
    paths: [/a]
plugins:
- name: ai-proxy-advanced
  route: onee
  config:
    targets:
    - model: {provider: bedrock, name: m}
      route_type: llm/v1/chat
"#;
    assert_eq!(
        error(yaml),
        "x.yaml:9:10: plugins[0].route: no route named \"onee\" in this file"
    );
}

#[test]
fn half_a_credential_is_an_error() {
    let yaml = deck(
        "",
        "          auth:\n            header_name: Authorization",
    );
    let (line, col) = position(&yaml, "header_name");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.targets[0].auth.header_value: \
             required field missing: header_name, header_value must be set together"
        )
    );
}

#[test]
fn auth_debug_hides_secrets() {
    let auth = TargetAuth {
        aws_access_key_id: Some("AKIDEXAMPLE".into()),
        aws_secret_access_key: Some("super-secret-value".into()),
        header_value: Some("Bearer sk-123".into()),
        ..TargetAuth::default()
    };
    let shown = format!("{auth:?}");
    for secret in ["AKIDEXAMPLE", "super-secret-value", "sk-123"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("<redacted>"));
    let config = fixture("service-plugin.yaml");
    let shown = format!("{config:?}");
    assert!(!shown.contains("super-secret-value"));
}

#[test]
fn env_vault_references_are_resolved() {
    Jail::expect_with(|jail| {
        let yaml = deck(
            "",
            "          auth:\n            aws_access_key_id: \"{vault://env/aigw-test-key-id}\"\n            aws_secret_access_key: \"{vault://env/AIGW_TEST_SECRET}\"",
        );
        let err = parse_deck("x.yaml", &yaml).expect_err("unset");
        assert!(
            err.to_string().contains("auth.aws_access_key_id: vault reference \"{vault://env/aigw-test-key-id}\": environment variable AIGW_TEST_KEY_ID is not set"),
            "{err}"
        );
        jail.set_env("AIGW_TEST_KEY_ID", "AKIDFROMENV");
        jail.set_env("AIGW_TEST_SECRET", "secret-from-env");
        let config = parse_deck("x.yaml", &yaml).map_err(|e| e.to_string())?;
        let auth = &config.routes[0].ai.targets[0].auth;
        assert_eq!(auth.aws_access_key_id.as_deref(), Some("AKIDFROMENV"));
        assert_eq!(
            auth.aws_secret_access_key.as_deref(),
            Some("secret-from-env")
        );
        // The operator is told where it came from, not what it is.
        assert_eq!(
            auth.source_of("aws_access_key_id").to_string(),
            "env AIGW_TEST_KEY_ID (vault reference)"
        );
        Ok(())
    });
}

#[test]
fn option_ranges_are_checked() {
    let yaml = deck("", "").replace(
        "            name: m1\n",
        "            name: m1\n            options:\n              temperature: 9\n",
    );
    let (line, col) = position(&yaml, "9");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.targets[0].model.options.temperature: \
             must be between 0 and 5, got 9"
        )
    );
    let yaml = deck("          slots: 5", "");
    assert!(error(&yaml).contains("config.balancer.slots: must be between 10 and 65536, got 5"));
}

#[test]
fn other_plugins_are_one_warning_per_name_and_consumer_plugins_are_skipped() {
    let yaml = format!(
        "{}plugins:\n- name: cors\n- name: cors\n- name: ai-proxy-advanced\n  consumer: alice\n  config: {{}}\n",
        deck("", "")
    );
    let config = parse_deck("x.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.routes.len(), 1);
    let cors: Vec<&String> = config
        .warnings
        .iter()
        .filter(|w| w.contains("cors"))
        .collect();
    assert_eq!(cors.len(), 1, "{:?}", config.warnings);
    assert!(cors[0].contains("plugins[0]: plugin \"cors\" only observes traffic and is not run by aigw; ignored (2 instances; this is the first)"));
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("plugins[2]: ai-proxy-advanced scoped to a consumer")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn deck_env_references_resolve_in_any_string_and_a_missing_one_is_located() {
    Jail::expect_with(|jail| {
        // The issue's own shape: the reference inside a double-quoted YAML string.
        let yaml = deck(
            "",
            "          auth:\n            header_name: Authorization\n            header_value: \"Bearer ${{ env \\\"DECK_AIGW_TEST_KEY\\\" }}\"",
        )
        .replace(
            "            name: m1\n",
            "            name: m1\n            options:\n              upstream_url: ${{ env \"DECK_AIGW_TEST_URL\" }}/v1/chat/completions\n",
        );
        let err = parse_deck("x.yaml", &yaml).expect_err("unset").to_string();
        let (line, col) = position(&yaml, "Bearer");
        assert_eq!(
            err,
            format!(
                "x.yaml:{line}:{}: services[0].routes[0].plugins[0].config.targets[0].auth.header_value: \
                 ${{{{ env \"DECK_AIGW_TEST_KEY\" }}}}: environment variable \
                 DECK_AIGW_TEST_KEY is not set",
                col - 1
            )
        );

        jail.set_env("DECK_AIGW_TEST_KEY", "sk-from-env");
        let err = parse_deck("x.yaml", &yaml)
            .expect_err("url unset")
            .to_string();
        assert!(err.contains("model.options.upstream_url"), "{err}");
        assert!(err.contains("DECK_AIGW_TEST_URL is not set"), "{err}");

        jail.set_env("DECK_AIGW_TEST_URL", "http://127.0.0.1:9800");
        let config = parse_deck("x.yaml", &yaml).map_err(|e| e.to_string())?;
        let target = &config.routes[0].ai.targets[0];
        assert_eq!(
            target.auth.header_value.as_deref(),
            Some("Bearer sk-from-env")
        );
        assert_eq!(
            target.model.options.upstream_url.as_deref(),
            Some("http://127.0.0.1:9800/v1/chat/completions")
        );
        // The resolved secret stays out of Debug, which is what logs print.
        assert!(!format!("{config:?}").contains("sk-from-env"));
        assert_eq!(
            target.auth.source_of("header_value").to_string(),
            "env DECK_AIGW_TEST_KEY (decK reference)"
        );
        Ok(())
    });
}

#[test]
fn deck_env_references_read_only_deck_variables() {
    let yaml = deck(
        "",
        "          auth:\n            aws_access_key_id: x\n            aws_secret_access_key: ${{ env \"AWS_SECRET_ACCESS_KEY\" }}",
    );
    let err = error(&yaml);
    assert!(
        err.contains("auth.aws_secret_access_key: ${{ env")
            && err.contains("decK reads only variables named DECK_*"),
        "{err}"
    );
}

/// The plugins aigw enforces besides key-auth load from the file unchanged, with Kong's
/// defaults, the most specific instance winning.
#[test]
fn enforced_plugins_load_with_kong_defaults() {
    let yaml = format!(
        "{}consumers:\n- username: alice\n  basicauth_credentials:\n  - username: alice\n    password: open-sesame\n\
         plugins:\n- name: basic-auth\n- name: ip-restriction\n  config:\n    deny: [10.0.0.0/8, \"2001:db8::/32\"]\n\
         - name: request-size-limiting\n  config:\n    allowed_payload_size: 2\n    size_unit: kilobytes\n\
         - name: request-termination\n  route: route1\n  config:\n    status_code: 418\n    message: brewing\n",
        deck("", "").replace(
            "    plugins:\n",
            "    plugins:\n    - name: ip-restriction\n      config:\n        allow: [127.0.0.1]\n        status: 404\n",
        )
    );
    let config = parse_deck("x.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    let route = &config.routes[0];
    let basic = route.basic_auth.as_ref().expect("basic-auth");
    assert_eq!(basic.realm, "aigw");
    assert_eq!(basic.credentials.len(), 1);
    assert_eq!(
        basic.credentials[0].digest,
        BasicCredential::digest(b"alice", b"open-sesame")
    );
    assert!(!format!("{config:?}").contains("open-sesame"));
    let ip = route.ip_restriction.as_ref().expect("ip-restriction");
    assert_eq!(ip.status, 404, "the route's own instance wins");
    assert!(ip.deny.is_empty());
    assert!(ip.allows("127.0.0.1".parse().expect("ip")));
    assert_eq!(ip.message, "Your IP address is not allowed");
    let size = route.request_size_limiting.expect("request-size-limiting");
    assert_eq!(size.max_bytes, 2048);
    assert!(!size.require_content_length);
    let stop = route
        .request_termination
        .as_ref()
        .expect("request-termination");
    assert_eq!((stop.status, stop.message.as_str()), (418, "brewing"));
    assert!(stop.body.is_none());
}

#[test]
fn enforced_plugin_configs_are_checked_with_lines() {
    let global = |plugin: &str| format!("{}plugins:\n{plugin}", deck("", ""));
    let cases = [
        (
            "- name: ip-restriction\n  config:\n    allow: [10.0.0.0/33]\n",
            "10.0.0.0/33",
            "plugins[0].config.allow[0]: \"10.0.0.0/33\" is not an IP address or CIDR block",
        ),
        (
            "- name: request-termination\n  config:\n    status_code: 700\n",
            "700",
            "plugins[0].config.status_code: must be an HTTP status between 100 and 599, got 700",
        ),
        (
            "- name: request-size-limiting\n  config:\n    size_unit: gigabytes\n",
            "gigabytes",
            "plugins[0].config.size_unit: unknown value \"gigabytes\"",
        ),
        (
            "- name: request-termination\n  config:\n    echo: true\n",
            "true",
            "plugins[0].config.echo: echo: true is not supported",
        ),
    ];
    for (plugin, at, message) in cases {
        let yaml = global(plugin);
        let (line, col) = position(&yaml, at);
        let err = error(&yaml);
        assert!(
            err.starts_with(&format!("x.yaml:{line}:{col}: {message}")),
            "{err}"
        );
    }
}

/// A credential written as a number is refused like any wrong type, without the number.
#[test]
fn a_numeric_secret_is_never_echoed() {
    for consumers in [
        "consumers:\n- username: a\n  keyauth_credentials:\n  - key: 987654321\n",
        "consumers:\n- username: a\n  basicauth_credentials:\n  - username: a\n    password: 987654321\n",
    ] {
        let yaml = format!("{}{consumers}", deck("", ""));
        let err = error(&yaml);
        assert!(!err.contains("987654321"), "{err}");
        let (line, _) = position(&yaml, "987654321");
        assert!(err.contains(&format!("x.yaml:{line}:")), "{err}");
        assert!(err.contains("invalid type: expected a string"), "{err}");
    }
}

/// A route on the gateway's own paths would never be reached.
#[test]
fn routes_on_the_gateways_own_paths_are_refused() {
    for path in [
        "/health",
        "/aigw.v1.ChatService/Chat",
        "/grpc.health.v1.Health/Check",
    ] {
        let yaml = deck("", "").replace("    - /chat\n", &format!("    - {path}\n"));
        let (line, col) = position(&yaml, path);
        let err = error(&yaml);
        assert!(
            err.starts_with(&format!(
                "x.yaml:{line}:{col}: services[0].routes[0].paths[0]: path {path:?} is the gateway's own"
            )),
            "{err}"
        );
    }
}

#[test]
fn zero_timeouts_are_refused() {
    for field in ["read_timeout", "connect_timeout", "write_timeout"] {
        let yaml = deck(&format!("          {field}: 0"), "");
        let err = error(&yaml);
        let (line, col) = position(&yaml, &format!("{field}: 0"));
        assert!(
            err.starts_with(&format!(
                "x.yaml:{line}:{}: services[0].routes[0].plugins[0].config.balancer.{field}: must be between 1 and",
                col + field.len() + 2
            )),
            "{err}"
        );
    }
    let ok = deck("          read_timeout: 1", "");
    assert!(parse_deck("x.yaml", &ok).is_ok());
}

#[test]
fn files_beyond_the_documented_size_are_refused() {
    let big = format!("{}#{}\n", deck("", ""), "x".repeat(MAX_DECK_BYTES as usize));
    let err = error(&big);
    assert!(err.contains("at most 8388608 bytes"), "{err}");

    let mut routes = String::new();
    for i in 0..=MAX_ROUTES {
        routes.push_str(&format!("  - name: r{i}\n    paths: [/r{i}]\n"));
    }
    let mut yaml = deck("", "").replace("  routes:\n", &format!("  routes:\n{routes}"));
    yaml.push_str(
        "plugins:\n- name: ai-proxy-advanced\n  config:\n    targets:\n    - model: {provider: bedrock, name: m}\n      route_type: llm/v1/chat\n",
    );
    let err = error(&yaml);
    assert!(
        err.contains("more than 1000 routes would be served (1002 are)"),
        "{err}"
    );
}

#[test]
fn jwt_loads_consumers_secrets_and_refuses_what_it_cannot_verify() {
    let plugin = "plugins:\n- name: jwt\n  config:\n    claims_to_verify: [exp]\n";
    let ok = format!(
        "{}consumers:\n- username: alice\n  jwt_secrets:\n  - key: alice-hs\n    secret: s3cret-hmac\n{plugin}",
        deck("", "")
    );
    let config = parse_deck("x.yaml", &ok).unwrap_or_else(|e| panic!("{e}"));
    let jwt = config.routes[0].jwt.as_ref().expect("jwt");
    assert!(jwt.verify_exp && !jwt.verify_nbf);
    assert_eq!(jwt.key_claim_name, "iss");
    assert_eq!(jwt.header_names, ["authorization"]);
    assert_eq!(jwt.credentials[0].algorithm, "HS256");
    assert!(!format!("{config:?}").contains("s3cret-hmac"));

    let es512 = format!(
        "{}consumers:\n- username: alice\n  jwt_secrets:\n  - key: k\n    algorithm: ES512\n    rsa_public_key: x\n{plugin}",
        deck("", "")
    );
    let (line, col) = position(&es512, "ES512");
    assert!(
        error(&es512).starts_with(&format!(
            "x.yaml:{line}:{col}: consumers[0].jwt_secrets[0].algorithm: \"ES512\" is not supported"
        )),
        "{}",
        error(&es512)
    );
    let no_key = format!(
        "{}consumers:\n- username: alice\n  jwt_secrets:\n  - key: k\n    algorithm: RS256\n{plugin}",
        deck("", "")
    );
    assert!(error(&no_key).contains("RS256 needs rsa_public_key"));
}

#[test]
fn llm_format_openai_and_anthropic_load_and_others_are_refused_with_line() {
    let with = |format: &str| {
        deck("", "").replace(
            "      config:\n",
            &format!("      config:\n        llm_format: {format}\n"),
        )
    };
    let format_of = |yaml: &str| {
        let config = parse_deck("x.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
        route(&config, "route1").ai.llm_format
    };
    assert_eq!(format_of(&deck("", "")), crate::LlmFormat::OpenAi);
    assert_eq!(format_of(&with("openai")), crate::LlmFormat::OpenAi);
    assert_eq!(format_of(&with("anthropic")), crate::LlmFormat::Anthropic);
    assert_eq!(format_of(&with("bedrock")), crate::LlmFormat::Bedrock);

    let yaml = with("gemini");
    let (line, col) = position(&yaml, "gemini");
    assert_eq!(
        error(&yaml),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.llm_format: \
             llm_format \"gemini\" is not supported; aigw serves openai, anthropic and bedrock"
        )
    );
}

#[test]
fn a_bedrock_format_route_refuses_a_target_of_another_provider_with_line() {
    let yaml = deck("", "").replace(
        "      config:\n",
        "      config:\n        llm_format: bedrock\n",
    );
    let config = parse_deck("x.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        route(&config, "route1").ai.llm_format,
        crate::LlmFormat::Bedrock
    );

    let openai = yaml.replace("provider: bedrock", "provider: openai");
    let (line, col) = position(&openai, "openai");
    assert_eq!(
        error(&openai),
        format!(
            "x.yaml:{line}:{col}: services[0].routes[0].plugins[0].config.targets[0].model.provider: \
             llm_format bedrock takes bedrock targets only, not \"openai\""
        )
    );
}

#[test]
fn kongs_claude_code_bedrock_example_loads_unchanged() {
    // Kong's claude-code-bedrock.yaml example config, its variables filled in.
    let yaml = r#"_format_version: "3.0"
services:
- name: claude-code
  url: http://localhost:32000
  routes:
  - name: claude
    paths: [/anthropic]
    plugins:
    - name: ai-proxy-advanced
      config:
        llm_format: anthropic
        targets:
        - route_type: llm/v1/chat
          auth:
            allow_override: false
            aws_access_key_id: AKIAEXAMPLE
            aws_secret_access_key: secret-example
          model:
            provider: bedrock
            name: us.anthropic.claude-haiku-4-5-20251001-v1:0
            options:
              anthropic_version: bedrock-2023-05-31
              bedrock:
                aws_region: us-west-2
              max_tokens: 8192
"#;
    let config = parse_deck("x.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let ai = &route(&config, "claude").ai;
    assert_eq!(ai.llm_format, crate::LlmFormat::Anthropic);
    assert_eq!(ai.targets[0].model.options.max_tokens, Some(8192));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}
