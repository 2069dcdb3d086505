//! Builds targets and the pooled HTTP clients they share.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aigw_core::{ClientCache, Error, ErrorKind};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::driver::{OpenAiChat, OpenAiDriver};
use crate::spec::{Auth, OPENAI_URL, OpenAiTargetSpec, ParamLocation};

/// Builds OpenAI-compatible targets, sharing one HTTP client (and so one connection
/// pool) per distinct connect timeout.
///
/// Clients are built while targets are built, at start; a request only clones them.
#[derive(Default)]
pub struct OpenAiProvider {
    clients: ClientCache<Duration, reqwest::Client>,
}

impl fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiProvider").finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    /// A provider with no clients yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the target `spec` describes.
    ///
    /// Fails with [`ErrorKind::Internal`] when the spec cannot work: no model, an upstream
    /// URL that is not an absolute http(s) URL, or a credential that cannot be sent as a
    /// header. Messages name the offending field, never a credential's value.
    pub async fn target(&self, spec: OpenAiTargetSpec) -> Result<OpenAiDriver, Error> {
        let Upstream {
            client,
            url,
            headers,
            body_params,
        } = self.upstream(&spec, OPENAI_URL).await?;
        Ok(OpenAiDriver::new(OpenAiChat {
            client,
            url,
            headers,
            body_params,
            model: Arc::from(spec.model),
        }))
    }

    /// Where and how `spec`'s calls go: the URL (`default_url` unless the spec names
    /// one), the credentials as headers, query or body parameters, and the pooled client.
    pub(crate) async fn upstream(
        &self,
        spec: &OpenAiTargetSpec,
        default_url: &str,
    ) -> Result<Upstream, Error> {
        if spec.model.trim().is_empty() {
            return Err(internal("openai target has an empty model name"));
        }
        let mut url = parse_url(spec.upstream_url.as_deref().unwrap_or(default_url))?;
        let mut headers = HeaderMap::new();
        let mut body_params = Vec::new();
        for auth in spec.auth.iter().cloned() {
            match auth {
                Auth::Header { name, value } => {
                    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                        internal(format!(
                            "auth.header_name {name:?} is not a valid header name"
                        ))
                    })?;
                    let mut value = HeaderValue::from_str(&value).map_err(|_| {
                        internal("auth.header_value is not a valid HTTP header value")
                    })?;
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                Auth::Param {
                    name,
                    value,
                    location: ParamLocation::Query,
                } => {
                    url.query_pairs_mut().append_pair(&name, &value);
                }
                Auth::Param {
                    name,
                    value,
                    location: ParamLocation::Body,
                } => body_params.push((name, value)),
            }
        }
        let client = self
            .clients
            .get_or_build(spec.connect_timeout, build_client)
            .await?;
        Ok(Upstream {
            client,
            url,
            headers,
            body_params,
        })
    }

    /// How many distinct HTTP clients the provider built so far.
    pub async fn client_count(&self) -> usize {
        self.clients.len().await
    }
}

/// What every call to one OpenAI-compatible upstream carries.
pub(crate) struct Upstream {
    pub(crate) client: reqwest::Client,
    pub(crate) url: reqwest::Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body_params: Vec<(String, String)>,
}

async fn build_client(connect_timeout: &Duration) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .connect_timeout(*connect_timeout)
        // Like Kong, targets go straight to their upstream_url; a proxy picked up from
        // the environment would be a surprise on a gateway.
        .no_proxy()
        // A redirect would resend the credential somewhere the config never named.
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .build()
        .map_err(|err| internal(format!("could not build the HTTP client: {err}")))
}

fn internal(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Internal, message)
}

fn parse_url(url: &str) -> Result<reqwest::Url, Error> {
    let bad = |why: &str| internal(format!("openai upstream URL {url:?} {why}"));
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("is not a valid URL"))?;
    match parsed.scheme() {
        "http" | "https" => {}
        _ => return Err(bad("must start with http:// or https://")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_checked() {
        assert!(parse_url("http://127.0.0.1:9800/v1/chat/completions").is_ok());
        assert!(parse_url(OPENAI_URL).is_ok());
        for bad in ["127.0.0.1:9800", "ftp://x/v1", "not a url", "http://"] {
            let err = parse_url(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Internal, "{bad}");
        }
    }

    #[tokio::test]
    async fn bad_credentials_are_refused_without_echoing_them() {
        let provider = OpenAiProvider::new();
        let spec = OpenAiTargetSpec {
            auth: vec![Auth::Header {
                name: "Authorization".into(),
                value: "Bearer sk-SECRET\n".into(),
            }],
            ..OpenAiTargetSpec::new("gpt-4o-mini")
        };
        let err = provider.target(spec).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(!err.message().contains("SECRET"), "{err}");
        let err = provider
            .target(OpenAiTargetSpec::new(" "))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
    }

    #[tokio::test]
    async fn targets_share_clients_by_connect_timeout() {
        let provider = OpenAiProvider::new();
        for model in ["a", "b"] {
            provider.target(OpenAiTargetSpec::new(model)).await.unwrap();
        }
        let slow = OpenAiTargetSpec {
            connect_timeout: Duration::from_secs(30),
            ..OpenAiTargetSpec::new("c")
        };
        provider.target(slow).await.unwrap();
        assert_eq!(provider.client_count().await, 2);
    }
}
