//! Bedrock's CountTokens for one model: the request goes through the same Converse
//! translation as a chat call (so system prompts, tools and images count as Bedrock would
//! see them) and is counted, not answered. Bedrock counts for some models only (Anthropic
//! Claude); for the others its `ValidationException` is passed on, naming the model.

use std::sync::Arc;
use std::task::{Context, Poll};

use aigw_core::{ChatRequest, CountTokensFuture, CountTokensService, Error};
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::types::{ConverseTokensRequest, CountTokensInput};

use crate::error::classify;
use crate::request::to_converse;
use crate::{BedrockProvider, BedrockTargetSpec};

/// One Bedrock model's token counter, as a `tower::Service`.
#[derive(Clone)]
pub struct BedrockTokenCounter {
    client: Client,
    model_id: Arc<str>,
}

impl BedrockProvider {
    /// The token counter for `spec`'s model, sharing the SDK client with its chat target.
    pub async fn token_counter(
        &self,
        spec: BedrockTargetSpec,
    ) -> Result<CountTokensService, Error> {
        let model_id: Arc<str> = Arc::from(spec.model_id.as_str());
        let client = self.client(spec).await?;
        Ok(CountTokensService::new(BedrockTokenCounter {
            client,
            model_id,
        }))
    }
}

impl tower::Service<ChatRequest> for BedrockTokenCounter {
    type Response = u64;
    type Error = Error;
    type Future = CountTokensFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // The SDK client pools connections itself; there is nothing to reserve.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ChatRequest) -> CountTokensFuture {
        let counter = self.clone();
        Box::pin(async move {
            let parts = to_converse(&request, &counter.model_id)?;
            let input = ConverseTokensRequest::builder()
                .set_messages(Some(parts.messages))
                .set_system(parts.system)
                .set_tool_config(parts.tools)
                .set_additional_model_request_fields(parts.additional)
                .build();
            let output = counter
                .client
                .count_tokens()
                .model_id(&*counter.model_id)
                .input(CountTokensInput::Converse(input))
                .send()
                .await
                .map_err(|err| {
                    classify(&err)
                        .context(format_args!("bedrock CountTokens for {}", counter.model_id))
                })?;
            // Bedrock reports counts as i32, never negative in practice.
            Ok(u64::try_from(output.input_tokens()).unwrap_or(0))
        })
    }
}
