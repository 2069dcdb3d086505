//! `aigw top`: the status listener's `/status/targets` as a table that fits an 80-column
//! terminal, redrawn in place, for an operator on the box who has no Grafana at hand.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The widest frame line, so the table reads in a default terminal.
pub const WIDTH: usize = 80;

/// Column widths of a target row; with the single spaces between them they add up to
/// [`WIDTH`] minus one, leaving the last column room for a wide cost.
const LABEL: usize = 19;
const COLUMNS: [(&str, usize); 10] = [
    ("HEALTH", 6),
    ("INF", 3),
    ("REQS", 5),
    ("REQ/S", 5),
    ("FAIL", 5),
    ("E2E", 5),
    ("TPOT", 5),
    ("TTFT", 5),
    ("TOKENS", 6),
    ("COST", 6),
];

/// What `aigw top` was asked to show.
pub struct Options {
    /// The status listener's base URL, e.g. `http://127.0.0.1:8100`.
    pub status: String,
    /// One frame without terminal escapes, then exit.
    pub once: bool,
    /// Time between refreshes.
    pub interval: Duration,
}

/// Runs `aigw top` until Ctrl-C (or after one frame with `once`).
pub async fn run(options: Options) -> Result<()> {
    let base = options.status.trim_end_matches('/').to_owned();
    let url = format!("{base}/status/targets");
    let client = reqwest::Client::builder()
        // A wedged gateway should show as such, not freeze the view.
        .timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client")?;
    // The first fetch decides whether the URL is right at all: fail loudly rather than
    // redraw an error forever.
    let first = fetch(&client, &url).await?;
    let mut previous: Option<Sample> = None;
    let mut current = Sample::new(first);
    if options.once {
        print!("{}", render(&base, &current, None, None));
        return Ok(());
    }
    let mut problem: Option<String> = None;
    loop {
        let frame = render(&base, &current, previous.as_ref(), problem.as_deref());
        draw(&frame);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(options.interval) => {}
        }
        match fetch(&client, &url).await {
            Ok(body) => {
                previous = Some(std::mem::replace(&mut current, Sample::new(body)));
                problem = None;
            }
            // Keep the last figures on screen and say why they are not moving.
            Err(error) => problem = Some(format!("{error:#}")),
        }
    }
}

