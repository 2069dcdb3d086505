//! Bedrock's CountTokens for one model: the request goes through the same Converse
//! translation as a chat call (so system prompts, tools and images count as Bedrock would
//! see them) and is counted, not answered. Bedrock counts for some models only (Anthropic
//! Claude); for the others its `ValidationException` is passed on, naming the model.

use std::sync::Arc;

use aigw_core::{ChatRequest, CountTokensService, Error};
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::types::{ConverseTokensRequest, CountTokensInput};

use crate::error::classify;
use crate::request::to_converse;
use crate::{BedrockProvider, BedrockTargetSpec};

/// One Bedrock model's token counter, served through `tower::service_fn`.
#[derive(Clone)]
struct BedrockTokenCounter {
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
        let counter = BedrockTokenCounter {
            client: self.client(spec).await?,
            model_id,
        };
        Ok(CountTokensService::new(tower::service_fn(
            move |request: ChatRequest| {
                let counter = counter.clone();
                async move { counter.count(request).await }
            },
        )))
    }
}

impl BedrockTokenCounter {
    async fn count(&self, request: ChatRequest) -> Result<u64, Error> {
        let parts = to_converse(&request, &self.model_id)?;
        let input = ConverseTokensRequest::builder()
            .set_messages(Some(parts.messages))
            .set_system(parts.system)
            .set_tool_config(parts.tools)
            .set_additional_model_request_fields(parts.additional)
            .build();
        let output = self
            .client
            .count_tokens()
            .model_id(&*self.model_id)
            .input(CountTokensInput::Converse(input))
            .send()
            .await
            .map_err(|err| {
                classify(&err).context(format_args!("bedrock CountTokens for {}", self.model_id))
            })?;
        // Bedrock reports counts as i32, never negative in practice.
        Ok(u64::try_from(output.input_tokens()).unwrap_or(0))
    }
}
