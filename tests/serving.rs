//! The connection and its request bodies, over raw sockets: a body that stalls is cut off
//! with a 408, a head over the cap is a 431, a request HTTP/1.1 calls malformed is a 400,
//! and a keep-alive connection stays in step after an early refusal. After each, the
//! gateway goes on serving.

use std::time::{Duration, Instant};

use aigw_server::{RouteLimits, ServeOptions};
use aigw_tests::{Stack, polish_writer_question, post_polish_question, seed_config};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One HTTP/1 answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header lines, lower-cased.
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    fn closes(&self) -> bool {
        self.head.contains("connection: close")
    }
}

/// Reads one answer (with a Content-Length body) from `reader`; `None` at a clean end.
async fn read_answer(reader: &mut BufReader<TcpStream>) -> Option<Answer> {
    let read = async {
        let mut status_line = String::new();
        if reader.read_line(&mut status_line).await.ok()? == 0 {
            return None;
        }
        let status = status_line.split(' ').nth(1)?.parse().ok()?;
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.ok()?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(Some(0), |v| v.trim().parse().ok())?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.ok()?;
        Some(Answer {
            status,
            head,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer or the end within 10 s")
}

/// Whether the gateway closed the connection (nothing more to read) within 10 s.
async fn closed(reader: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    match tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => rest.is_empty(),
        Ok(Err(_)) => true,
        Err(_) => false,
    }
}

async fn connect(stack: &Stack) -> BufReader<TcpStream> {
    BufReader::new(
        TcpStream::connect(stack.gateway.addr())
            .await
            .expect("connects"),
    )
}

fn chat_head(path: &str, extra: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: aigw\r\ncontent-type: application/json\r\n{extra}content-length: {length}\r\n\r\n"
    )
}

/// A whole, valid chat request on the seed route.
fn chat_request() -> String {
    let body = polish_writer_question().to_string();
    format!("{}{body}", chat_head("/bedrock-route", "", body.len()))
}

async fn still_serving(stack: &Stack) {
    let response =
        post_polish_question(&reqwest::Client::new(), &stack.url("/bedrock-route")).await;
    assert_eq!(response.status(), 200, "the gateway still serves");
}

async fn tuned(serve: ServeOptions) -> Stack {
    Stack::start_tuned(&seed_config(), RouteLimits::default(), serve).await
}

#[tokio::test]
async fn a_stalled_body_is_408_and_closed_while_a_slow_steady_one_is_served() {
    let stack = tuned(ServeOptions {
        client_body_timeout: Duration::from_millis(400),
        ..ServeOptions::default()
    })
    .await;

    // Half the body, then nothing.
    let mut stalled = connect(&stack).await;
    let body = polish_writer_question().to_string();
    let (first, _) = body.split_at(body.len() / 2);
    let head = chat_head("/bedrock-route", "", body.len());
    stalled
        .get_mut()
        .write_all(format!("{head}{first}").as_bytes())
        .await
        .expect("writes");
    let began = Instant::now();
    let answer = read_answer(&mut stalled).await.expect("an answer");
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.json()["error"]["code"], "request_timeout");
    assert!(
        began.elapsed() >= Duration::from_millis(350),
        "{:?}",
        began.elapsed()
    );
    assert!(answer.closes(), "{answer:?}");
    assert!(
        closed(&mut stalled).await,
        "the connection is closed after a 408"
    );

    // The timeout is between reads: a body trickling in over 1.5 s, a piece every 150 ms,
    // is read to its end.
    let mut steady = connect(&stack).await;
    steady
        .get_mut()
        .write_all(head.as_bytes())
        .await
        .expect("writes");
    for piece in body.as_bytes().chunks(body.len().div_ceil(10)) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        steady.get_mut().write_all(piece).await.expect("writes");
    }
    let answer = read_answer(&mut steady).await.expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    still_serving(&stack).await;
}

#[tokio::test]
async fn a_stalled_h2_body_is_408() {
    let stack = tuned(ServeOptions {
        client_body_timeout: Duration::from_millis(400),
        ..ServeOptions::default()
    })
    .await;
    let body = polish_writer_question().to_string();
    let first = body.as_bytes()[..10].to_vec();
    // Ten bytes, then a body that never ends.
    let stalling = tokio_stream::StreamExt::chain(
        tokio_stream::once(Ok::<_, std::io::Error>(first)),
        tokio_stream::pending(),
    );
    let request = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client")
        .post(stack.url("/bedrock-route"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stalling))
        .send();
    let response = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("answered without waiting for the body")
        .expect("answered");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 408);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["error"]["code"], "request_timeout", "{answer}");
    still_serving(&stack).await;
}

