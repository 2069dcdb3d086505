//! The ways to reach a model: the AWS SDK straight to the emulator (the floor) or through a
//! bare proxy, through aigw over HTTP/JSON and over gRPC, and through the peer gateways.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use aigw_proto::v1::chat_service_client::ChatServiceClient;
use aws_sdk_bedrockruntime::config::{Credentials, Region};
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, ConverseStreamOutput};
use futures_util::StreamExt;
use tonic::transport::Channel;

const MODEL: &str = "us.amazon.nova-micro-v1:0";
const QUESTION: &str = "Who is considered the greatest Polish writer?";
/// HTTP/2 multiplexes; a few channels still spread work over the gateway's threads.
const GRPC_CHANNELS: usize = 4;

/// Which path a sample measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Direct,
    Http,
    Grpc,
    LiteLlm,
    /// TensorZero's gateway (OpenAI-compatible endpoint) over the same emulator.
    TensorZero,
    /// Portkey's gateway over the same emulator.
    Portkey,
    /// The AWS SDK through nginx: what a bare reverse proxy adds on this machine.
    Nginx,
    /// The AWS SDK through a tokio/hyper proxy with nothing in it: what one hop through
    /// aigw's own stack costs, before aigw does anything.
    Bare,
    /// OpenAI-style HTTP to a second aigw whose route has an ai-rate-limiting-advanced
    /// plugin counting in Redis (never refusing): `http` plus the limit's cost.
    HttpRedisLimit,
}

impl Kind {
    /// Another gateway measured for comparison.
    pub fn is_peer(self) -> bool {
        matches!(self, Kind::LiteLlm | Kind::TensorZero | Kind::Portkey)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Http => "http",
            Kind::Grpc => "grpc",
            Kind::LiteLlm => "litellm",
            Kind::TensorZero => "tensorzero",
            Kind::Portkey => "portkey",
            Kind::Nginx => "nginx",
            Kind::Bare => "bare",
            Kind::HttpRedisLimit => "http+redis-limit",
        }
    }
}

/// A client for one path.
pub enum Caller {
    Sdk {
        kind: Kind,
        client: aws_sdk_bedrockruntime::Client,
    },
    Http {
        kind: Kind,
        client: reqwest::Client,
        url: String,
        /// Extra request headers (a peer's key or routing config).
        headers: Vec<(&'static str, String)>,
        body: bytes::Bytes,
        stream_body: bytes::Bytes,
    },
    Grpc {
        channels: Vec<ChatServiceClient<Channel>>,
        next: AtomicUsize,
    },
}

impl Caller {
    pub fn direct(endpoint: &str) -> Caller {
        Caller::sdk(Kind::Direct, endpoint)
    }

    /// The same SDK client as `direct`, pointed at a reverse proxy (`Kind::Nginx` or
    /// `Kind::Bare`) in front of the emulator.
    pub fn through_proxy(kind: Kind, proxy: &str) -> Caller {
        Caller::sdk(kind, proxy)
    }

    fn sdk(kind: Kind, endpoint: &str) -> Caller {
        let config = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-west-2"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("AKIDBENCH", "bench", None, None, "bench"))
            .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled())
            .build();
        Caller::Sdk {
            kind,
            client: aws_sdk_bedrockruntime::Client::from_conf(config),
        }
    }

    pub fn http(gateway: &str) -> Caller {
        Caller::openai_json(
            Kind::Http,
            format!("{gateway}/bedrock-route"),
            Vec::new(),
            None,
        )
    }

    /// TensorZero's OpenAI-compatible endpoint, calling the function that samples both
    /// models.
    pub fn tensorzero(gateway: &str) -> Caller {
        Caller::openai_json(
            Kind::TensorZero,
            format!("{gateway}/openai/v1/chat/completions"),
            Vec::new(),
            Some(crate::peers::TENSORZERO_MODEL),
        )
    }

    /// Portkey's gateway, routed by `config` (its `x-portkey-config` header) on every request.
    pub fn portkey(gateway: &str, config: String) -> Caller {
        Caller::openai_json(
            Kind::Portkey,
            format!("{gateway}/v1/chat/completions"),
            vec![("x-portkey-config", config)],
            Some("bedrock-route"),
        )
    }

    /// Like [`Caller::http`], to the gateway with the Redis-backed limit.
    pub fn http_redis_limit(gateway: &str) -> Caller {
        Caller::openai_json(
            Kind::HttpRedisLimit,
            format!("{gateway}/bedrock-route"),
            Vec::new(),
            None,
        )
    }

    /// A LiteLLM proxy serving the same two models under the name `bedrock-route`.
    pub fn litellm(proxy: &str, key: &str) -> Caller {
        Caller::openai_json(
            Kind::LiteLlm,
            format!("{proxy}/chat/completions"),
            vec![("authorization", format!("Bearer {key}"))],
            Some("bedrock-route"),
        )
    }

