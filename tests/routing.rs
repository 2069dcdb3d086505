//! Kong's router over real sockets: paths are prefixes, normalized before matching, so no
//! spelling of a protected route's path reaches another route past its key-auth; hosts
//! and methods select routes; a request no route takes gets Kong's 404.
//!
//! Requests go out as raw HTTP/1.1 so that paths reach the gateway exactly as written:
//! HTTP client libraries resolve `/x/../y` before sending.

use aigw_tests::{Stack, config_from, key_consumer_deck_head, polish_writer_question};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "bob-key-55e1c0";

/// A key-auth route at `/bedrock-route` beside an open catch-all at `/`: a path variant
/// that escaped normalization would land on the open route and dodge the key.
fn deck(extra_routes: &str) -> aigw_config::GatewayConfig {
    config_from(&format!(
        r#"{head}  - name: locked
    paths: [/bedrock-route]
    plugins:
    - name: key-auth
      config:
        key_names: [apikey]
{extra_routes}plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - model: {{provider: bedrock, name: "us.amazon.nova-micro-v1:0", options: {{bedrock: {{aws_region: us-west-2}}}}}}
      route_type: llm/v1/chat
"#,
        head = key_consumer_deck_head(KEY)
    ))
}

/// Sends one POST with the question, exactly as written: the status and the body.
async fn raw_post(
    stack: &Stack,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let addr = stack.gateway.url().trim_start_matches("http://").to_owned();
    let body = polish_writer_question().to_string();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let mut stream = TcpStream::connect(addr.as_str()).await.expect("connects");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("reads");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn no_spelling_of_a_protected_path_dodges_its_key() {
    let stack = Stack::start(&deck("  - name: open\n    paths: [/]\n")).await;
    let variants = [
        "/bedrock-route",
        "/%62edrock-route",
        "//bedrock-route",
        "///bedrock-route//x",
        "/x/../bedrock-route",
        "/%2e%2e/bedrock-route",
        "/./bedrock-route/./",
        "/bedrock-route/anything",
    ];
    for path in variants {
        let (status, body) = raw_post(&stack, path, "gw.test", &[]).await;
        assert_eq!(status, 401, "{path} without a key: {body}");
        let (status, body) = raw_post(&stack, path, "gw.test", &[("apikey", KEY)]).await;
        assert_eq!(status, 200, "{path} with the key: {body}");
    }
    // Paths are case-sensitive and reserved characters stay encoded, as in Kong: these are
    // other paths, which the open route takes.
    for path in ["/Bedrock-route", "/bedrock%2Froute", "/open"] {
        let (status, body) = raw_post(&stack, path, "gw.test", &[]).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[tokio::test]
async fn nothing_matched_is_kongs_404() {
    let stack = Stack::start(&deck("")).await;
    for path in ["/nowhere", "/bedrock", "/%2fbedrock-route"] {
        let (status, body) = raw_post(&stack, path, "gw.test", &[]).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body.contains("no Route matched with those values"),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn hosts_and_methods_choose_between_routes_on_one_path() {
    let stack = Stack::start(&deck(
        r#"  - name: eu
    paths: [/chat]
    hosts: ["*.eu.example.com"]
  - name: us
    paths: [/chat]
    hosts: [us.example.com]
    plugins:
    - name: key-auth
      config:
        key_names: [apikey]
  - name: put-only
    paths: [/put]
    methods: [PUT]
"#,
    ))
    .await;
    let (status, body) = raw_post(&stack, "/chat", "api.eu.example.com", &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw_post(&stack, "/chat", "US.example.com:8000", &[]).await;
    assert_eq!(status, 401, "the us route's key-auth applies: {body}");
    let (status, body) = raw_post(&stack, "/chat", "other.example.org", &[]).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = raw_post(&stack, "/put", "gw.test", &[]).await;
    assert_eq!(
        status, 404,
        "a POST does not reach a PUT-only route: {body}"
    );
}
