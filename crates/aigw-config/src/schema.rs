//! The keys Kong allows in an ai-proxy-advanced `config`, for warning about the others.
//!
//! Kong itself rejects unknown config keys. We only warn, because Kong adds fields with
//! every release and a file written for a newer Kong should still load; but a warning
//! still catches the typo (`algoritm:`) that would otherwise silently fall back to a
//! default. Keys Kong knows that aigw does not act on are listed here as [`Shape::Any`]
//! so that decK dumps, which spell out every field, load without noise.

use figment::value::Value;

/// What a key may hold.
pub(crate) enum Shape {
    /// Anything; not looked into.
    Any,
    /// A mapping with these keys.
    Record(&'static [(&'static str, Shape)]),
    /// A sequence of this.
    List(&'static Shape),
}

use Shape::{Any, List, Record};

const BEDROCK: Shape = Record(&[
    ("aws_region", Any),
    ("aws_assume_role_arn", Any),
    ("aws_role_session_name", Any),
    ("aws_sts_endpoint_url", Any),
    ("embeddings_normalize", Any),
    ("performance_config_latency", Any),
    ("video_output_s3_uri", Any),
]);

const OPTIONS: Shape = Record(&[
    ("max_tokens", Any),
    ("temperature", Any),
    ("top_p", Any),
    ("top_k", Any),
    ("input_cost", Any),
    ("output_cost", Any),
    ("upstream_url", Any),
    ("bedrock", BEDROCK),
    ("anthropic_version", Any),
    ("azure_instance", Any),
    ("azure_api_version", Any),
    ("azure_deployment_id", Any),
    ("llama2_format", Any),
    ("mistral_format", Any),
    ("upstream_path", Any),
    ("embeddings_dimensions", Any),
    ("gemini", Any),
    ("huggingface", Any),
    ("cohere", Any),
    ("dashscope", Any),
    ("databricks", Any),
]);

const MODEL: Shape = Record(&[("provider", Any), ("name", Any), ("options", OPTIONS)]);

const AUTH: Shape = Record(&[
    ("allow_override", Any),
    ("aws_access_key_id", Any),
    ("aws_secret_access_key", Any),
    ("header_name", Any),
    ("header_value", Any),
    ("param_name", Any),
    ("param_value", Any),
    ("param_location", Any),
    ("azure_use_managed_identity", Any),
    ("azure_client_id", Any),
    ("azure_client_secret", Any),
    ("azure_tenant_id", Any),
    ("gcp_use_service_account", Any),
    ("gcp_service_account_json", Any),
]);

const LOGGING: Shape = Record(&[("log_statistics", Any), ("log_payloads", Any)]);

const TARGET: Shape = Record(&[
    ("model", MODEL),
    ("route_type", Any),
    ("auth", AUTH),
    ("weight", Any),
    ("logging", LOGGING),
    ("description", Any),
]);

const BALANCER: Shape = Record(&[
    ("algorithm", Any),
    ("tokens_count_strategy", Any),
    ("latency_strategy", Any),
    ("hash_on_header", Any),
    ("slots", Any),
    ("retries", Any),
    ("connect_timeout", Any),
    ("write_timeout", Any),
    ("read_timeout", Any),
    ("failover_criteria", Any),
    ("max_fails", Any),
    ("fail_timeout", Any),
]);

/// ai-proxy-advanced's `config`.
pub(crate) const AI_PROXY_ADVANCED: Shape = Record(&[
    ("balancer", BALANCER),
    ("targets", List(&TARGET)),
    ("response_streaming", Any),
    ("model_name_header", Any),
    ("max_request_body_size", Any),
    ("llm_format", Any),
    ("embeddings", Any),
    ("vectordb", Any),
    ("genai_category", Any),
]);

/// Calls `unknown(path, key)` for every key of `value` that `shape` does not allow;
/// `path` is the list of steps to the mapping holding `key`, as figment writes them.
pub(crate) fn unknown_keys(value: &Value, shape: &Shape, unknown: &mut dyn FnMut(&[String], &str)) {
    let mut path = Vec::new();
    walk(value, shape, &mut path, unknown);
}

fn walk(
    value: &Value,
    shape: &Shape,
    path: &mut Vec<String>,
    unknown: &mut dyn FnMut(&[String], &str),
) {
    match (shape, value) {
        (Record(fields), Value::Dict(_, dict)) => {
            for (key, child) in dict {
                match fields.iter().find(|(name, _)| name == key) {
                    Some((_, child_shape)) => {
                        path.push(key.clone());
                        walk(child, child_shape, path, unknown);
                        path.pop();
                    }
                    None => unknown(path, key),
                }
            }
        }
        (List(item), Value::Array(_, items)) => {
            for (index, child) in items.iter().enumerate() {
                path.push(index.to_string());
                walk(child, item, path, unknown);
                path.pop();
            }
        }
        // A mismatched type was already reported by the typed read.
        _ => {}
    }
}
