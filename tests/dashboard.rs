//! The Grafana dashboard shipped in `deploy/grafana/aigw.json` queries only what a real
//! gateway exposes: every metric and every label its queries and template variables name
//! is in a `/metrics` scrape after ordinary traffic, so a renamed metric or label breaks
//! this test instead of silently emptying an operator's panel.

use std::collections::{BTreeMap, BTreeSet};

use aigw_emulator::{Fault, ModelKnobs};
use aigw_tests::{Stack, config_from, polish_writer_question, seed_yaml, workspace_file};
use serde_json::{Value, json};

const NOVA: &str = "us.amazon.nova-micro-v1:0";

/// Every PromQL text in the dashboard: panel queries and template variable queries.
fn queries(dashboard: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect(dashboard, &mut found);
    found
}

fn collect(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", Value::String(text)) => found.push(text.clone()),
                    _ => collect(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
        _ => {}
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// What one query asks of the exposition: metric name → labels it selects or groups by.
fn uses(query: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut metrics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut grouped = BTreeSet::new();
    let chars: Vec<char> = query.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !is_name_char(chars[i]) || (i > 0 && is_name_char(chars[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_name_char(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let rest: String = chars[i..].iter().collect();
        let rest = rest.trim_start();
        if word.starts_with("aigw_") {
            let labels = metrics.entry(word).or_default();
            if let Some(selector) = rest.strip_prefix('{') {
                labels.extend(selector_labels(selector));
            }
        } else if matches!(word.as_str(), "by" | "without") {
            let list = rest.strip_prefix('(').expect("by (...)");
            let list = &list[..list.find(')').expect("closed by (...)")];
            grouped.extend(list.split(',').map(|l| l.trim().to_owned()));
        } else if word == "label_values" {
            // label_values(metric{...}, label) or label_values(label)
            let args = rest.strip_prefix('(').expect("label_values(...)");
            let args = &args[..args.rfind(')').expect("closed label_values")];
            let label = args.rsplit(',').next().expect("a label").trim().to_owned();
            match args.split(['{', ',']).next().map(str::trim) {
                Some(metric) if metric.starts_with("aigw_") => {
                    metrics.entry(metric.to_owned()).or_default().insert(label);
                }
                _ => panic!("label_values without a metric: {query}"),
            }
        }
    }
    // An aggregation's labels must be on what it aggregates: every metric of the query.
    for labels in metrics.values_mut() {
        labels.extend(grouped.iter().cloned());
    }
    metrics
}

/// The label names of a selector's body (`a="x", b=~"y|z"}...`), quoted values skipped.
fn selector_labels(body: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut name = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '}' => break,
            '"' => {
                // Skip the value, escapes included.
                while let Some(v) = chars.next() {
                    match v {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '=' | '!' | '~' => {
                if !name.is_empty() {
                    labels.push(std::mem::take(&mut name));
                }
            }
            c if is_name_char(c) => name.push(c),
            _ => name.clear(),
        }
    }
    labels
}

/// The exposition's samples: metric name → every label name seen on it.
fn exposed(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = series.entry(line[..end].to_owned()).or_default();
        if line[end..].starts_with('{') {
            labels.extend(selector_labels(&line[end + 1..]));
        }
    }
    series
}

#[test]
fn the_parser_finds_metrics_labels_and_groupings() {
    let found = uses(
        r#"histogram_quantile(0.9, sum by (le, route) (rate(aigw_x_bucket{route=~"a|b", s!="}"}[5m]))) / sum(aigw_y_total)"#,
    );
    let names = |m: &str| found[m].iter().cloned().collect::<Vec<_>>();
    assert_eq!(names("aigw_x_bucket"), ["le", "route", "s"]);
    assert_eq!(names("aigw_y_total"), ["le", "route"]);
    let found = uses(r#"label_values(aigw_z{route=~"$route"}, target)"#);
    assert_eq!(
        found["aigw_z"].iter().collect::<Vec<_>>(),
        ["route", "target"]
    );
}

#[tokio::test]
async fn every_metric_and_label_the_dashboard_queries_is_exposed() {
    let text = std::fs::read_to_string(workspace_file("deploy/grafana/aigw.json"))
        .expect("the dashboard is shipped");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let queries = queries(&dashboard);
    assert!(queries.len() >= 10, "queries found: {queries:?}");
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for query in &queries {
        for (metric, labels) in uses(query) {
            wanted.entry(metric).or_default().extend(labels);
        }
    }

    // Failing over on a 500 makes a failed attempt and a failover; streams make TTFT.
    let stack = Stack::start(&config_from(&seed_yaml().replace(
        "algorithm: round-robin",
        "algorithm: round-robin\n          failover_criteria: [error, timeout, http_500, non_idempotent]",
    )))
    .await;
    stack.emulator.knobs().set_model(
        NOVA,
        ModelKnobs::with_fault(Fault::internal_error(), Some(1)),
    );
    let client = reqwest::Client::new();
    let url = stack.url("/bedrock-route");
    for stream in [false, false, true, true] {
        let mut body = polish_writer_question();
        body["stream"] = json!(stream);
        let response = client.post(&url).json(&body).send().await.expect("answers");
        assert_eq!(response.status(), 200);
        response.text().await.expect("the whole answer");
    }
    let scrape = reqwest::get(stack.status_url("/metrics"))
        .await
        .expect("the status listener answers")
        .text()
        .await
        .expect("text");
    let exposed = exposed(&scrape);

    let mut missing = Vec::new();
    for (metric, labels) in &wanted {
        match exposed.get(metric) {
            None => missing.push(format!("metric {metric}")),
            Some(have) => missing.extend(
                labels
                    .difference(have)
                    .map(|label| format!("label {label} on {metric}")),
            ),
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries what /metrics lacks: {missing:?}\n{scrape}"
    );
    // Each family the gateway exports is on the dashboard: a new one gets a panel.
    for family in scrape.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().expect("a name");
        assert!(
            wanted.keys().any(|w| w.starts_with(name)),
            "{name} is exported but on no panel"
        );
    }
}
