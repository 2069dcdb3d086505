//! `aigw-converse-cost`: what one Converse call costs inside aigw, for instruction counts
//! under `valgrind --tool=callgrind`, which stay repeatable on a busy machine where
//! wall-clock figures do not.
//!
//! It drives `N` requests one after another on a current-thread runtime against a Bedrock
//! emulator in another process (so the emulator's instructions are not counted), after a
//! warm-up that opens the connection and fills every cache. Only the measured requests run
//! inside [`measured`], so
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='*converse_cost*measured*' \
//!     target/release/aigw-converse-cost driver 500 http://127.0.0.1:9700
//! ```
//!
//! counts those alone; total instructions / N is the cost of one request. Modes:
//! - `driver`: aigw's Bedrock driver (`BedrockProvider` target, the AWS SDK's Converse);
//! - `driver-stream`: the same with ConverseStream, reading every event into chunks;
//! - `sdk`, `sdk-static-endpoint`, `sdk-no-identity-cache`, `sdk-no-stall-check`: the
//!   SDK's Converse alone, its client configured as aigw's provider configures it, then
//!   with one setting changed each, for A/B counts of client settings;
//! - `sigv4`: the same request signed with `aws-sigv4` and sent with hyper's pooled client
//!   (the client the SDK's default HTTP client wraps), the JSON built and read with
//!   serde_json: what the call costs without the SDK's orchestrator, for comparison only.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::SystemTime;

use aigw_bedrock::{BedrockDriver, BedrockProvider, BedrockTargetSpec};
use aigw_core::{ChatRequest, Message, ReplyBody, Role};
use anyhow::{Context, Result, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;

const MODEL: &str = "us.amazon.nova-micro-v1:0";
const QUESTION: &str = "Who is considered the greatest Polish writer?";
const WARM_UP: usize = 50;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, count, endpoint] = args.as_slice() else {
        bail!("usage: aigw-converse-cost MODE N EMULATOR_URL (see the crate docs for modes)");
    };
    let count: usize = count.parse().context("N is not a number")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let path = match mode.as_str() {
        "driver" | "driver-stream" => {
            let driver = runtime.block_on(driver(endpoint))?;
            Path::Driver {
                driver,
                stream: mode == "driver-stream",
            }
        }
        "sigv4" => Path::SigV4(Box::new(SigV4::new(endpoint)?)),
        sdk if sdk.starts_with("sdk") => Path::Sdk(runtime.block_on(sdk_client(endpoint, sdk))?),
        other => bail!("unknown mode {other:?}"),
    };
    runtime.block_on(async {
        for _ in 0..WARM_UP {
            path.call().await?;
        }
        anyhow::Ok(())
    })?;
    let chars = measured(&runtime, &path, count)?;
    println!("{mode}: {count} requests, {chars} characters of answer text");
    Ok(())
}

/// The measured requests; callgrind's `--toggle-collect` names this function.
#[inline(never)]
fn measured(runtime: &tokio::runtime::Runtime, path: &Path, count: usize) -> Result<usize> {
    runtime.block_on(async {
        let mut chars = 0;
        for _ in 0..count {
            chars += path.call().await?;
        }
        Ok(chars)
    })
}

enum Path {
    Driver { driver: BedrockDriver, stream: bool },
    Sdk(aws_sdk_bedrockruntime::Client),
    SigV4(Box<SigV4>),
}

impl Path {
    /// One request; the length of the answer's text.
    async fn call(&self) -> Result<usize> {
        match self {
            Path::Driver { driver, stream } => {
                let request = ChatRequest {
                    messages: Arc::from([Message::new(Role::User, QUESTION)]),
                    stream: *stream,
                    ..ChatRequest::default()
                };
                let reply = driver.clone().oneshot(request).await?;
                match reply.body {
                    ReplyBody::Complete(completion) => Ok(completion.content.len()),
                    ReplyBody::Stream(mut chunks) => {
                        let mut chars = 0;
                        while let Some(chunk) = chunks.next().await {
                            chars += chunk?.content.map_or(0, |text| text.len());
                        }
                        Ok(chars)
                    }
                }
            }
            Path::SigV4(raw) => raw.call().await,
            Path::Sdk(client) => {
                let message = aws_sdk_bedrockruntime::types::Message::builder()
                    .role(aws_sdk_bedrockruntime::types::ConversationRole::User)
                    .content(aws_sdk_bedrockruntime::types::ContentBlock::Text(
                        QUESTION.into(),
                    ))
                    .build()?;
                let output = client
                    .converse()
                    .model_id(MODEL)
                    .messages(message)
                    .send()
                    .await?;
                let text = output
                    .output
                    .and_then(|o| o.as_message().ok().cloned())
                    .and_then(|m| m.content.into_iter().next())
                    .and_then(|c| c.as_text().ok().cloned())
                    .unwrap_or_default();
                Ok(text.len())
            }
        }
    }
}

