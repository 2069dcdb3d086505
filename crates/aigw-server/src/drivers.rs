//! The driver registry: the one place that knows which provider crates exist and how a
//! Kong target's config becomes each one's spec.
//!
//! Adding a provider is its driver crate plus one [`DriverFactory`] here, listed in
//! [`DriverRegistry::new`]; the balancer, the front ends and `stack.rs` stay unchanged.

use std::time::Duration;

use aigw_bedrock::{BedrockProvider, BedrockTargetSpec};
use aigw_config::{BalancerConfig, ModelOptions, Provider, TargetAuth, TargetConfig};
use aigw_core::{BoxDriver, Chat, CountTokensService, Driver, Error, ErrorKind, RequestDefaults};
use aigw_openai::{OpenAiProvider, OpenAiTargetSpec};
use futures_util::future::BoxFuture;

use crate::BuildOptions;

/// What building one target's driver may look at besides the target itself.
pub(crate) struct TargetContext<'a> {
    /// The route's balancer settings (connect timeout, …).
    pub(crate) balancer: &'a BalancerConfig,
    /// Overrides for tests and the demo.
    pub(crate) options: &'a BuildOptions,
}

/// Builds drivers of one provider; holds what its targets share (SDK or HTTP clients).
///
/// Called at start only, once per target; nothing here runs on the request path.
pub(crate) trait DriverFactory: Send + Sync {
    /// The `model.provider` this factory serves.
    fn provider(&self) -> Provider;

    /// Builds one target's driver from its config.
    fn build<'a>(
        &'a self,
        target: &'a TargetConfig,
        cx: &'a TargetContext<'a>,
    ) -> BoxFuture<'a, Result<BoxDriver, Error>>;

    /// Builds one target's token counter, where the provider can count a prompt without
    /// answering it (Anthropic's `count_tokens`); `None` where it cannot.
    fn token_counter<'a>(
        &'a self,
        _target: &'a TargetConfig,
        _cx: &'a TargetContext<'a>,
    ) -> BoxFuture<'a, Result<Option<CountTokensService>, Error>> {
        Box::pin(async { Ok(None) })
    }
}

/// Every provider aigw can call, by `model.provider`.
pub(crate) struct DriverRegistry {
    factories: Vec<Box<dyn DriverFactory>>,
}

impl DriverRegistry {
    /// The built-in drivers. Register a new provider here.
    pub(crate) fn new() -> Self {
        DriverRegistry {
            factories: vec![
                Box::new(BedrockFactory::default()),
                Box::new(OpenAiFactory::default()),
            ],
        }
    }

    /// Builds `target`'s driver with the factory for its provider.
    pub(crate) async fn build(
        &self,
        target: &TargetConfig,
        cx: &TargetContext<'_>,
    ) -> Result<BoxDriver, Error> {
        self.factory(target)?.build(target, cx).await
    }

    /// Builds `target`'s token counter, if its provider can count.
    pub(crate) async fn token_counter(
        &self,
        target: &TargetConfig,
        cx: &TargetContext<'_>,
    ) -> Result<Option<CountTokensService>, Error> {
        self.factory(target)?.token_counter(target, cx).await
    }

    fn factory(&self, target: &TargetConfig) -> Result<&dyn DriverFactory, Error> {
        let provider = target.model.provider;
        match self.factories.iter().find(|f| f.provider() == provider) {
            Some(factory) => Ok(factory.as_ref()),
            // The config refuses providers without a driver, so this is a registry that
            // fell out of step with `Provider::SUPPORTED` (a test below guards that).
            None => Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "no driver registered for model.provider {:?}",
                    provider.as_str()
                ),
            )),
        }
    }
}

