//! Memory per stream stays bounded: a client that stops reading makes the gateway stop
//! reading the upstream, instead of holding the rest of the answer in memory.
//!
//! Alone in its own test binary so that no other test's allocations move the process's
//! resident size while it is measured. Linux only: it reads `/proc/self/status`.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use aigw_emulator::ModelKnobs;
use aigw_proto::v1::chat_service_client::ChatServiceClient;
use aigw_proto::v1::{ChatRequest, Message};
use aigw_tests::{Stack, seed_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The process's resident memory in bytes, from `VmRSS` in `/proc/self/status`.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// Waits until resident memory has stopped growing for a second (or 30 s passed) and
/// returns it: by then whatever the path would buffer, it has buffered.
async fn settled_resident_bytes() -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = resident_bytes();
    let mut steady_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = resident_bytes();
        if now > last + 256 * 1024 {
            last = now;
            steady_since = Instant::now();
        } else if steady_since.elapsed() >= Duration::from_secs(1) {
            break;
        }
    }
    resident_bytes()
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_make_the_gateway_buffer_the_answer() {
    // 100,000 words: about 23 MB of SSE, or 10+ MB as chunks in memory, were it buffered.
    const WORDS: u64 = 100_000;
    let stack = Stack::start(&seed_config()).await;
    stack.emulator.knobs().set_default(ModelKnobs {
        answer_words: WORDS as usize,
        ..ModelKnobs::default()
    });
    // Warm up the SDK client and the connection pools with a short stream.
    let warm = reqwest::Client::new()
        .post(stack.url("/bedrock-route"))
        .json(&serde_json::json!({"stream": true, "max_tokens": 3,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    warm.text().await.expect("reads");
    let before = settled_resident_bytes().await;

    // A client that reads the response head and then nothing; its small receive buffer
    // keeps the kernel from taking much of the answer off the gateway's hands.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    let mut client = socket
        .connect(stack.gateway.addr())
        .await
        .expect("connects");
    let body = format!(
        r#"{{"stream":true,"max_tokens":{WORDS},"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let request = format!(
        "POST /bedrock-route HTTP/1.1\r\nhost: aigw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.expect("sends");
    let mut head = [0u8; 1024];
    let n = client.read(&mut head).await.expect("reads the head");
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );

    assert_little_held_while_stalled(&stack, before, "HTTP", "stream").await;

    // Reading again lets the stream go on; leaving cancels it upstream.
    let mut more = vec![0u8; 64 * 1024];
    assert!(client.read(&mut more).await.expect("reads on") > 0);
    drop(client);
    wait_until_no_stream_is_open(&stack).await;
    assert_eq!(stack.emulator.open_streams(), 0);
    assert_eq!(stack.emulator.cancelled_streams(), 1);

    // The same over gRPC: HTTP/2 flow control stops the gateway at the client's window,
    // and the gateway holds at most a few chunks for it.
    let before = settled_resident_bytes().await;
    // Small HTTP/2 windows, or the client itself (this process) would take megabytes of
    // the answer into its receive buffer.
    let channel = tonic::transport::Endpoint::from_shared(stack.gateway.url())
        .expect("valid url")
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .expect("gRPC connects");
    let mut grpc = ChatServiceClient::new(channel);
    let stalled = grpc
        .chat_stream(ChatRequest {
            messages: vec![Message {
                role: "user".into(),
                content: "hi".into(),
                ..Message::default()
            }],
            max_tokens: Some(WORDS as u32),
            ..ChatRequest::default()
        })
        .await
        .expect("stream starts");
    assert_little_held_while_stalled(&stack, before, "gRPC", "gRPC stream").await;
    drop(stalled);
    wait_until_no_stream_is_open(&stack).await;
    assert_eq!(stack.emulator.cancelled_streams(), 2);
}

/// Asserts the gateway's resident memory grew by under 6 MiB since `before` while a
/// `front_end` client stalls one `stream`, and that the upstream stream still runs.
async fn assert_little_held_while_stalled(
    stack: &Stack,
    before: u64,
    front_end: &str,
    stream: &str,
) {
    let after = settled_resident_bytes().await;
    let grown = after.saturating_sub(before);
    eprintln!(
        "{front_end}: resident memory grew by {} KiB while the client stalled",
        grown / 1024
    );
    assert!(
        grown < 6 * 1024 * 1024,
        "the gateway held {} KiB for one stalled {stream}",
        grown / 1024
    );
    assert_eq!(
        stack.emulator.open_streams(),
        1,
        "the stream is still going"
    );
}

/// Waits up to 3 s for the emulator to have no stream open.
async fn wait_until_no_stream_is_open(stack: &Stack) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while stack.emulator.open_streams() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
