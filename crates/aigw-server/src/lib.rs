//! The aigw server: front ends (an HTTP/JSON facade in OpenAI's chat format and the gRPC
//! `aigw.v1.ChatService`, on one port) that only decode and encode, one admission path
//! they all share, and the per-route tower stacks behind it, so one request gets the same
//! answer whichever way it came in. `stack.rs` shows the whole pipeline in order.
//!
//! Around that path: the per-connection front door (`front_door.rs`: Host checks, the peer
//! address, the body read timeout), the Kong plugins admission enforces (`auth.rs`,
//! `plugins.rs`, `jwt.rs`, and `ratelimit/` for ai-rate-limiting-advanced, local or in
//! Redis), and the status listener, a port of its own for `/metrics`,
//! `/status/*` and the status page (`status.rs`, `status_page/`).
#![forbid(unsafe_code)]

mod accepted;
mod admission;
mod auth;
mod count;
mod drivers;
mod embed;
mod error;
mod front_door;
mod frontend;
mod jwt;
mod limit;
mod local_streams;
mod overview;
mod plugins;
mod prompt;
mod ratelimit;
mod recent;
mod reload;
mod repoll;
mod router;
mod routes;
mod semantic;
mod serve;
mod side_call;
mod sigv4;
mod stack;
mod status;
mod status_page;

pub use auth::KeyAuth;
pub use error::{ApiError, grpc_status};
pub use limit::{DEFAULT_MAX_CONCURRENT_REQUESTS, RouteLimits};
pub use overview::{RouteOverview, TargetOverview};
pub use plugins::RoutePlugins;
pub use prompt::PromptPlugins;
pub use ratelimit::{AiRateLimiter, redis_errors_total};
pub use reload::{ReloadError, SharedRoutes};
pub use routes::{Route, RouteTable};
pub use serve::{Gateway, GatewayHandle, ServeOptions};
pub use stack::{BuildOptions, build_routes};
