//! The real binary exports its traces: configured by the standard OpenTelemetry variables,
//! and flushed when it is stopped, before the batch exporter's own schedule would send them.

use std::process::{Command, Stdio};
use std::time::Duration;

use aigw_tests::otlp::{Receiver, str_attribute};

#[tokio::test]
async fn spans_reach_the_collector_named_by_otel_variables_and_are_flushed_on_sigterm() {
    let receiver = Receiver::start().await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_aigw"))
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--status-listen", "off"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "aigw-under-test")
        // Far past the test's end: only the flush at shutdown can deliver the spans.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env_remove("AIGW_OTLP_ENDPOINT")
        .env_remove("OTEL_SDK_DISABLED")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");

    let outcome = async {
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..300 {
            if client.get(format!("{url}/health")).send().await.is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            return Err("the gateway never answered /health".to_owned());
        }
        let status = client
            .post(format!("{url}/bedrock-route"))
            .json(&aigw_tests::polish_writer_question())
            .send()
            .await
            .map_err(|e| e.to_string())?
            .status();
        if status != 200 {
            return Err(format!("chat answered {status}"));
        }
        let stopped = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        if !stopped.success() {
            return Err("kill -TERM failed".to_owned());
        }
        Ok(())
    }
    .await;
    let exited = tokio::task::spawn_blocking(move || {
        let status = child.wait();
        (child, status)
    });
    let (mut child, status) = tokio::time::timeout(Duration::from_secs(30), exited)
        .await
        .expect("the binary stops within 30 s of SIGTERM")
        .expect("wait task");
    let _ = child.kill();
    outcome.expect("the gateway served a request");
    assert!(status.is_ok_and(|s| s.success()), "clean exit");

    let spans = receiver
        .wait_for(|s| s.iter().any(|s| s.name.starts_with("chat ")))
        .await;
    assert!(
        spans.iter().any(|s| s.name == "POST /bedrock-route"),
        "the server span arrived: {spans:#?}"
    );
    let attempt = spans
        .iter()
        .find(|s| s.name.starts_with("chat "))
        .expect("an attempt span arrived");
    assert_eq!(str_attribute(attempt, "aigw.route"), Some("route1"));
    assert!(
        receiver
            .service_names()
            .iter()
            .all(|n| n == "aigw-under-test"),
        "OTEL_SERVICE_NAME names the service"
    );
}
