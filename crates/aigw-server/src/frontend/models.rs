//! `GET /v1/models` and `GET /v1/models/{id}` in OpenAI's list format: one model per route
//! name, which is what a client passes as `model` to `/v1/chat/completions`. The caller's
//! credentials are checked as for chat: the list holds only the routes the caller may use.

use aigw_core::{Error, ErrorKind};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::admission::{Caller, peer_ip};
use crate::{ApiError, SharedRoutes};

/// OpenAI's path for the model list.
pub(crate) const MODELS_PATH: &str = "/v1/models";

fn entry(name: &str, created: u64) -> Value {
    json!({"id": name, "object": "model", "created": created, "owned_by": "aigw"})
}

fn caller_of(request: &Request) -> Caller<'_> {
    Caller {
        headers: request.headers(),
        query: request.uri().query(),
        peer: peer_ip(request.extensions()),
        path: Some(request.uri().path()),
        signed_by: None,
    }
}

/// The routes' names the caller may use, as OpenAI's model list.
pub(crate) async fn list(State(routes): State<SharedRoutes>, request: Request) -> Response {
    let caller = caller_of(&request);
    let table = routes.load();
    let created = routes.started_at_ms() / 1000;
    let mut refusal = None;
    let mut data = Vec::new();
    for route in table.routes() {
        let admitted = route
            .authorize(caller.headers, caller.query, None)
            .and_then(|key_consumer| route.plugins.admit(caller, key_consumer));
        match admitted {
            Ok(_consumer) => data.push(entry(&route.name, created)),
            Err(error) => {
                refusal.get_or_insert(error);
            }
        }
    }
    // A caller no route lets in learns why (a missing key), not that the list is empty.
    if let (true, Some(error)) = (data.is_empty(), refusal) {
        return ApiError(error).into_response();
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// One route as an OpenAI model, if the caller may use it.
pub(crate) async fn one(
    State(routes): State<SharedRoutes>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let caller = caller_of(&request);
    let table = routes.load();
    let Some(route) = table.routes().iter().find(|r| r.name == id) else {
        let error = Error::new(ErrorKind::RouteNotFound, format!("no model named {id:?}"));
        return ApiError(error).into_response();
    };
    let admitted = route
        .authorize(caller.headers, caller.query, None)
        .and_then(|key_consumer| route.plugins.admit(caller, key_consumer));
    match admitted {
        Ok(_consumer) => {
            axum::Json(entry(&route.name, routes.started_at_ms() / 1000)).into_response()
        }
        Err(error) => ApiError(error).into_response(),
    }
}
