//! Target selection for aigw, as tower layers over a route's targets:
//!
//! - [`FailoverLayer`] retries a failed attempt on another target per a
//!   [`FailoverPolicy`] (Kong's `retries` and `failover_criteria`);
//! - [`PickLayer`] picks the target for each attempt with a [`Pick`] strategy (one per
//!   Kong algorithm, in [`pick`]);
//! - [`HealthLayer`] records each attempt's outcome for Kong's passive health check;
//! - [`StatsLayer`] keeps in-flight counts, moving latency and token usage;
//! - [`AttemptTimeoutLayer`] bounds each attempt;
//! - [`Targets`] dispatches an [`Attempt`] to the chosen target's driver.
//!
//! The layers share one [`RouteState`] per route, all atomics: recording an outcome and
//! picking a target never take a lock. The balancer knows neither wire formats nor
//! providers: it sees core chat types only.
#![forbid(unsafe_code)]

mod attempt;
mod failover;
mod health;
pub mod pick;
mod pick_layer;
mod retry;
mod state;
mod stats;
mod targets;
mod timeout;

pub use attempt::{Attempt, Tried};
pub use failover::{FailoverPolicy, Outcome};
pub use health::{Health, HealthLayer};
pub use pick::Pick;
pub use pick_layer::{AttemptFailed, PickLayer, PickTarget, Routed};
pub use retry::{Failover, FailoverLayer};
pub use state::{HealthPolicy, RouteState, TargetStatus};
pub use stats::{Stats, StatsLayer};
pub use targets::{TargetInfo, Targets};
pub use timeout::{AttemptTimeout, AttemptTimeoutLayer};
