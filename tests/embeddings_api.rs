//! `POST /v1/embeddings` over real sockets against the emulator's Bedrock embeddings
//! (Titan v2, one text a call; Cohere v3, a batch a call): both families, a batch's order,
//! `dimensions`, base64 vectors, failover between two embeddings targets, an
//! OpenAI-compatible upstream, and the 400s a client gets for bad input or the wrong kind
//! of route.

use aigw_tests::Stack;
use base64::Engine;
use serde_json::{Value, json};

const TITAN: &str = "amazon.titan-embed-text-v2:0";
const COHERE: &str = "cohere.embed-english-v3";

fn target(model: &str, extra: &str) -> String {
    format!(
        "        - model:\n            provider: bedrock\n            name: \"{model}\"\n            options:\n              bedrock: {{aws_region: us-west-2}}\n{extra}          route_type: llm/v1/embeddings\n"
    )
}

fn route(name: &str, algorithm: &str, targets: &[String]) -> String {
    format!(
        "  - name: {name}\n    paths: [/{name}]\n    plugins:\n    - name: ai-proxy-advanced\n      config:\n        balancer: {{algorithm: {algorithm}}}\n        targets:\n{}",
        targets.concat()
    )
}

async fn stack() -> Stack {
    // Port 1 on loopback: nothing listens, so that target's connection is refused.
    let dead = "              upstream_url: http://127.0.0.1:1\n";
    let chat = "        - model:\n            provider: bedrock\n            name: us.amazon.nova-micro-v1:0\n            options:\n              bedrock: {aws_region: us-west-2}\n          route_type: llm/v1/chat\n";
    // The emulator's OpenAI-compatible /v1/embeddings, behind a key.
    let openai = |url: &str| {
        format!(
            "        - model:\n            provider: openai\n            name: text-embedding-3-small\n            options: {{upstream_url: \"{url}/v1/embeddings\"}}\n          auth: {{header_name: Authorization, header_value: Bearer sk-test}}\n          route_type: llm/v1/embeddings\n"
        )
    };
    let normalized = target(TITAN, "").replace(
        "bedrock: {aws_region: us-west-2}",
        "bedrock: {aws_region: us-west-2, embeddings_normalize: true}",
    );
    Stack::start_with(|url| format!(
        "_format_version: \"3.0\"\nservices:\n- name: svc\n  host: localhost\n  routes:\n{}{}{}{}{}  - name: chat\n    paths: [/chat]\n    plugins:\n    - name: ai-proxy-advanced\n      config:\n        targets:\n{chat}",
        route("titan", "round-robin", &[target(TITAN, "")]),
        route("cohere", "round-robin", &[target(COHERE, "")]),
        route(
            "fallback",
            "round-robin",
            &[target(TITAN, dead), target(COHERE, "")]
        ),
        route("oai", "round-robin", &[openai(url)]),
        route("titan-unit", "round-robin", &[normalized]),
    ))
    .await
}

