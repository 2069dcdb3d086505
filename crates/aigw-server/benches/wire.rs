//! The front end's own cost per request, without a network or a provider: OpenAI JSON in,
//! route lookup, the balancer stack, JSON (or SSE) out, over an in-process driver that
//! answers at once.
//!
//! `cargo bench -p aigw-server --bench wire`
// criterion's macros generate the undocumented `benches` and `main`.
#![allow(missing_docs)]

use std::sync::Arc;

use aigw_balancer::pick::RoundRobin;
use aigw_balancer::{
    Dispatch, FailoverLayer, FailoverPolicy, HealthPolicy, PickLayer, RouteState, TargetInfo,
};
use aigw_config::ResponseStreaming;
use aigw_core::{
    BoxDriver, ChatChunk, ChatCompletion, ChatReply, ChatRequest, Error, FinishReason, ReplyBody,
    Role, ServedBy, Usage,
};
use aigw_server::{Gateway, Route, RouteTable};
use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

const ANSWER_WORDS: usize = 24;

fn answer(request: &ChatRequest, model: &Arc<str>) -> ReplyBody {
    let usage = Usage {
        prompt_tokens: 8,
        completion_tokens: ANSWER_WORDS as u32,
        total_tokens: 8 + ANSWER_WORDS as u32,
        ..Usage::default()
    };
    if !request.stream {
        return ReplyBody::Complete(ChatCompletion {
            id: "chatcmpl-bench".into(),
            created: 0,
            model: model.clone(),
            content: "word ".repeat(ANSWER_WORDS),
            tool_calls: Vec::new(),
            reasoning: None,
            finish_reason: FinishReason::Stop,
            usage,
        });
    }
    let id: Arc<str> = Arc::from("chatcmpl-bench");
    let chunk = |role, content: Option<&str>, finish, usage| ChatChunk {
        id: id.clone(),
        created: 0,
        model: model.clone(),
        role,
        content: content.map(str::to_owned),
        tool_call: None,
        reasoning: None,
        finish_reason: finish,
        usage,
    };
    let mut chunks = vec![Ok(chunk(Some(Role::Assistant), None, None, None))];
    chunks.extend((0..ANSWER_WORDS).map(|_| Ok(chunk(None, Some("word "), None, None))));
    chunks.push(Ok(chunk(None, None, Some(FinishReason::Stop), None)));
    chunks.push(Ok(chunk(None, None, None, Some(usage))));
    ReplyBody::Stream(Box::pin(futures_util::stream::iter(chunks)))
}

fn instant_driver() -> BoxDriver {
    let model: Arc<str> = Arc::from("bench-model");
    BoxDriver::new(tower::service_fn(move |request: ChatRequest| {
        let body = answer(&request, &model);
        let model = model.clone();
        async move {
            Ok::<_, Error>(ChatReply {
                served_by: ServedBy {
                    provider: "bench",
                    model,
                },
                body,
            })
        }
    }))
}

fn router(runtime: &tokio::runtime::Runtime) -> axum::Router {
    let infos = vec![
        TargetInfo::new("bench/a", 100),
        TargetInfo::new("bench/b", 100),
    ];
    let state = Arc::new(RouteState::new(infos, HealthPolicy::default()));
    let stack = ServiceBuilder::new()
        .layer(FailoverLayer::new(FailoverPolicy::default(), state.clone()))
        .layer(PickLayer::new(RoundRobin::new(&[100, 100]), state.clone()))
        .service(Dispatch::new(vec![instant_driver(), instant_driver()]));
    let route = Route {
        name: "bench".into(),
        paths: vec!["/bench".into()],
        matching: aigw_config::RouteMatch {
            paths: vec![aigw_config::PathPattern::Prefix("/bench".into())],
            protocols: vec!["http".into()],
            ..Default::default()
        },
        model_name_header: true,
        response_streaming: ResponseStreaming::Allow,
        max_request_body_size: 8192,
        hash_on_header: None,
        balancer: state,
        overview: Default::default(),
        service: BoxCloneSyncService::new(stack),
        embed: None,
        counters: None,
        key_auth: None,
        plugins: Default::default(),
        rate_limit: None,
        prompt: Default::default(),
        chat: Default::default(),
        llm_format: Default::default(),
    };
    runtime
        .block_on(Gateway::new(RouteTable::new(vec![route])).router())
        .expect("the router builds")
}

fn post(body: &'static str) -> http::Request<Body> {
    http::Request::post("/bench")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("a valid request")
}

fn front_end(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let router = router(&runtime);
    let unary = r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Who is considered the greatest Polish writer?"}],"max_tokens":256,"temperature":0.5}"#;
    let stream = r#"{"messages":[{"role":"user","content":"Who is considered the greatest Polish writer?"}],"stream":true,"stream_options":{"include_usage":true}}"#;
    c.bench_function("http unary: JSON in, stack, JSON out", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = router.clone().oneshot(post(unary)).await.expect("answers");
                axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("a body")
            })
        })
    });
    c.bench_function("http stream: JSON in, 27 SSE events out", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = router.clone().oneshot(post(stream)).await.expect("answers");
                axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("a body")
            })
        })
    });
}

criterion_group!(benches, front_end);
criterion_main!(benches);
