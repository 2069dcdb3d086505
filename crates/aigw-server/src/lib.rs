//! The front ends of aigw: an HTTP/JSON facade in OpenAI's chat format and the gRPC
//! `aigw.v1.ChatService` (with reflection and health), served on one port over the same
//! per-route tower stacks, so one request gets the same answer either way.
#![forbid(unsafe_code)]

mod drivers;
mod error;
mod grpc;
mod openai;
mod routes;
mod serve;
mod stack;
mod status;

pub use error::{ApiError, grpc_status};
pub use routes::{Route, RouteTable};
pub use serve::{Gateway, GatewayHandle};
pub use stack::{BuildOptions, build_routes, check_supported};
