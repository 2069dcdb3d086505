//! The driver contract: a driver is a cloneable `tower::Service<ChatRequest>` per target.

use std::future::Future;
use std::pin::Pin;

use tower::util::BoxCloneSyncService;

use crate::{ChatReply, ChatRequest, Error};

/// A type-erased driver for one target, as the balancer holds it.
pub type BoxDriver = BoxCloneSyncService<ChatRequest, ChatReply, Error>;

/// The future a driver returns, boxed at the crate boundary.
pub type DriverFuture = Pin<Box<dyn Future<Output = Result<ChatReply, Error>> + Send>>;