/// The target as aigw builds it from a config with a region, keys and an endpoint URL.
async fn driver(endpoint: &str) -> Result<BedrockDriver> {
    let mut spec = BedrockTargetSpec::new(MODEL);
    spec.region = Some("us-west-2".into());
    spec.endpoint_url = Some(endpoint.to_owned());
    spec.static_credentials = Some(("AKIDBENCH".into(), "bench".into()));
    Ok(BedrockProvider::new().target(spec).await?)
}

/// An SDK client configured as `aigw_bedrock`'s provider configures one for a target with a
/// region, keys and an endpoint URL, with the one change `mode` names.
async fn sdk_client(endpoint: &str, mode: &str) -> Result<aws_sdk_bedrockruntime::Client> {
    use aws_sdk_bedrockruntime::config::endpoint::{
        DefaultResolver, Endpoint, EndpointFuture, Params, ResolveEndpoint,
    };
    use aws_sdk_bedrockruntime::config::{IdentityCache, StalledStreamProtectionConfig};

    /// The endpoint the rules gave once, for every call.
    #[derive(Debug)]
    struct Fixed(Endpoint);
    impl ResolveEndpoint for Fixed {
        fn resolve_endpoint<'a>(&'a self, _: &'a Params) -> EndpointFuture<'a> {
            EndpointFuture::ready(Ok(self.0.clone()))
        }
    }

    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(3))
                .build(),
        )
        .region(aws_config::Region::new("us-west-2"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDBENCH", "bench", None, None, "bench"))
        .load()
        .await;
    let mut config = aws_sdk_bedrockruntime::config::Builder::from(&sdk_config);
    match mode {
        "sdk" => {}
        "sdk-static-endpoint" => {
            let params = Params::builder()
                .region("us-west-2")
                .use_fips(false)
                .use_dual_stack(false)
                .endpoint(endpoint)
                .build()?;
            let resolved = DefaultResolver::new()
                .resolve_endpoint(&params)
                .await
                .map_err(|err| anyhow::anyhow!(err))?;
            config = config.endpoint_resolver(Fixed(resolved));
        }
        "sdk-no-identity-cache" => config = config.identity_cache(IdentityCache::no_cache()),
        "sdk-no-stall-check" => {
            config = config.stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        }
        other => bail!("unknown mode {other:?}"),
    }
    Ok(aws_sdk_bedrockruntime::Client::from_conf(config.build()))
}

/// A Converse call without the SDK: serde_json, `aws-sigv4` and hyper's pooled client.
struct SigV4 {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: String,
    host: String,
    identity: aws_smithy_runtime_api::client::identity::Identity,
}

impl SigV4 {
    fn new(endpoint: &str) -> Result<SigV4> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let host = endpoint
            .strip_prefix("http://")
            .context("the endpoint is not http://")?
            .trim_end_matches('/')
            .to_owned();
        Ok(SigV4 {
            client: Client::builder(TokioExecutor::new()).build(connector),
            // The model id percent-encoded, as the SDK sends it.
            uri: format!("http://{host}/model/{}/converse", MODEL.replace(':', "%3A")),
            host,
            identity: Credentials::new("AKIDBENCH", "bench", None, None, "bench").into(),
        })
    }

    async fn call(&self) -> Result<usize> {
        let body = serde_json::to_vec(&serde_json::json!({
            "messages": [{"role": "user", "content": [{"text": QUESTION}]}],
        }))?;
        let settings = SigningSettings::default();
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region("us-west-2")
            .name("bedrock")
            .time(SystemTime::now())
            .settings(settings)
            .build()?
            .into();
        let headers = [
            ("host", self.host.as_str()),
            ("content-type", "application/json"),
        ];
        let signable = SignableRequest::new(
            "POST",
            self.uri.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(&body),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        let mut request = http::Request::post(self.uri.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        instructions.apply_to_request_http1x(&mut request);
        let response = self.client.request(request).await?;
        if !response.status().is_success() {
            bail!("HTTP {}", response.status());
        }
        let bytes = response.into_body().collect().await?.to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&bytes)?;
        let text = answer["output"]["message"]["content"][0]["text"]
            .as_str()
            .context("no answer text")?;
        Ok(text.len())
    }
}
