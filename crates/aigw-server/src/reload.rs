//! The live route table, swapped whole on reload.
//!
//! A request loads the table once and keeps its `Arc<Route>` to the end, so a reload never
//! changes or drops a request in flight; the old table (and its SDK clients) goes away when
//! its last request finishes.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::{BuildOptions, RouteTable, build_routes};

/// The route table both front ends read; cheap to clone, one atomic load per request.
#[derive(Clone)]
pub struct SharedRoutes(Arc<ArcSwap<RouteTable>>);

impl SharedRoutes {
    /// A live table starting with `table`.
    pub fn new(table: RouteTable) -> Self {
        SharedRoutes(Arc::new(ArcSwap::from_pointee(table)))
    }

    /// The table in force now.
    pub fn load(&self) -> Arc<RouteTable> {
        self.0.load_full()
    }

    /// Puts `table` in force for every request from now on.
    pub fn replace(&self, table: RouteTable) {
        self.0.store(Arc::new(table));
    }

    /// Re-reads the decK file at `path` and, only if it is valid and every route builds,
    /// puts it in force; otherwise the old table keeps serving. Returns the route count.
    pub async fn reload_from(
        &self,
        path: &Path,
        options: &BuildOptions,
    ) -> Result<usize, ReloadError> {
        let config = aigw_config::load_deck(path).map_err(ReloadError::Config)?;
        let table = build_routes(&config, options)
            .await
            .map_err(ReloadError::Build)?;
        let count = table.routes().len();
        self.replace(table);
        Ok(count)
    }
}

/// Why a reload was refused (the old routes keep serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is unreadable or invalid.
    #[error(transparent)]
    Config(aigw_config::ConfigError),
    /// A route could not be built (e.g. an unsupported algorithm or provider).
    #[error("{0}")]
    Build(aigw_core::Error),
}