/// Home, the frame with each line's leftovers cleared, then the rest of the screen cleared:
/// redrawing in place without the flicker of clearing first.
fn draw(frame: &str) {
    let mut out = String::from("\x1b[H");
    for line in frame.lines() {
        out.push_str(line);
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J");
    let mut stdout = std::io::stdout().lock();
    // A closed terminal is the user leaving; nothing to report.
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Value> {
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("fetching {url} (is the gateway's status listener there?)"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("fetching {url}: HTTP {status}");
    }
    response
        .json()
        .await
        .with_context(|| format!("reading {url} as JSON"))
}

/// One fetch of `/status/targets` and when it arrived, for rates between two.
pub struct Sample {
    body: Value,
    at: Instant,
}

impl Sample {
    fn new(body: Value) -> Self {
        Sample {
            body,
            at: Instant::now(),
        }
    }
}

/// The frame for `current`, with request rates against `previous` when there is one.
pub fn render(
    base: &str,
    current: &Sample,
    previous: Option<&Sample>,
    problem: Option<&str>,
) -> String {
    let mut out = String::new();
    let routes = current.body["routes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    line(
        &mut out,
        &format!("aigw top  {base}  {} route(s)", routes.len()),
    );
    if let Some(problem) = problem {
        line(&mut out, &format!("stale: {problem}"));
    }
    let before = previous.map(|p| (requests_by_target(&p.body), current.at.duration_since(p.at)));
    for route in routes {
        out.push('\n');
        render_route(&mut out, route, before.as_ref());
    }
    out
}

type Counts = HashMap<(String, String), u64>;

fn requests_by_target(body: &Value) -> Counts {
    let mut counts = HashMap::new();
    for route in body["routes"].as_array().into_iter().flatten() {
        for target in route["targets"].as_array().into_iter().flatten() {
            counts.insert(key(route, target), target["requests"].as_u64().unwrap_or(0));
        }
    }
    counts
}

fn key(route: &Value, target: &Value) -> (String, String) {
    (
        text(&route["name"]).to_owned(),
        format!("{}#{}", text(&target["target"]), target["index"]),
    )
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

fn render_route(out: &mut String, route: &Value, before: Option<&(Counts, Duration)>) {
    let mut head = format!("route {}", text(&route["name"]));
    if let Some(algorithm) = route["algorithm"].as_str() {
        let _ = write!(head, " ({algorithm})");
    }
    let paths: Vec<&str> = route["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !paths.is_empty() {
        let _ = write!(head, "  {}", paths.join(" "));
    }
    if let Some(failovers) = route["failovers"].as_u64() {
        let _ = write!(head, "  failovers {failovers}");
    }
    line(out, &head);

    let mut header = format!("{:<LABEL$}", "TARGET");
    for (name, width) in COLUMNS {
        let _ = write!(header, " {name:>width$}");
    }
    line(out, &header);
    for target in route["targets"].as_array().into_iter().flatten() {
        let rate = before.and_then(|(counts, elapsed)| {
            let then = counts.get(&key(route, target))?;
            let now = target["requests"].as_u64()?;
            let secs = elapsed.as_secs_f64();
            (secs > 0.0).then(|| now.saturating_sub(*then) as f64 / secs)
        });
        let cells = [
            health(target),
            count(&target["in_flight"]),
            count(&target["requests"]),
            rate.map_or_else(|| "-".to_owned(), per_second),
            count(&target["failures"]),
            millis(&target["latency_ms"]["e2e"]),
            millis(&target["latency_ms"]["tpot"]),
            millis(&target["ttft_ms"]),
            count(&target["tokens"]["total"]),
            cost(&target["cost"]),
        ];
        let mut row = truncate(&label(text(&target["target"])), LABEL);
        row = format!("{row:<LABEL$}");
        for ((_, width), cell) in COLUMNS.iter().zip(cells) {
            let _ = write!(row, " {:>width$}", truncate(&cell, *width), width = *width);
        }
        line(out, &row);
        if let Some(kinds) = target["failures_by_kind"]
            .as_object()
            .filter(|k| !k.is_empty())
        {
            let kinds: Vec<String> = kinds
                .iter()
                .map(|(kind, n)| format!("{kind} {}", count(n)))
                .collect();
            line(out, &format!("  failures: {}", kinds.join(", ")));
        }
    }
}

/// Adds `text` as one line, cut to [`WIDTH`].
fn line(out: &mut String, text: &str) {
    out.push_str(&truncate(text, WIDTH));
    out.push('\n');
}

/// `provider/model` without the provider when it does not fit: the model is what tells
/// targets apart, and it is the start of a model ID that names it.
fn label(full: &str) -> String {
    if full.chars().count() <= LABEL {
        return full.to_owned();
    }
    full.split_once('/')
        .map_or(full, |(_, model)| model)
        .to_owned()
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn health(target: &Value) -> String {
    match target["health"].as_str() {
        Some("healthy") => "up".to_owned(),
        Some("unhealthy") => match target["back_in_ms"].as_f64() {
            Some(ms) if ms > 0.0 => format!("dn {}", seconds((ms / 1000.0).ceil() as u64)),
            _ => "down".to_owned(),
        },
        Some(other) => other.to_owned(),
        None => "?".to_owned(),
    }
}

fn per_second(rate: f64) -> String {
    if rate < 100.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.0}")
    }
}

fn seconds(secs: u64) -> String {
    match secs {
        0..100 => format!("{secs}s"),
        _ => format!("{}m", secs.div_ceil(60)),
    }
}

/// A count in at most five characters: 12345, 1234k, 12.3M, 1234M.
fn count(value: &Value) -> String {
    let Some(n) = value.as_u64() else {
        return "-".to_owned();
    };
    match n {
        0..100_000 => n.to_string(),
        100_000..10_000_000 => format!("{}k", n / 1000),
        10_000_000..100_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{}M", n / 1_000_000),
    }
}

/// Milliseconds in at most five characters: 4.5ms, 123ms, 1.23s, 12.3s.
fn millis(value: &Value) -> String {
    let Some(ms) = value.as_f64() else {
        return "-".to_owned();
    };
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 10_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms < 100_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        format!("{:.0}s", ms / 1000.0)
    }
}

/// Dollars in at most six characters, cents' fractions visible while they are small.
fn cost(value: &Value) -> String {
    let Some(dollars) = value.as_f64() else {
        return "-".to_owned();
    };
    if dollars == 0.0 {
        "0".to_owned()
    } else if dollars < 0.001 {
        // A few calls to a small model cost millionths: keep them visible.
        format!("{dollars:.1e}")
    } else if dollars < 1.0 {
        format!("{dollars:.4}")
    } else if dollars < 1000.0 {
        format!("{dollars:.2}")
    } else {
        format!("{:.0}k", dollars / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(requests: u64) -> Sample {
        Sample::new(json!({"routes": [{
            "name": "route1",
            "algorithm": "round-robin",
            "paths": ["/bedrock-route"],
            "failovers": 3,
            "targets": [{
                "index": 0,
                "target": "bedrock/us.meta.llama3-3-70b-instruct-v1:0",
                "weight": 100,
                "health": "unhealthy",
                "back_in_ms": 12_345.0,
                "in_flight": 2,
                "requests": requests,
                "failures": 1_234_567,
                "failures_by_kind": {"rate_limited": 7},
                "latency_ms": {"e2e": 123_456.7, "tpot": 4.25},
                "ttft_ms": 987.6,
                "tokens": {"prompt": 1, "completion": 2, "total": 123_456_789},
                "cost": 123_456.0,
            }]
        }]}))
    }

    #[test]
    fn every_line_fits_even_with_the_widest_figures() {
        let frame = render(
            "http://127.0.0.1:8100",
            &sample(10),
            Some(&sample(0)),
            Some(&"x".repeat(200)),
        );
        for l in frame.lines() {
            assert!(
                l.chars().count() <= WIDTH,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        assert!(frame.contains("route route1 (round-robin)"), "{frame}");
        assert!(frame.contains("dn 13s"), "{frame}");
        assert!(frame.contains("us.meta.llama3-3-7…"), "{frame}");
        assert!(frame.contains("rate_limited 7"), "{frame}");
        assert!(frame.contains("failovers 3"), "{frame}");
    }

    #[test]
    fn missing_fields_show_as_dashes() {
        let body =
            json!({"routes": [{"name": "r", "targets": [{"index": 0, "target": "bedrock/m"}]}]});
        let frame = render("http://x", &Sample::new(body), None, None);
        let row = frame
            .lines()
            .find(|l| l.starts_with("bedrock/m"))
            .expect("a row");
        assert_eq!(
            row.split_whitespace().filter(|c| *c == "-").count(),
            9,
            "{row}"
        );
    }
}
