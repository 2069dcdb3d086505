//! Target selection for aigw, as tower layers over a route's targets:
//!
//! - [`FailoverLayer`] retries a failed attempt on another target per a
//!   [`FailoverPolicy`] (Kong's `retries` and `failover_criteria`);
//! - [`PickLayer`] picks the target for each attempt with a [`Pick`] strategy (one per
//!   Kong algorithm, in [`pick`]);
//! - [`RecordLayer`] records each attempt into the route's state: in flight, its outcome
//!   for Kong's passive health check, and an answer's latency and token usage;
//! - [`AttemptTimeoutLayer`] bounds each attempt;
//! - [`Dispatch`] dispatches an [`Attempt`] to the chosen target's driver.
//!
//! The layers share one [`RouteState`] per route, all atomics: recording an outcome and
//! picking a target never take a lock. The balancer knows neither wire formats nor
//! providers: it sees core chat types only.
#![forbid(unsafe_code)]

mod dispatch;
mod failover;
pub mod pick;
mod pick_layer;
mod policy;
mod record;
mod state;
mod timeout;
mod tried;

/// Re-exported from core, where telemetry can observe it without depending on the balancer.
pub use aigw_core::Attempt;
pub use dispatch::{Dispatch, TargetInfo};
pub use failover::{Failover, FailoverLayer};
pub use pick::Pick;
pub use pick_layer::{AttemptFailed, PickLayer, PickTarget, Routed};
pub use policy::{FailoverPolicy, Outcome};
pub use record::{Record, RecordLayer};
pub use state::{HealthPolicy, RouteState, TargetStatus};
pub use timeout::{AttemptTimeout, AttemptTimeoutLayer};
pub use tried::Tried;
