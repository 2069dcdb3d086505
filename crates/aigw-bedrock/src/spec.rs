//! What the server hands the driver to build one target.

use std::fmt;
use std::time::Duration;

/// Everything needed to build one Bedrock target; the server fills it from the Kong config.
#[derive(Clone)]
pub struct BedrockTargetSpec {
    /// The model to call, e.g. `us.amazon.nova-micro-v1:0`, or an inference-profile ARN.
    pub model_id: String,
    /// `model.options.bedrock.aws_region`; `None` leaves it to aws-config's default chain.
    pub region: Option<String>,
    /// `model.options.upstream_url`; `None` leaves it to the SDK's conventions
    /// (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL`, then the regional endpoint).
    pub endpoint_url: Option<String>,
    /// `auth.aws_access_key_id` and `auth.aws_secret_access_key`; `None` uses the default
    /// credential chain (environment, profile, SSO, container, IMDS…).
    pub static_credentials: Option<(String, String)>,
    /// How long to wait for a TCP (and TLS) connection to Bedrock.
    pub connect_timeout: Duration,
}

impl BedrockTargetSpec {
    /// A spec for `model_id` with everything else left to the SDK's conventions and a
    /// connect timeout of 3 seconds.
    pub fn new(model_id: impl Into<String>) -> Self {
        BedrockTargetSpec {
            model_id: model_id.into(),
            region: None,
            endpoint_url: None,
            static_credentials: None,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

// Specs end up in logs and panics; the secret key must never be printed.
impl fmt::Debug for BedrockTargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockTargetSpec")
            .field("model_id", &self.model_id)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field(
                "static_credentials",
                &self
                    .static_credentials
                    .as_ref()
                    .map(|(key_id, _)| (key_id.as_str(), "<redacted>")),
            )
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let spec = BedrockTargetSpec {
            static_credentials: Some(("AKIDEXAMPLE".into(), "wJalrXUtnFEMI/SECRET".into())),
            ..BedrockTargetSpec::new("m")
        };
        let shown = format!("{spec:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
