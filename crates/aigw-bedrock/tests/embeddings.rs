//! Bedrock embeddings through the real SDK's InvokeModel against the emulator, over a real
//! socket: both families' request and answer shapes, and a refused call classified as
//! Converse's are.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aigw_bedrock::{BedrockProvider, BedrockTargetSpec};
use aigw_core::{EmbedPurpose, EmbedRequest, EmbedService, ErrorKind};
use aigw_emulator::EmulatorHandle;
use tower::ServiceExt;

async fn emulator() -> EmulatorHandle {
    aigw_emulator::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn service(emulator: &EmulatorHandle, model: &str) -> EmbedService {
    BedrockProvider::new()
        .embeddings(BedrockTargetSpec {
            region: Some("us-west-2".into()),
            endpoint_url: Some(emulator.endpoint_url()),
            static_credentials: Some(("AKIDTEST".into(), "test-secret".into())),
            connect_timeout: Duration::from_secs(2),
            ..BedrockTargetSpec::new(model)
        })
        .await
        .unwrap()
}

fn request(inputs: &[&str], dimensions: Option<usize>) -> EmbedRequest {
    EmbedRequest {
        normalize: true,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        purpose: EmbedPurpose::Document,
        dimensions,
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn titan_and_cohere_answer_one_vector_per_text_in_order() {
    let emulator = emulator().await;
    let texts = ["rust code review", "review of rust code", "sourdough bread"];
    for model in ["amazon.titan-embed-text-v2:0", "cohere.embed-english-v3"] {
        let answer = service(&emulator, model)
            .await
            .oneshot(request(&texts, Some(1024)))
            .await
            .unwrap();
        assert_eq!(answer.vectors.len(), 3, "{model}");
        assert!(answer.vectors.iter().all(|v| v.len() == 1024), "{model}");
        let (a, b, c) = (&answer.vectors[0], &answer.vectors[1], &answer.vectors[2]);
        assert!(
            cosine(a, b) > cosine(a, c),
            "{model}: order kept, shared words closer"
        );
    }
    // Titan takes the vector length from the request.
    let short = service(&emulator, "amazon.titan-embed-text-v2:0")
        .await
        .oneshot(request(&["hello world"], Some(256)))
        .await
        .unwrap();
    assert_eq!(short.vectors[0].len(), 256);
    assert_eq!(short.input_tokens, Some(2));
}

#[tokio::test]
async fn a_refused_call_is_classified_and_a_chat_model_is_refused_at_build() {
    let emulator = emulator().await;
    let err = service(&emulator, "amazon.titan-embed-text-v2:0")
        .await
        .oneshot(request(&["hello"], Some(300)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamRejected, "{err}");
    assert_eq!(err.upstream_status(), Some(400));

    let Err(err) = BedrockProvider::new()
        .embeddings(BedrockTargetSpec::new("us.amazon.nova-micro-v1:0"))
        .await
    else {
        panic!("a chat model is not an embeddings model");
    };
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("not an embeddings model"), "{err}");
}
