//! An ai-proxy-advanced plugin's config: its fields, with Kong's defaults and bounds, and
//! what aigw can serve of them.

use std::fmt::Display;
use std::time::Duration;

use crate::ConfigError;
use crate::enums::{Algorithm, Provider, ROUTE_TYPES, TokensCountStrategy};
use crate::model::{
    AiProxyConfig, BalancerConfig, BedrockOptions, LlmFormat, ModelConfig, ModelOptions,
    SecretSource, TargetAuth, TargetConfig, TargetLogging,
};
use crate::path::FieldPath;
use crate::raw::{AiProxyRaw, AuthRaw, BalancerRaw, Int, Num, OptionsRaw, PluginRaw, TargetRaw};
use crate::schema;

use super::Cx;

/// The plugin aigw implements.
pub(super) const AI_PROXY_ADVANCED: &str = "ai-proxy-advanced";

/// Kong's bound for its millisecond timeouts (`between = { 0, math.pow(2, 31) - 2 }`).
const MAX_MILLIS: u32 = 2_147_483_646;

impl Cx<'_> {
    /// The validated config of an enabled ai-proxy-advanced plugin; `None` (with a
    /// warning) when the plugin will not run.
    pub(super) fn plugin_config(
        &mut self,
        plugin: &PluginRaw,
        path: &FieldPath,
    ) -> Result<Option<AiProxyConfig>, ConfigError> {
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
        let llm_format = match raw.llm_format.as_deref() {
            None | Some("openai") => LlmFormat::OpenAi,
            Some("anthropic") => LlmFormat::Anthropic,
            Some("bedrock") => LlmFormat::Bedrock,
            // Serving a route meant for another wire format in OpenAI's would only fail
            // each client request; refusing the file says why at once.
            Some(other) => {
                return Err(self.invalid(
                    &base.key("llm_format"),
                    format!(
                        "llm_format {other:?} is not supported; aigw serves openai, anthropic and bedrock"
                    ),
                ));
            }
        };
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
        // One request is either chat or embeddings, so every target must serve its kind.
        let embeds = |t: &TargetConfig| t.route_type == "llm/v1/embeddings";
        if let Some(i) = targets
            .iter()
            .position(|t| embeds(t) != embeds(&targets[0]))
        {
            return Err(self.invalid(
                &targets_path.index(i).key("route_type"),
                format!(
                    "{:?} differs from targets[0]'s {:?}; a route's targets must all be llm/v1/embeddings or none",
                    targets[i].route_type, targets[0].route_type
                ),
            ));
        }
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
        // Both blocks missing is refused only where the plugin is served
        // (`check_supported`): a plugin no route runs needs nothing.
        let semantic = if balancer.algorithm == Algorithm::Semantic
            && (raw.embeddings.is_some() || raw.vectordb.is_some())
        {
            Some(self.semantic(base, raw.embeddings, raw.vectordb)?)
        } else {
            None
        };
        Ok(AiProxyConfig {
            instance_name,
            semantic,
            balancer,
            targets,
            response_streaming: raw.response_streaming.unwrap_or_default(),
            model_name_header: raw.model_name_header.unwrap_or(true),
            max_request_body_size: usize::try_from(max_request_body_size).unwrap_or(usize::MAX),
            llm_format,
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
            // Kong accepts 0, but a 0 ms timeout fails every request at once.
            connect_timeout: self.timeout(
                &base.key("connect_timeout"),
                raw.connect_timeout,
                kong.connect_timeout,
            )?,
            write_timeout: self.timeout(
                &base.key("write_timeout"),
                raw.write_timeout,
                kong.write_timeout,
            )?,
            read_timeout: self.timeout(
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

    pub(crate) fn options(
        &self,
        base: &FieldPath,
        raw: OptionsRaw,
    ) -> Result<ModelOptions, ConfigError> {
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
                embeddings_normalize: bedrock.embeddings_normalize.unwrap_or(false),
            },
        })
    }

    pub(crate) fn auth(&self, base: &FieldPath, raw: AuthRaw) -> Result<TargetAuth, ConfigError> {
        let secret = |key: &str, value: Option<String>| self.dereference(&base.key(key), value);
        let source = |key: &'static str, value: &Option<String>| {
            let value = value.as_deref()?;
            let path = base.key(key);
            let source = match crate::env::vault_variable(value) {
                Some(variable) => SecretSource::Vault(variable),
                None => match self.references.iter().find(|(p, _)| *p == path) {
                    Some((_, variables)) => SecretSource::DeckEnv(variables.clone()),
                    None => SecretSource::Literal,
                },
            };
            Some((key, source))
        };
        let sources = [
            source("aws_access_key_id", &raw.aws_access_key_id),
            source("aws_secret_access_key", &raw.aws_secret_access_key),
            source("header_value", &raw.header_value),
            source("param_value", &raw.param_value),
        ]
        .into_iter()
        .flatten()
        .collect();
        let auth = TargetAuth {
            allow_override: raw.allow_override.unwrap_or(false),
            aws_access_key_id: secret("aws_access_key_id", raw.aws_access_key_id)?,
            aws_secret_access_key: secret("aws_secret_access_key", raw.aws_secret_access_key)?,
            header_name: secret("header_name", raw.header_name)?,
            header_value: secret("header_value", raw.header_value)?,
            param_name: secret("param_name", raw.param_name)?,
            param_value: secret("param_value", raw.param_value)?,
            param_location: raw.param_location,
            sources,
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

    pub(crate) fn ranged<T>(
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

    pub(crate) fn ranged_opt<T>(
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

    /// A timeout every request waits on: like [`Cx::millis`], but 0 is refused.
    fn timeout(
        &self,
        path: &FieldPath,
        value: Option<Int>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        if value == Some(Int(0)) {
            return Err(self.invalid(
                path,
                format!(
                    "must be between 1 and {MAX_MILLIS} milliseconds, got 0 (a 0 ms timeout fails every request)"
                ),
            ));
        }
        self.millis(path, value, default)
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

    /// Refuses what the config allows but aigw cannot serve yet, so that `aigw check` and
    /// start-up fail alike, with the field, instead of a route silently falling back.
    /// `base` is the served plugin's `config`.
    pub(super) fn check_supported(
        &self,
        base: &FieldPath,
        ai: &AiProxyConfig,
    ) -> Result<(), ConfigError> {
        let balancer = &ai.balancer;
        let balancer_path = base.key("balancer");
        if balancer.algorithm == Algorithm::Semantic && ai.semantic.is_none() {
            return Err(self.invalid(
                &base.key("embeddings"),
                "required field missing: the semantic algorithm embeds prompts and the \
                 targets' descriptions with this model (and needs vectordb too)",
            ));
        }
        if balancer.algorithm == Algorithm::Semantic
            && !ai.targets.iter().any(|t| t.description.is_some())
        {
            return Err(self.invalid(
                &balancer_path.key("algorithm"),
                "\"semantic\" picks targets by their description, and no target has one",
            ));
        }
        for (index, target) in ai.targets.iter().enumerate() {
            let model_path = base.key("targets").index(index).key("model");
            let provider = target.model.provider;
            if !provider.is_supported() {
                let supported: Vec<&str> = Provider::SUPPORTED.iter().map(|p| p.as_str()).collect();
                return Err(self.invalid(
                    &model_path.key("provider"),
                    format!(
                        "{:?} is not supported yet (supported: {})",
                        provider.as_str(),
                        supported.join(", ")
                    ),
                ));
            }
            // As in Kong: a Bedrock-format request carries Bedrock-only fields
            // (guardrailConfig, additionalModelRequestFields) no other provider takes.
            if ai.llm_format == LlmFormat::Bedrock && provider != Provider::Bedrock {
                return Err(self.invalid(
                    &model_path.key("provider"),
                    format!(
                        "llm_format bedrock takes bedrock targets only, not {:?}",
                        provider.as_str()
                    ),
                ));
            }
            let options = &target.model.options;
            // Only lowest-usage reads the prices; other algorithms ignore the strategy.
            if balancer.algorithm == Algorithm::LowestUsage
                && balancer.tokens_count_strategy == TokensCountStrategy::Cost
                && options.input_cost.is_none()
                && options.output_cost.is_none()
            {
                return Err(self.invalid(
                    &model_path.key("options"),
                    "no input_cost or output_cost, which balancer.tokens_count_strategy \"cost\" \
                     needs (a missing price would make the target look free and take all the \
                     traffic)",
                ));
            }
        }
        // The same parser the server reads the header with, so what passes here is used.
        if balancer.algorithm == Algorithm::ConsistentHashing
            && http::HeaderName::try_from(balancer.hash_on_header.as_str()).is_err()
        {
            return Err(self.invalid(
                &balancer_path.key("hash_on_header"),
                format!("{:?} is not a valid header name", balancer.hash_on_header),
            ));
        }
        Ok(())
    }
}

/// Model options are carried as f32, as providers take them; the range check already
/// ran on the f64.
#[allow(clippy::cast_possible_truncation)]
fn narrow(v: f64) -> f32 {
    v as f32
}
