use std::sync::Arc;
use std::task::{Context, Poll};

use aigw_core::{BoxDriver, ChatReply, DriverFuture, Error};
use tower::{Service, ServiceExt};

use crate::Attempt;

/// What the balancer knows of a target besides its driver.
#[derive(Debug, Clone, Default)]
pub struct TargetInfo {
    /// `provider/model`, for error messages and logs.
    pub label: String,
    /// Kong's `weight`.
    pub weight: u32,
    /// `model.options.input_cost`, per million prompt tokens (0 when unset).
    pub input_cost: f64,
    /// `model.options.output_cost`, per million completion tokens (0 when unset).
    pub output_cost: f64,
}

impl TargetInfo {
    /// A target with this label and weight and no prices.
    pub fn new(label: impl Into<String>, weight: u32) -> Self {
        TargetInfo {
            label: label.into(),
            weight,
            ..TargetInfo::default()
        }
    }
}

/// The bottom of a route's stack: sends an [`Attempt`] to its target's driver.
#[derive(Clone)]
pub struct Dispatch {
    drivers: Arc<[BoxDriver]>,
}

impl Dispatch {
    /// Dispatches over these drivers; an attempt's `target` indexes into them.
    pub fn new(drivers: Vec<BoxDriver>) -> Self {
        Dispatch {
            drivers: drivers.into(),
        }
    }
}

impl Service<Attempt> for Dispatch {
    type Response = ChatReply;
    type Error = Error;
    type Future = DriverFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Readiness is per target and checked on the chosen one in `call`, so one busy
        // target never holds back requests bound for another.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        match self.drivers.get(attempt.target) {
            Some(driver) => Box::pin(driver.clone().oneshot(attempt.request)),
            None => {
                let message = format!("no target with index {}", attempt.target);
                Box::pin(async move { Err(Error::new(aigw_core::ErrorKind::Internal, message)) })
            }
        }
    }
}
