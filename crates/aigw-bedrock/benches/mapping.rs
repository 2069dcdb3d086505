//! The OpenAI ↔ Converse translation the driver applies on every call: a chat request with
//! a system prompt and three turns into Converse parts, and a Converse answer back into the
//! core answer.
//!
//! `cargo bench -p aigw-bedrock --bench mapping`
// criterion's macros generate the undocumented `benches` and `main`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use aigw_bedrock::mapping::{to_chat_completion, to_converse};
use aigw_core::{ChatRequest, Message, Role};
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseMetrics, ConverseOutput as Output, StopReason,
    TokenUsage,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn request() -> ChatRequest {
    let turn = |role, content: &str| Message::new(role, content.to_owned());
    ChatRequest {
        messages: Arc::from([
            turn(Role::System, "You are a literature teacher. Be brief."),
            turn(Role::User, "Who is considered the greatest Polish writer?"),
            turn(Role::Assistant, "Many would say Adam Mickiewicz."),
            turn(Role::User, "Why him rather than Sienkiewicz?"),
        ]),
        max_tokens: Some(256),
        temperature: Some(0.5),
        ..ChatRequest::default()
    }
}

fn answer() -> ConverseOutput {
    let message = aws_sdk_bedrockruntime::types::Message::builder()
        .role(ConversationRole::Assistant)
        .content(ContentBlock::Text("word ".repeat(300)))
        .build()
        .expect("a valid message");
    ConverseOutput::builder()
        .output(Output::Message(message))
        .stop_reason(StopReason::EndTurn)
        .usage(
            TokenUsage::builder()
                .input_tokens(43)
                .output_tokens(300)
                .total_tokens(343)
                .build()
                .expect("valid usage"),
        )
        .metrics(
            ConverseMetrics::builder()
                .latency_ms(900)
                .build()
                .expect("valid metrics"),
        )
        .build()
        .expect("a valid output")
}

fn mapping(c: &mut Criterion) {
    let request = request();
    c.bench_function("OpenAI request -> Converse parts", |b| {
        b.iter(|| to_converse(black_box(&request), "m").expect("maps"))
    });
    let output = answer();
    let model: Arc<str> = Arc::from("us.amazon.nova-micro-v1:0");
    c.bench_function("Converse answer (300 words) -> core answer", |b| {
        b.iter(|| to_chat_completion(black_box(&output), &model, Default::default()).expect("maps"))
    });
}

criterion_group!(benches, mapping);
criterion_main!(benches);
