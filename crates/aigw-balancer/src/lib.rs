//! Target selection for aigw, as tower layers: a [`BalanceLayer`] picks a target for each
//! request with a [`Pick`] strategy and fails over to others per a [`FailoverPolicy`];
//! an [`AttemptTimeoutLayer`] bounds each attempt; [`Targets`] dispatches an [`Attempt`] to
//! the chosen target's driver.
//!
//! The balancer knows neither wire formats nor providers: it sees core chat types only.
#![forbid(unsafe_code)]

mod attempt;
mod balance;
mod failover;
pub mod pick;
mod targets;
mod timeout;

pub use attempt::{Attempt, Tried};
pub use balance::{Balance, BalanceLayer};
pub use failover::{FailoverPolicy, Outcome};
pub use pick::Pick;
pub use targets::{TargetInfo, Targets};
pub use timeout::{AttemptTimeout, AttemptTimeoutLayer};
