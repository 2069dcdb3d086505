//! Limits and lifecycle: load shedding past the concurrency limit, graceful drain on
//! shutdown, the header-read timeout against slow clients, and config reload while serving.

use std::time::{Duration, Instant};

use aigw_emulator::{EmulatorHandle, ModelKnobs};
use aigw_server::{RouteLimits, ServeOptions};
use aigw_tests::{
    Stack, grpc_hi_refused, polish_writer_question, post_polish_question, seed_config, seed_yaml,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn ask(url: String) -> Result<(u16, String), reqwest::Error> {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(polish_writer_question().to_string())
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

fn slow_upstream(emulator: &EmulatorHandle, latency: Duration) {
    emulator.knobs().set_default(ModelKnobs {
        latency,
        ..ModelKnobs::default()
    });
}

/// Waits until the emulator has seen `count` requests in all (they are recorded on arrival,
/// before the knobs' latency).
async fn until_upstream_saw(emulator: &EmulatorHandle, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while emulator.emulator().request_count() < count {
        assert!(
            Instant::now() < deadline,
            "upstream never saw {count} requests"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn past_the_concurrency_limit_requests_get_503_at_once() {
    let limits = RouteLimits {
        max_concurrent_requests: 2,
    };
    let stack = Stack::start_tuned(&seed_config(), limits, ServeOptions::default()).await;
    slow_upstream(&stack.emulator, Duration::from_secs(2));
    let url = stack.url("/bedrock-route");
    let busy: Vec<_> = (0..2).map(|_| tokio::spawn(ask(url.clone()))).collect();
    until_upstream_saw(&stack.emulator, 2).await;

    let response = post_polish_question(&reqwest::Client::new(), &url).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert!(
        busy.iter().all(|task| !task.is_finished()),
        "the refusal came while both slots were still busy, not after queueing"
    );
    let status = grpc_hi_refused(&stack.gateway, "shed").await;
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(
        stack.emulator.emulator().request_count(),
        2,
        "shed requests cost no upstream call"
    );

    for task in busy {
        let (status, _) = task.await.expect("joins").expect("answers");
        assert_eq!(status, 200);
    }
    slow_upstream(&stack.emulator, Duration::ZERO);
    let (status, _) = ask(url).await.expect("answers");
    assert_eq!(status, 200, "capacity comes back when requests finish");
}

#[tokio::test]
async fn a_stream_holds_its_slot_until_its_last_event() {
    let limits = RouteLimits {
        max_concurrent_requests: 1,
    };
    let stack = Stack::start_tuned(&seed_config(), limits, ServeOptions::default()).await;
    stack.emulator.knobs().set_default(ModelKnobs {
        token_delay: Duration::from_millis(50),
        ..ModelKnobs::default()
    });
    let url = stack.url("/bedrock-route");
    let mut body = polish_writer_question();
    body["stream"] = true.into();
    let stream = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("stream starts");
    assert_eq!(stream.status(), 200);

    let (status, refused) = ask(url.clone()).await.expect("answers");
    assert_eq!(
        status, 503,
        "the open stream still holds the only slot: {refused}"
    );

    let events = stream.text().await.expect("stream read to the end");
    assert!(events.trim_end().ends_with("data: [DONE]"), "{events}");
    // The slot is released when the gateway drops the finished stream, a moment after
    // the client has read its last byte.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = ask(url.clone()).await.expect("answers");
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_streams_then_refuses_connections() {
    let stack = Stack::start(&seed_config()).await;
    let Stack { emulator, gateway } = stack;
    emulator.knobs().set_default(ModelKnobs {
        latency: Duration::from_millis(600),
        token_delay: Duration::from_millis(40),
        ..ModelKnobs::default()
    });
    let url = format!("{}/bedrock-route", gateway.url());
    let unary = tokio::spawn(ask(url.clone()));
    let mut stream_body = polish_writer_question();
    stream_body["stream"] = true.into();
    let stream = tokio::spawn({
        let url = url.clone();
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(stream_body.to_string())
                .send()
                .await?;
            response.text().await
        }
    });
    until_upstream_saw(&emulator, 2).await;

    let addr = gateway.addr();
    let stopping = tokio::spawn(gateway.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "a draining gateway accepts no new connections"
    );

    let (status, body) = unary
        .await
        .expect("joins")
        .expect("in-flight request answered");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("chat.completion"));
    let events = stream
        .await
        .expect("joins")
        .expect("stream read to the end");
    assert!(
        events.trim_end().ends_with("data: [DONE]"),
        "the stream ran to its clean end: {events}"
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown returns once drained")
        .expect("joins");
}

#[tokio::test]
async fn drain_timeout_bounds_the_wait_for_a_stuck_request() {
    let serve = ServeOptions {
        drain_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let Stack { emulator, gateway } =
        Stack::start_tuned(&seed_config(), RouteLimits::default(), serve).await;
    slow_upstream(&emulator, Duration::from_secs(30));
    let stuck = tokio::spawn(ask(format!("{}/bedrock-route", gateway.url())));
    until_upstream_saw(&emulator, 1).await;
    tokio::time::timeout(Duration::from_secs(10), gateway.shutdown())
        .await
        .expect("shutdown gives up on the stuck request after the drain timeout");
    let outcome = tokio::time::timeout(Duration::from_secs(10), stuck)
        .await
        .expect("the client is not left hanging")
        .expect("joins");
    assert!(
        outcome.is_err(),
        "the cut request is an error, not a success: {outcome:?}"
    );
}

#[tokio::test]
async fn slow_headers_are_cut_off_while_other_clients_are_served() {
    let stack = seed_stack_with_300ms_header_read_timeout().await;
    let mut slow = connect(&stack).await;
    slow.write_all(
        b"POST /bedrock-route HTTP/1.1\r\nhost: aigw\r\ncontent-type: application/json\r\n",
    )
    .await
    .expect("writes");
    // A client that connects and says nothing at all, not even which HTTP it speaks.
    let mut silent = connect(&stack).await;
    // The headers never end; the gateway must hang up rather than wait forever.
    let (status, _) = ask(stack.url("/bedrock-route")).await.expect("answers");
    assert_eq!(status, 200, "a slow client does not block others");
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buffer))
        .await
        .expect("the gateway closed the slow connection");
    assert!(
        read.is_err() || !String::from_utf8_lossy(&buffer).contains("200 OK"),
        "no answer for a request that never finished its headers"
    );
    let nothing = read_until_closed(&mut silent, "the gateway closed the silent connection").await;
    assert!(nothing.is_empty(), "nothing to answer: {nothing:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let stack = seed_stack_with_300ms_header_read_timeout().await;
    let mut idle = connect(&stack).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: aigw\r\n\r\n")
        .await
        .expect("writes");
    let mut answer = vec![0u8; 4096];
    let read = idle.read(&mut answer).await.expect("reads the answer");
    assert!(
        String::from_utf8_lossy(&answer[..read]).starts_with("HTTP/1.1 200"),
        "the first request is answered and the connection kept open"
    );
    // Then the client sends nothing more: the descriptor must not be held forever.
    let began = std::time::Instant::now();
    let rest = read_until_closed(&mut idle, "the gateway closed the idle connection").await;
    assert!(rest.is_empty(), "nothing more was asked: {rest:?}");
    assert!(
        began.elapsed() >= Duration::from_millis(250),
        "closed by the timeout, not at once after the answer ({:?})",
        began.elapsed()
    );
}

/// The seed stack, hanging up on a client whose request headers take over 300 ms.
async fn seed_stack_with_300ms_header_read_timeout() -> Stack {
    let serve = ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    Stack::start_tuned(&seed_config(), RouteLimits::default(), serve).await
}

/// What `stream` reads until the gateway closes it, which must happen within 10 s
/// (`closed` says which close the test expects).
async fn read_until_closed(stream: &mut TcpStream, closed: &str) -> Vec<u8> {
    let mut read = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut read))
        .await
        .expect(closed)
        .ok();
    read
}

/// A raw TCP connection to the gateway.
async fn connect(stack: &Stack) -> TcpStream {
    TcpStream::connect(stack.gateway.addr())
        .await
        .expect("connects")
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("aigw-{}-{name}.yaml", std::process::id()));
    std::fs::write(&path, text).expect("writes the temp config");
    path
}

#[tokio::test]
async fn reload_swaps_routes_for_new_requests_and_keeps_in_flight_ones() {
    let stack = Stack::start(&seed_config()).await;
    slow_upstream(&stack.emulator, Duration::from_millis(500));
    let in_flight = tokio::spawn(ask(stack.url("/bedrock-route")));
    until_upstream_saw(&stack.emulator, 1).await;

    let seed = seed_yaml();
    let moved = temp_config("moved", &seed.replace("/bedrock-route", "/moved-route"));
    let options = Stack::options_for(&stack.emulator, RouteLimits::default());
    let routes = stack.gateway.routes();
    let count = routes
        .reload_from(&moved, &options)
        .await
        .expect("valid config reloads");
    assert_eq!(count, 1);

    let (status, body) = in_flight.await.expect("joins").expect("answers");
    assert_eq!(
        status, 200,
        "the in-flight request finished on the old routes: {body}"
    );
    slow_upstream(&stack.emulator, Duration::ZERO);
    assert_eq!(
        ask(stack.url("/moved-route")).await.expect("answers").0,
        200
    );
    assert_eq!(
        ask(stack.url("/bedrock-route")).await.expect("answers").0,
        404
    );

    let broken = temp_config("broken", &seed.replace("round-robin", "round-robbin"));
    let error = routes
        .reload_from(&broken, &options)
        .await
        .expect_err("an invalid config is refused")
        .to_string();
    assert!(error.contains("round-robbin"), "{error}");
    assert_eq!(
        ask(stack.url("/moved-route")).await.expect("answers").0,
        200,
        "the previous config keeps serving"
    );
    let _ = std::fs::remove_file(moved);
    let _ = std::fs::remove_file(broken);
}
