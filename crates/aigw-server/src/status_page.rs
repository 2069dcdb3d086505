//! The status page: one HTML page, its script and its style sheet, embedded in the binary
//! and served by the status listener only. The page polls `/status/targets` (and
//! `/status/overview` when the gateway has it) and keeps its charts' history itself, so the
//! gateway stores nothing for it and an operator needs nothing but a browser, even offline.

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::HeaderValue;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};

/// Where the page is served.
const PAGE_PATH: &str = "/";

/// Where the page's script is served.
const SCRIPT_PATH: &str = "/status/page.js";

/// Where the page's style sheet is served.
const STYLE_PATH: &str = "/status/page.css";

/// Same-origin only, no inline script or style, no plugins, no framing: the page shows
/// route names and error messages, so nothing else may run in it or embed it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

const HTML: &str = include_str!("status_page/index.html");
const SCRIPT: &str = include_str!("status_page/page.js");
const STYLE: &str = include_str!("status_page/page.css");

/// The page and its two assets, for the status listener's router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            PAGE_PATH,
            get(|| async { asset("text/html; charset=utf-8", HTML) }),
        )
        .route(
            SCRIPT_PATH,
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            STYLE_PATH,
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

/// One embedded file with the headers that keep it inert outside this origin.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            // The files change only with the binary; revalidating keeps an upgraded
            // gateway from serving a stale script against a newer JSON shape.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