/// The Bedrock spec of one model at one target: its region and endpoint from the
/// config, else the demo's and tests' overrides in `options`, and likewise credentials.
pub(crate) fn bedrock_spec(
    model: &str,
    model_options: &ModelOptions,
    auth: &TargetAuth,
    options: &BuildOptions,
    connect_timeout: Duration,
) -> BedrockTargetSpec {
    let static_credentials = match (&auth.aws_access_key_id, &auth.aws_secret_access_key) {
        (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
        _ => options.bedrock_credentials.clone(),
    };
    BedrockTargetSpec {
        model_id: model.to_owned(),
        region: model_options.bedrock.aws_region.clone(),
        endpoint_url: model_options
            .upstream_url
            .clone()
            .or_else(|| options.bedrock_endpoint.clone()),
        static_credentials,
        connect_timeout,
    }
}

fn bedrock_target_spec(target: &TargetConfig, cx: &TargetContext<'_>) -> BedrockTargetSpec {
    bedrock_spec(
        &target.model.name,
        &target.model.options,
        &target.auth,
        cx.options,
        cx.balancer.connect_timeout,
    )
}

#[derive(Default)]
struct BedrockFactory {
    provider: BedrockProvider,
}

impl DriverFactory for BedrockFactory {
    fn provider(&self) -> Provider {
        Provider::Bedrock
    }

    fn build<'a>(
        &'a self,
        target: &'a TargetConfig,
        cx: &'a TargetContext<'a>,
    ) -> BoxFuture<'a, Result<BoxDriver, Error>> {
        Box::pin(async move {
            let spec = bedrock_target_spec(target, cx);
            Ok(shell(self.provider.target(spec).await?, target, cx))
        })
    }

    fn token_counter<'a>(
        &'a self,
        target: &'a TargetConfig,
        cx: &'a TargetContext<'a>,
    ) -> BoxFuture<'a, Result<Option<CountTokensService>, Error>> {
        Box::pin(async move {
            let spec = bedrock_target_spec(target, cx);
            Ok(Some(self.provider.token_counter(spec).await?))
        })
    }
}

#[derive(Default)]
struct OpenAiFactory {
    provider: OpenAiProvider,
}

impl DriverFactory for OpenAiFactory {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }

    fn build<'a>(
        &'a self,
        target: &'a TargetConfig,
        cx: &'a TargetContext<'a>,
    ) -> BoxFuture<'a, Result<BoxDriver, Error>> {
        Box::pin(async move {
            let credentials = openai_credentials(&target.auth);
            let model_options = &target.model.options;
            let spec = OpenAiTargetSpec {
                model: target.model.name.clone(),
                upstream_url: model_options.upstream_url.clone(),
                auth: credentials,
                connect_timeout: cx.balancer.connect_timeout,
            };
            Ok(shell(self.provider.target(spec).await?, target, cx))
        })
    }
}

/// Kong's `auth` for an OpenAI-compatible upstream: a header and/or a query or body
/// parameter.
pub(crate) fn openai_credentials(auth: &aigw_config::TargetAuth) -> Vec<aigw_openai::Auth> {
    let mut credentials = Vec::new();
    if let (Some(name), Some(value)) = (&auth.header_name, &auth.header_value) {
        credentials.push(aigw_openai::Auth::Header {
            name: name.clone(),
            value: value.clone(),
        });
    }
    if let (Some(name), Some(value), Some(location)) =
        (&auth.param_name, &auth.param_value, auth.param_location)
    {
        credentials.push(aigw_openai::Auth::Param {
            name: name.clone(),
            value: value.clone(),
            location: match location {
                aigw_config::ParamLocation::Query => aigw_openai::ParamLocation::Query,
                aigw_config::ParamLocation::Body => aigw_openai::ParamLocation::Body,
            },
        });
    }
    credentials
}

/// What every provider's target gets alike from its config, in core's driver shell.
fn shell<C: Chat>(driver: Driver<C>, target: &TargetConfig, cx: &TargetContext<'_>) -> BoxDriver {
    let options = &target.model.options;
    driver
        // A value the request sets wins over these.
        .with_defaults(RequestDefaults {
            max_tokens: options.max_tokens,
            temperature: options.temperature,
            top_p: options.top_p,
        })
        // Kong's read_timeout also bounds the gap between two reads of a stream.
        .with_stream_idle_timeout(cx.balancer.read_timeout)
        .into_driver()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config accepts exactly the providers registered here: one list cannot gain a
    /// provider the other lacks.
    #[test]
    fn registered_drivers_are_the_providers_the_config_accepts() {
        let mut registered: Vec<&str> = DriverRegistry::new()
            .factories
            .iter()
            .map(|f| f.provider().as_str())
            .collect();
        let mut accepted: Vec<&str> = Provider::SUPPORTED.iter().map(|p| p.as_str()).collect();
        registered.sort_unstable();
        accepted.sort_unstable();
        assert_eq!(registered, accepted);
        for provider in Provider::NAMES.iter().map(|n| n.parse::<Provider>()) {
            let provider = provider.expect("every Kong name parses");
            assert_eq!(
                provider.is_supported(),
                registered.contains(&provider.as_str()),
                "{provider}"
            );
        }
    }
}