#[tokio::test]
async fn a_head_over_the_cap_is_431_not_read_whole() {
    let stack = tuned(ServeOptions {
        max_header_size: 16 * 1024,
        ..ServeOptions::default()
    })
    .await;
    let mut client = connect(&stack).await;
    let huge = "a".repeat(300 * 1024);
    let request = format!("GET /health HTTP/1.1\r\nhost: aigw\r\nx-padding: {huge}\r\n\r\n");
    // The gateway may hang up before the whole head is written.
    let _ = client.get_mut().write_all(request.as_bytes()).await;
    let answer = read_answer(&mut client).await.expect("an answer");
    assert_eq!(answer.status, 431, "{answer:?}");

    // A head under the cap is served.
    let mut client = connect(&stack).await;
    let padded = format!(
        "GET /health HTTP/1.1\r\nhost: aigw\r\nx-padding: {}\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    client
        .get_mut()
        .write_all(padded.as_bytes())
        .await
        .expect("writes");
    assert_eq!(
        read_answer(&mut client).await.expect("an answer").status,
        200
    );
    still_serving(&stack).await;
}

#[tokio::test]
async fn http_1_1_without_host_or_with_two_is_400() {
    let stack = Stack::start(&seed_config()).await;
    let body = polish_writer_question().to_string();
    let heads = [
        "POST /bedrock-route HTTP/1.1\r\ncontent-type: application/json\r\n",
        "POST /bedrock-route HTTP/1.1\r\nhost: a\r\nhost: b\r\ncontent-type: application/json\r\n",
    ];
    for head in heads {
        let mut client = connect(&stack).await;
        let request = format!("{head}content-length: {}\r\n\r\n{body}", body.len());
        client
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("writes");
        let answer = read_answer(&mut client).await.expect("an answer");
        assert_eq!(answer.status, 400, "{head:?}: {answer:?}");
        assert_eq!(answer.json()["error"]["code"], "invalid_request");
        assert!(
            answer.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Host"))
        );
    }
    assert_eq!(stack.emulator.emulator().request_count(), 0);
    still_serving(&stack).await;
}

/// Refusals made before the body is read leave a small body unread; the gateway reads it
/// away, so the next request on the connection starts where the client thinks it does.
#[tokio::test]
async fn a_keep_alive_connection_stays_in_step_after_early_refusals() {
    let stack = Stack::start(&seed_config()).await;
    let body = polish_writer_question().to_string();
    let refused = [
        (chat_head("/no-such-route", "", body.len()), 404),
        (
            format!(
                "GET /bedrock-route HTTP/1.1\r\nhost: aigw\r\ncontent-length: {}\r\n\r\n",
                body.len()
            ),
            405,
        ),
        (
            format!(
                "POST /bedrock-route HTTP/1.1\r\nhost: aigw\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                body.len()
            ),
            415,
        ),
        (
            chat_head("/bedrock-route", "content-encoding: br\r\n", body.len()),
            415,
        ),
    ];
    let mut client = connect(&stack).await;
    for (head, status) in &refused {
        // The head and the body in separate writes, as Python's http.client sends them.
        client
            .get_mut()
            .write_all(head.as_bytes())
            .await
            .expect("writes");
        tokio::time::sleep(Duration::from_millis(20)).await;
        client
            .get_mut()
            .write_all(body.as_bytes())
            .await
            .expect("writes");
        client
            .get_mut()
            .write_all(chat_request().as_bytes())
            .await
            .expect("writes");
        let answer = read_answer(&mut client).await.expect("the refusal");
        assert_eq!(answer.status, *status, "{head}: {answer:?}");
        assert!(!answer.closes(), "{head}: {answer:?}");
        let next = read_answer(&mut client).await.expect("the next answer");
        assert_eq!(next.status, 200, "after {head}: {next:?}");
    }

    // A body too large to read away: the refusal says the connection closes, and it does.
    let head = chat_head("/no-such-route", "", 200 * 1024);
    client
        .get_mut()
        .write_all(head.as_bytes())
        .await
        .expect("writes");
    let answer = read_answer(&mut client).await.expect("the refusal");
    assert_eq!(answer.status, 404, "{answer:?}");
    assert!(answer.closes(), "{answer:?}");
    assert!(closed(&mut client).await);
    still_serving(&stack).await;
}
