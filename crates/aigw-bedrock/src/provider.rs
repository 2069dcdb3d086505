//! Builds targets and the SDK clients they share.

use std::fmt;
use std::time::Duration;

use aigw_core::{ClientCache, Error, ErrorKind};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::{Credentials, StalledStreamProtectionConfig};
use aws_smithy_runtime_api::client::auth::AuthSchemeId;

use crate::driver::{BedrockChat, BedrockDriver};
use crate::spec::BedrockTargetSpec;

/// The provider name credentials built from the config are tagged with, for SDK logs.
const CREDENTIALS_SOURCE: &str = "aigw-config";

/// SigV4's auth scheme id, as the SDK names it.
const SIGV4: AuthSchemeId = AuthSchemeId::new("sigv4");

/// Builds Bedrock targets, sharing one SDK client per distinct region, endpoint,
/// credentials and connect timeout.
///
/// Clients are built while targets are built, at start; a request only clones them.
/// Sharing matters because each client owns a connection pool and credential cache.
#[derive(Default)]
pub struct BedrockProvider {
    clients: ClientCache<ClientKey, Client>,
}

impl fmt::Debug for BedrockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockProvider").finish_non_exhaustive()
    }
}

impl BedrockProvider {
    /// A provider with no clients yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the target `spec` describes, reusing a client built for an earlier target
    /// with the same connection settings.
    ///
    /// Fails with [`ErrorKind::Internal`] when the spec cannot work: no model id, an
    /// endpoint URL that is not an absolute http(s) URL, or no region anywhere.
    pub async fn target(&self, spec: BedrockTargetSpec) -> Result<BedrockDriver, Error> {
        let model_id = spec.model_id.clone();
        let client = self.client(spec).await?;
        Ok(BedrockDriver::new(BedrockChat::new(client, &model_id)))
    }

    /// The SDK client for `spec`'s connection settings, shared with every target that has
    /// the same ones.
    pub(crate) async fn client(&self, spec: BedrockTargetSpec) -> Result<Client, Error> {
        if spec.model_id.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::Internal,
                "bedrock target has an empty model id",
            ));
        }
        if let Some(url) = &spec.endpoint_url {
            check_endpoint_url(url)?;
        }
        let key = ClientKey {
            region: spec.region,
            endpoint_url: spec.endpoint_url,
            credentials: spec.static_credentials,
            connect_timeout: spec.connect_timeout,
        };
        self.clients
            .get_or_build(key, build_client)
            .await
            .map_err(|err| err.context(format_args!("bedrock target {}", spec.model_id)))
    }

    /// How many distinct SDK clients the provider built so far.
    pub async fn client_count(&self) -> usize {
        self.clients.len().await
    }
}

/// What makes two targets need different clients.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials: Option<(String, String)>,
    connect_timeout: Duration,
}

async fn build_client(key: &ClientKey) -> Result<Client, Error> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        // The balancer owns retries and failover; SDK retries would only delay them.
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(key.connect_timeout)
                .build(),
        );
    if let Some(region) = &key.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &key.endpoint_url {
        // Programmatic, so it wins over AWS_ENDPOINT_URL_BEDROCK_RUNTIME; left unset, the
        // SDK applies that convention itself when the client is built.
        loader = loader.endpoint_url(url);
    }
    if let Some((key_id, secret)) = &key.credentials {
        loader = loader.credentials_provider(Credentials::new(
            key_id,
            secret,
            None,
            None,
            CREDENTIALS_SOURCE,
        ));
    }
    let sdk_config = loader.load().await;
    if sdk_config.region().is_none() {
        return Err(Error::new(
            ErrorKind::Internal,
            "no AWS region: set model.options.bedrock.aws_region, AWS_REGION, \
             or a region in the AWS profile",
        ));
    }

    let mut config = aws_sdk_bedrockruntime::config::Builder::from(&sdk_config)
        // The route's read_timeout (Kong's semantics) already bounds each attempt and the gap
        // between two stream events, as the one limit a user configures. The SDK's check
        // on top (minimum throughput after a 5 s grace) costs a wrapper and a timer on every
        // request and response body: about 12 000 instructions per Converse call.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    if key.credentials.is_some() {
        // Configured keys must be what signs: otherwise AWS_BEARER_TOKEN_BEDROCK in the
        // environment makes the SDK prefer bearer auth over them.
        config = config.auth_scheme_preference([SIGV4]);
    }
    Ok(Client::from_conf(config.build()))
}

fn check_endpoint_url(url: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::Internal,
            format!("bedrock endpoint URL {url:?} {why}"),
        )
    };
    let uri: http::Uri = url.parse().map_err(|_| bad("is not a valid URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("must start with http:// or https://")),
    }
    if uri.authority().is_none() {
        return Err(bad("has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_are_checked() {
        assert!(check_endpoint_url("http://127.0.0.1:4000").is_ok());
        assert!(check_endpoint_url("https://bedrock-runtime.us-east-1.amazonaws.com").is_ok());
        for bad in ["127.0.0.1:4000", "ftp://x", "not a url", "http://"] {
            let err = check_endpoint_url(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Internal, "{bad}");
        }
    }

    #[tokio::test]
    async fn empty_model_id_is_refused() {
        let err = BedrockProvider::new()
            .target(BedrockTargetSpec::new(" "))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
    }
}
