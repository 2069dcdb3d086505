//! The standalone binary starts, announces its address, and serves.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[tokio::test]
async fn binary_announces_address_and_serves_health() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bedrock-emulator"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let result = async {
        let line = line.map_err(|e| format!("no announcement: {e}"))?;
        let url = line
            .trim()
            .strip_prefix("bedrock-emulator listening on ")
            .ok_or_else(|| format!("unexpected announcement {line:?}"))?
            .to_owned();
        let health = reqwest::get(format!("{url}/_emulator/health"))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(health.status())
    }
    .await;
    // Stop the child before asserting, so a failure does not leave it running.
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(result, Ok(reqwest::StatusCode::OK));
}