    fn openai_json(
        kind: Kind,
        url: String,
        headers: Vec<(&'static str, String)>,
        model: Option<&str>,
    ) -> Caller {
        let mut body = serde_json::json!({"messages": [{"role": "user", "content": QUESTION}]});
        if let Some(model) = model {
            body["model"] = model.into();
        }
        let mut stream_body = body.clone();
        stream_body["stream"] = true.into();
        Caller::Http {
            kind,
            client: reqwest::Client::new(),
            url,
            headers,
            body: body.to_string().into(),
            stream_body: stream_body.to_string().into(),
        }
    }

    pub async fn grpc(gateway: &str) -> anyhow::Result<Caller> {
        let mut channels = Vec::with_capacity(GRPC_CHANNELS);
        for _ in 0..GRPC_CHANNELS {
            channels.push(ChatServiceClient::connect(gateway.to_owned()).await?);
        }
        Ok(Caller::Grpc {
            channels,
            next: AtomicUsize::new(0),
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            Caller::Sdk { kind, .. } => *kind,
            Caller::Http { kind, .. } => *kind,
            Caller::Grpc { .. } => Kind::Grpc,
        }
    }

    /// One request; returns when the answer was complete (unary) or its first token came
    /// (stream), having read the whole stream either way.
    pub async fn call(&self, stream: bool) -> Result<Instant, String> {
        match self {
            Caller::Sdk { client, .. } => sdk_call(client, stream).await,
            Caller::Http {
                client,
                url,
                headers,
                body,
                stream_body,
                ..
            } => {
                let body = if stream { stream_body } else { body };
                let mut request = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone());
                for (name, value) in headers {
                    request = request.header(*name, value);
                }
                let response = request.send().await.map_err(|e| e.to_string())?;
                if !response.status().is_success() {
                    return Err(format!("HTTP {}", response.status()));
                }
                if !stream {
                    response.bytes().await.map_err(|e| e.to_string())?;
                    return Ok(Instant::now());
                }
                let mut first_token = None;
                let mut chunks = response.bytes_stream();
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk.map_err(|e| e.to_string())?;
                    if first_token.is_none() && has_text(&chunk) {
                        first_token = Some(Instant::now());
                    }
                }
                first_token.ok_or_else(|| "stream without content".to_owned())
            }
            Caller::Grpc { channels, next } => {
                let index = next.fetch_add(1, Ordering::Relaxed) % channels.len();
                let mut client = channels[index].clone();
                let request = aigw_proto::v1::ChatRequest {
                    messages: vec![aigw_proto::v1::Message {
                        role: "user".into(),
                        content: QUESTION.into(),
                        ..aigw_proto::v1::Message::default()
                    }],
                    ..aigw_proto::v1::ChatRequest::default()
                };
                if !stream {
                    client.chat(request).await.map_err(|e| e.to_string())?;
                    return Ok(Instant::now());
                }
                let mut chunks = client
                    .chat_stream(request)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                let mut first_token = None;
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk.map_err(|e| e.to_string())?;
                    let has_content = chunk
                        .choices
                        .first()
                        .and_then(|c| c.delta.as_ref())
                        .is_some_and(|d| d.content.is_some());
                    if first_token.is_none() && has_content {
                        first_token = Some(Instant::now());
                    }
                }
                first_token.ok_or_else(|| "stream without content".to_owned())
            }
        }
    }
}

/// Whether an SSE read holds a non-empty `content` delta; the first chunk's role-only
/// `"content":""` is not a token.
fn has_text(chunk: &[u8]) -> bool {
    const KEY: &[u8] = b"\"content\":\"";
    chunk
        .windows(KEY.len() + 1)
        .any(|w| w.starts_with(KEY) && w[KEY.len()] != b'"')
}

async fn sdk_call(
    client: &aws_sdk_bedrockruntime::Client,
    stream: bool,
) -> Result<Instant, String> {
    let message = aws_sdk_bedrockruntime::types::Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(QUESTION.into()))
        .build()
        .map_err(|e| e.to_string())?;
    if !stream {
        client
            .converse()
            .model_id(MODEL)
            .messages(message)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        return Ok(Instant::now());
    }
    let mut output = client
        .converse_stream()
        .model_id(MODEL)
        .messages(message)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut first_token = None;
    while let Some(event) = output.stream.recv().await.map_err(|e| e.to_string())? {
        if first_token.is_none() && matches!(event, ConverseStreamOutput::ContentBlockDelta(_)) {
            first_token = Some(Instant::now());
        }
    }
    first_token.ok_or_else(|| "stream without content".to_owned())
}
