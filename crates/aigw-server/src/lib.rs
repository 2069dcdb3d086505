//! The front ends of aigw: an HTTP/JSON facade in OpenAI's chat format and the gRPC
//! `aigw.v1.ChatService` (with reflection and health), served on one port over the same
//! per-route tower stacks, so one request gets the same answer either way.
#![forbid(unsafe_code)]

mod accepted;
mod admission;
mod auth;
mod drivers;
mod error;
mod frontend;
mod limit;
mod local_streams;
mod reload;
mod repoll;
mod routes;
mod serve;
mod stack;
mod status;

pub use auth::KeyAuth;
pub use error::{ApiError, grpc_status};
pub use limit::{DEFAULT_MAX_CONCURRENT_REQUESTS, RouteLimits};
pub use reload::{ReloadError, SharedRoutes};
pub use routes::{Route, RouteTable};
pub use serve::{Gateway, GatewayHandle, ServeOptions};
pub use stack::{BuildOptions, build_routes};
