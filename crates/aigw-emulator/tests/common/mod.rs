//! Shared fixtures: a running emulator and a real SDK client pointed at it.
#![allow(dead_code, missing_docs)]

use aigw_emulator::EmulatorHandle;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{Credentials, Region};
use aws_sdk_bedrockruntime::error::SdkError;
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::operation::converse_stream::{
    ConverseStreamError, ConverseStreamOutput,
};
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message};

pub const NOVA: &str = "us.amazon.nova-micro-v1:0";

pub async fn emulator() -> EmulatorHandle {
    aigw_emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator starts")
}

/// The SDK as the gateway builds it: our endpoint, static keys, no SDK-side retries.
pub fn client(handle: &EmulatorHandle) -> Client {
    let config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-west-2"))
        .endpoint_url(handle.endpoint_url())
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

pub fn user(text: &str) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text.to_owned()))
        .build()
        .expect("message")
}

/// A Converse call to `model` with one user message, `text`, and nothing else set.
pub async fn ask(
    client: &Client,
    model: &str,
    text: &str,
) -> Result<ConverseOutput, SdkError<ConverseError>> {
    client
        .converse()
        .model_id(model)
        .messages(user(text))
        .send()
        .await
}

/// A ConverseStream call to `model` with one user message, `text`, and nothing else set.
pub async fn ask_stream(
    client: &Client,
    model: &str,
    text: &str,
) -> Result<ConverseStreamOutput, SdkError<ConverseStreamError>> {
    client
        .converse_stream()
        .model_id(model)
        .messages(user(text))
        .send()
        .await
}

pub fn text_of(output: &ConverseOutput) -> String {
    let message = output
        .output()
        .and_then(|o| o.as_message().ok())
        .expect("a message");
    message
        .content()
        .iter()
        .filter_map(|b| b.as_text().ok())
        .cloned()
        .collect()
}

/// Polls `cond` for up to five seconds.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cond()
}