async fn post(stack: &Stack, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(stack.url(path))
        .json(&body)
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

fn floats(item: &Value) -> Vec<f64> {
    item["embedding"]
        .as_array()
        .expect("a float vector")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

const TEXTS: [&str; 3] = [
    "rust compilers check borrows",
    "bread rises in a warm oven",
    "rain is forecast for tomorrow",
];

#[tokio::test]
async fn both_families_embed_a_batch_in_its_order() {
    let stack = stack().await;
    for model in ["titan", "cohere"] {
        let (status, body) = post(
            &stack,
            "/v1/embeddings",
            json!({"model": model, "input": TEXTS}),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["object"], "list");
        let data = body["data"].as_array().expect("data");
        assert_eq!(data.len(), 3, "{model}");
        // Each position holds the vector of the text at that position: embedding the
        // text alone gives the same vector.
        for (index, text) in TEXTS.iter().enumerate() {
            assert_eq!(data[index]["index"], index);
            let (status, alone) = post(
                &stack,
                "/v1/embeddings",
                json!({"model": model, "input": text}),
            )
            .await;
            assert_eq!(status, 200, "{alone}");
            assert_eq!(
                floats(&data[index]),
                floats(&alone["data"][0]),
                "{model} #{index}"
            );
        }
        assert_ne!(floats(&data[0]), floats(&data[1]), "{model}");
    }
}

#[tokio::test]
async fn titan_takes_dimensions_and_counts_tokens() {
    let stack = stack().await;
    let (status, body) = post(
        &stack,
        "/v1/embeddings",
        json!({"model": "titan", "input": ["one two three"], "dimensions": 256}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(floats(&body["data"][0]).len(), 256);
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(body["model"], TITAN);
}

#[tokio::test]
async fn base64_vectors_decode_to_the_float_ones() {
    let stack = stack().await;
    let ask = |format: &str| json!({"model": "cohere", "input": "hello there", "encoding_format": format});
    let (_, plain) = post(&stack, "/v1/embeddings", ask("float")).await;
    let (status, encoded) = post(&stack, "/v1/embeddings", ask("base64")).await;
    assert_eq!(status, 200, "{encoded}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(
            encoded["data"][0]["embedding"]
                .as_str()
                .expect("a base64 string"),
        )
        .expect("valid base64");
    let decoded: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    assert_eq!(decoded, floats(&plain["data"][0]));
}

#[tokio::test]
async fn a_dead_embeddings_target_fails_over_to_the_other() {
    let stack = stack().await;
    // Round-robin starts on each target in turn; every request still gets Cohere's vectors.
    for _ in 0..4 {
        let (status, body) = post(
            &stack,
            "/v1/embeddings",
            json!({"model": "fallback", "input": "hi"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model"], COHERE);
    }
    // The route's own path serves embeddings too, naming its serving target as chat does.
    let response = reqwest::Client::new()
        .post(stack.url("/fallback"))
        .json(&json!({"input": "x"}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(
        aigw_tests::header_text(response.headers(), "x-aigw-llm-model").as_deref(),
        Some("bedrock/cohere.embed-english-v3")
    );
    let (status, body) = post(&stack, "/fallback", json!({"input": ["a", "b"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn bad_input_and_the_wrong_kind_of_route_are_400s() {
    let stack = stack().await;
    let cases = [
        (json!({"model": "titan", "input": [[1, 2, 3]]}), "input[0]"),
        (json!({"model": "titan", "input": []}), "input"),
        (
            json!({"model": "titan", "input": "x", "encoding_format": "hex"}),
            "encoding_format",
        ),
        (json!({"model": "chat", "input": "x"}), "llm/v1/embeddings"),
    ];
    for (request, named) in cases {
        let (status, body) = post(&stack, "/v1/embeddings", request.clone()).await;
        assert_eq!(status, 400, "{request}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{request}: {message}");
    }
    let (status, body) = post(
        &stack,
        "/v1/chat/completions",
        json!({"model": "titan", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("llm/v1/embeddings"), "{message}");
}

#[tokio::test]
async fn the_grpc_embed_rpc_answers_as_http_does() {
    let stack = stack().await;
    let mut client = aigw_tests::grpc_client(&stack.gateway).await;
    let answer = client
        .embed(aigw_proto::v1::EmbedRequest {
            route: "titan".into(),
            input: TEXTS.iter().map(|t| (*t).to_owned()).collect(),
            dimensions: Some(512),
        })
        .await
        .expect("Embed answers")
        .into_inner();
    assert_eq!(answer.model, TITAN);
    assert_eq!(answer.data.len(), 3);
    let (_, http) = post(
        &stack,
        "/v1/embeddings",
        json!({"model": "titan", "input": TEXTS, "dimensions": 512}),
    )
    .await;
    for (index, item) in answer.data.iter().enumerate() {
        assert_eq!(item.index as usize, index);
        let grpc: Vec<f64> = item.embedding.iter().map(|x| f64::from(*x)).collect();
        assert_eq!(grpc, floats(&http["data"][index]), "#{index}");
    }
    // A chat route cannot embed, and says so in gRPC's terms.
    let refused = client
        .embed(aigw_proto::v1::EmbedRequest {
            route: "chat".into(),
            input: vec!["x".into()],
            dimensions: None,
        })
        .await
        .expect_err("a chat route refuses");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("llm/v1/embeddings"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_python_sdk_gets_its_shapes() {
    let stack = stack().await;
    aigw_tests::run_sdk_script("embeddings_api.py", &[&stack.url("/v1"), "titan"]).await;
}

#[tokio::test]
async fn an_openai_compatible_target_gets_the_texts_and_dimensions() {
    let stack = stack().await;
    let (status, body) = post(
        &stack,
        "/v1/embeddings",
        json!({"model": "oai", "input": TEXTS, "dimensions": 64}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "text-embedding-3-small");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 3);
    assert!(data.iter().all(|d| floats(d).len() == 64), "{body}");
    // The upstream's own count, passed on: the emulator counts words of three letters or
    // more, 4 + 4 + 4.
    assert_eq!(body["usage"]["prompt_tokens"], 12);
}

#[tokio::test]
async fn key_auth_guards_an_embeddings_route_over_http_and_grpc() {
    const KEY: &str = "alice-embed-key";
    let yaml = format!(
        "{}  - name: vectors\n    paths: [/vectors]\n    plugins:\n    - name: key-auth\n      config: {{key_names: [apikey]}}\n    - name: ai-proxy-advanced\n      config:\n        targets:\n{}",
        aigw_tests::key_consumer_deck_head(KEY),
        target(COHERE, ""),
    );
    let stack = Stack::start(&aigw_tests::config_from(&yaml)).await;
    let ask = json!({"model": "vectors", "input": "hi"});
    let (status, body) = post(&stack, "/v1/embeddings", ask.clone()).await;
    assert_eq!(status, 401, "{body}");
    let response = reqwest::Client::new()
        .post(stack.url("/v1/embeddings"))
        .header("apikey", KEY)
        .json(&ask)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200);

    let mut client = aigw_tests::grpc_client(&stack.gateway).await;
    let request = || aigw_proto::v1::EmbedRequest {
        route: "vectors".into(),
        input: vec!["hi".into()],
        dimensions: None,
    };
    let refused = client
        .embed(request())
        .await
        .expect_err("no key, no vectors");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut keyed = tonic::Request::new(request());
    keyed
        .metadata_mut()
        .insert("apikey", KEY.parse().expect("ASCII key"));
    let answer = client.embed(keyed).await.expect("the key opens it");
    assert_eq!(answer.into_inner().data.len(), 1);
}

#[tokio::test]
async fn an_embeddings_route_sheds_requests_over_its_concurrency_limit() {
    // An upstream that accepts and never answers: the first request holds the route's
    // only slot for as long as the test needs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let url = format!("http://{}", silent.local_addr().expect("its address"));
    let yaml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: svc\n  host: localhost\n  routes:\n{}",
        route(
            "slow",
            "round-robin",
            &[target(
                COHERE,
                &format!("              upstream_url: {url}\n")
            )]
        ),
    );
    let stack = Stack::start_tuned(
        &aigw_tests::config_from(&yaml),
        aigw_server::RouteLimits {
            max_concurrent_requests: 1,
        },
        aigw_server::ServeOptions::default(),
    )
    .await;
    let first = tokio::spawn({
        let url = stack.url("/v1/embeddings");
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({"model": "slow", "input": "first"}))
                .send()
                .await
        }
    });
    // Once the upstream has the first request's connection, the slot is taken.
    let (_held, _) = silent.accept().await.expect("the first request arrives");
    let (status, body) = post(
        &stack,
        "/v1/embeddings",
        json!({"model": "slow", "input": "second"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("limit of 1"), "{message}");
    first.abort();
}

/// Kong's `embeddings_normalize` (default false): only the route that sets it answers
/// vectors of length 1; the other gets what Titan answers with `normalize: false`.
#[tokio::test]
async fn embeddings_normalize_decides_whether_vectors_have_length_one() {
    let stack = stack().await;
    let length = |vector: Vec<f64>| vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    let text = "apple apple banana cherry";
    let (status, plain) = post(
        &stack,
        "/v1/embeddings",
        json!({"model": "titan", "input": text}),
    )
    .await;
    assert_eq!(status, 200, "{plain}");
    let (status, unit) = post(
        &stack,
        "/v1/embeddings",
        json!({"model": "titan-unit", "input": text}),
    )
    .await;
    assert_eq!(status, 200, "{unit}");
    let plain = length(floats(&plain["data"][0]));
    let unit = length(floats(&unit["data"][0]));
    assert!((unit - 1.0).abs() < 1e-4, "normalized length {unit}");
    assert!(
        plain > 1.5,
        "without embeddings_normalize the length is {plain}"
    );
}
