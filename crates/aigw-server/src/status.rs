//! The operator's endpoints, on their own listener (Kong's status API convention): `GET
//! /health`, `GET /metrics`, `GET /status/targets` with each route's targets and their
//! live balancer state, so an operator can see why traffic goes where it goes, and `GET
//! /status/overview` with the build version, the start time, the last errors answered to
//! clients and the running configuration, redacted; `GET /` is a page showing them live
//! ([`crate::status_page`]). They name routes, models and token
//! counts, so they stay off the data port, where only `/health` answers, for load
//! balancers.

use std::time::Duration;

use aigw_balancer::TargetStatus;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use aigw_core::{Error, ErrorKind};

use crate::recent::RecentError;
use crate::{ApiError, SharedRoutes};

/// The health probe's path, on both listeners.
pub(crate) const HEALTH_PATH: &str = "/health";

/// Where the targets' status is served.
const TARGETS_PATH: &str = "/status/targets";

/// Where the version, recent errors and redacted configuration are served.
const OVERVIEW_PATH: &str = "/status/overview";

/// Where the Prometheus exposition is served.
const METRICS_PATH: &str = "/metrics";

/// The status listener's app: the operator's endpoints and nothing else.
pub(crate) fn router(routes: SharedRoutes) -> Router {
    Router::new()
        .route(HEALTH_PATH, get(health))
        .route(TARGETS_PATH, get(targets))
        .route(OVERVIEW_PATH, get(overview))
        .route(METRICS_PATH, get(metrics))
        .merge(crate::status_page::routes())
        .method_not_allowed_fallback(get_only)
        .fallback(not_here)
        .with_state(routes)
}

/// Any other path on the status listener: chat goes to the data port.
async fn not_here(uri: http::Uri) -> Response {
    ApiError(Error::new(
        ErrorKind::RouteNotFound,
        format!(
            "no endpoint {}; this is the status listener, serving GET {HEALTH_PATH}, {METRICS_PATH}, {TARGETS_PATH} and {OVERVIEW_PATH}",
            uri.path()
        ),
    ))
    .into_response()
}

/// A method other than GET on an operator endpoint, answered through the error table.
pub(crate) async fn get_only(method: http::Method) -> Response {
    let error = Error::new(
        ErrorKind::MethodNotAllowed,
        format!("method {method} is not allowed here; use GET"),
    );
    let mut response = ApiError(error).into_response();
    response
        .headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
    response
}

/// The health probe: 200 once the routes are loaded (they are before the port opens),
/// with their names.
async fn health(State(routes): State<SharedRoutes>) -> Response {
    let table = routes.load();
    axum::Json(json!({
        "status": "ok",
        "routes": table.routes().iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// The health probe on the data port, which anyone reaches: the route names only when no
/// route needs a key, as in the errors of an unknown route.
pub(crate) async fn public_health(State(routes): State<SharedRoutes>) -> Response {
    if routes.load().is_protected() {
        axum::Json(json!({ "status": "ok" })).into_response()
    } else {
        health(State(routes)).await
    }
}

/// Every route's targets: health, in flight, failures by kind, moving latency and time to
/// first token, token counts; and per route its algorithm and failovers.
async fn targets(State(routes): State<SharedRoutes>) -> Response {
    let table = routes.load();
    let routes: Vec<Value> = table
        .routes()
        .iter()
        .map(|route| {
            json!({
                "name": route.name,
                "paths": route.paths,
                "algorithm": route.overview.algorithm,
                "failovers": route.balancer.failovers(),
                "targets": route
                    .balancer
                    .snapshot()
                    .iter()
                    .enumerate()
                    .map(|(index, t)| target(index, t))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(json!({ "routes": routes })).into_response()
}

fn target(index: usize, t: &TargetStatus) -> Value {
    json!({
        "index": index,
        "target": t.label,
        "weight": t.weight,
        "health": if t.healthy { "healthy" } else { "unhealthy" },
        "back_in_ms": millis(t.out_for),
        "fails": t.fails,
        "in_flight": t.in_flight,
        "requests": t.requests,
        "failures": t.failures,
        "latency_ms": {
            "e2e": millis(t.latency_e2e),
            "tpot": millis(t.latency_tpot),
        },
        "tokens": {
            "prompt": t.usage.prompt_tokens,
            "completion": t.usage.completion_tokens,
            "total": t.usage.total_tokens,
        },
        "cost": t.cost,
        "failures_by_kind": t
            .failures_by_kind
            .iter()
            .map(|(kind, count)| (kind.as_str().to_owned(), Value::from(*count)))
            .collect::<serde_json::Map<_, _>>(),
        "ttft_ms": millis(t.ttft),
    })
}

/// The build, the start time, the last errors answered to clients (newest first) and
/// the running configuration, redacted: where credentials come from, never their values.
async fn overview(State(routes): State<SharedRoutes>) -> Response {
    let recent: Vec<Value> = routes
        .recent_errors()
        .newest_first()
        .iter()
        .map(recent_error)
        .collect();
    let table = routes.load();
    let config: Vec<Value> = table
        .routes()
        .iter()
        .map(|route| {
            let overview = &route.overview;
            json!({
                "name": route.name,
                "paths": route.paths,
                "algorithm": overview.algorithm,
                "plugins": overview.plugins,
                "targets": overview
                    .targets
                    .iter()
                    .map(|t| json!({
                        "label": t.label,
                        "weight": t.weight,
                        "credentials": t.credentials,
                    }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at_ms": routes.started_at_ms(),
        "recent_errors": recent,
        "config": { "routes": config },
    }))
    .into_response()
}

fn recent_error(e: &RecentError) -> Value {
    json!({
        "at_ms": e.at_ms,
        "route": e.route,
        "target": e.target,
        "status": e.status,
        "grpc_code": e.grpc_code,
        "code": e.code,
        "message": e.message,
        "mid_stream": e.mid_stream,
    })
}

fn millis(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
}

/// `GET /metrics`: the Prometheus (OpenMetrics text) exposition.
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            http::header::CONTENT_TYPE,
            aigw_telemetry::METRICS_CONTENT_TYPE,
        )],
        aigw_telemetry::metrics().encode(),
    )
}
