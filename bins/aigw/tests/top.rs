//! `aigw top --once` against a live gateway and emulator: the operator's terminal view
//! names the route and each target with its request count, in 80 columns; a wrong status
//! URL is an error, not an empty table.

use std::process::{Command, Output};

use aigw_tests::{Stack, post_polish_question, seed_config};

const AIGW: &str = env!("CARGO_BIN_EXE_aigw");

/// Runs the binary off the runtime's threads: the gateway it watches runs on them.
async fn aigw(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(AIGW).args(args).output())
        .await
        .expect("joins")
        .expect("aigw runs")
}

/// The row of the target whose label contains `model`, split into cells.
fn row<'a>(frame: &'a str, model: &str) -> Vec<&'a str> {
    frame
        .lines()
        .find(|l| l.contains(model))
        .unwrap_or_else(|| panic!("no row for {model} in\n{frame}"))
        .split_whitespace()
        .collect()
}

#[tokio::test]
async fn once_prints_one_frame_with_every_target_and_its_requests() {
    let stack = Stack::start(&seed_config()).await;
    let client = reqwest::Client::new();
    // Round-robin over two targets: three to the first, two to the second.
    for _ in 0..5 {
        let response = post_polish_question(&client, &stack.url("/bedrock-route")).await;
        assert_eq!(response.status(), 200);
    }
    let output = aigw(vec![
        "top".into(),
        "--once".into(),
        "--status".into(),
        stack.gateway.status_url(),
    ])
    .await;
    let frame = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(
        output.status.success(),
        "{frame}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!frame.contains('\x1b'), "no escapes for scripts: {frame:?}");
    for line in frame.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(frame.contains("route route1"), "{frame}");
    assert!(frame.contains("/bedrock-route"), "{frame}");
    let nova = row(&frame, "nova-mic");
    let llama = row(&frame, "llama3-3-7");
    // TARGET HEALTH INF REQS ...
    assert_eq!(&nova[1..4], ["up", "0", "3"], "{frame}");
    assert_eq!(&llama[1..4], ["up", "0", "2"], "{frame}");
}

#[tokio::test]
async fn an_unreachable_status_listener_is_an_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        listener.local_addr().expect("address").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let output = aigw(vec![
        "top".into(),
        "--once".into(),
        "--status".into(),
        url.clone(),
    ])
    .await;
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no frame printed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains(&url),
        "says which URL failed: {stderr}"
    );
}

#[tokio::test]
async fn a_data_port_instead_of_the_status_port_is_an_error() {
    let stack = Stack::start(&seed_config()).await;
    let output = aigw(vec![
        "top".into(),
        "--once".into(),
        "--status".into(),
        stack.gateway.url(),
    ])
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("404"), "{stderr}");
}
