//! The walkthrough over gRPC through generated client stubs, on the same port as HTTP.

use aigw_proto::v1::ChatRequest;
use aigw_tests::{Stack, grpc_client, grpc_question, metadata_text, seed_config};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn question(route: &str) -> ChatRequest {
    grpc_question(route, "Who is considered the greatest Polish writer?")
}

#[tokio::test]
async fn chat_alternates_models_like_http() {
    let stack = Stack::start(&seed_config()).await;
    let mut client = grpc_client(&stack.gateway).await;
    let mut models = Vec::new();
    // Unnamed, by route name and by path all reach route1.
    for route in ["", "route1", "/bedrock-route", ""] {
        let response = client.chat(question(route)).await.expect("chat answers");
        let header =
            metadata_text(response.metadata(), "x-aigw-llm-model").expect("model metadata");
        let answer = response.into_inner();
        assert_eq!(header, format!("bedrock/{}", answer.model));
        assert_eq!(answer.object, "chat.completion");
        let choice = &answer.choices[0];
        assert_eq!(choice.finish_reason, "stop");
        let message = choice.message.as_ref().expect("message");
        assert_eq!(message.role, "assistant");
        assert!(message.content.contains(&answer.model));
        let usage = answer.usage.expect("usage");
        assert_eq!(
            usage.total_tokens,
            usage.prompt_tokens + usage.completion_tokens
        );
        models.push(answer.model);
    }
    assert_eq!(
        models,
        [
            "us.amazon.nova-micro-v1:0",
            "us.meta.llama3-3-70b-instruct-v1:0",
            "us.amazon.nova-micro-v1:0",
            "us.meta.llama3-3-70b-instruct-v1:0"
        ]
    );
}

#[tokio::test]
async fn grpc_and_http_give_the_same_content_for_one_request() {
    let stack = Stack::start(&seed_config()).await;
    let mut client = grpc_client(&stack.gateway).await;
    let by_grpc = client.chat(question("")).await.expect("chat").into_inner();
    // The next HTTP call goes to the other target; a third reaches the same one again.
    let http = reqwest::Client::new();
    let mut by_http = serde_json::Value::Null;
    for _ in 0..2 {
        by_http = http
            .post(stack.url("/bedrock-route"))
            .json(&aigw_tests::polish_writer_question())
            .send()
            .await
            .expect("http answers")
            .json()
            .await
            .expect("json");
    }
    assert_eq!(by_http["model"], by_grpc.model.as_str());
    let grpc_message = by_grpc.choices[0].message.as_ref().expect("message");
    assert_eq!(
        by_http["choices"][0]["message"]["content"],
        grpc_message.content.as_str()
    );
    let usage = by_grpc.usage.expect("usage");
    assert_eq!(by_http["usage"]["total_tokens"], usage.total_tokens);
}

#[tokio::test]
async fn health_check_answers_serving() {
    let stack = Stack::start(&seed_config()).await;
    let channel = tonic::transport::Endpoint::from_shared(stack.gateway.url())
        .expect("valid url")
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    for service in ["", "aigw.v1.ChatService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
}

#[tokio::test]
async fn bad_grpc_requests_get_the_right_codes() {
    let stack = Stack::start(&seed_config()).await;
    let mut client = grpc_client(&stack.gateway).await;
    let empty = client
        .chat(ChatRequest::default())
        .await
        .expect_err("empty messages are refused");
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    assert!(empty.message().contains("messages"), "{}", empty.message());

    let unknown_route = client
        .chat(question("no-such-route"))
        .await
        .expect_err("unknown route is refused");
    assert_eq!(unknown_route.code(), tonic::Code::NotFound);
    assert!(
        unknown_route.message().contains("route1"),
        "lists known routes"
    );

    let mut bad_role = question("");
    bad_role.messages[0].role = "wizard".into();
    let status = client.chat(bad_role).await.expect_err("bad role");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("wizard"));
}

/// More calls at once on one connection than the connection's own task runs (the rest are
/// spawned): every call still gets its own answer, spread over both targets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_on_one_connection_all_answer() {
    let stack = Stack::start(&seed_config()).await;
    // One tonic channel is one HTTP/2 connection; clones share it.
    let client = grpc_client(&stack.gateway).await;
    let mut calls = tokio::task::JoinSet::new();
    for index in 0..12 {
        let mut client = client.clone();
        calls.spawn(async move {
            let content = format!("question number {index}");
            let answer = client
                .chat(grpc_question("", &content))
                .await
                .expect("chat answers")
                .into_inner();
            let message = answer.choices[0].message.clone().expect("message");
            assert!(!message.content.is_empty(), "call {index}: empty answer");
            answer.model
        });
    }
    let mut per_model = std::collections::BTreeMap::<String, usize>::new();
    let all_answered = async {
        while let Some(model) = calls.join_next().await {
            *per_model.entry(model.expect("call task")).or_default() += 1;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), all_answered)
        .await
        .expect("every call answers within 10 s");
    assert_eq!(
        per_model.into_iter().collect::<Vec<_>>(),
        [
            ("us.amazon.nova-micro-v1:0".to_owned(), 6),
            ("us.meta.llama3-3-70b-instruct-v1:0".to_owned(), 6)
        ]
    );
}
