//! The live route table, swapped whole on reload.
//!
//! A request loads the table once and keeps its `Arc<Route>` to the end, so a reload never
//! changes or drops a request in flight; the old table (and its SDK clients) goes away when
//! its last request finishes.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use aigw_balancer::RouteState;
use aigw_telemetry::{LiveTargets, PublishedRoutes, RouteGauges};
use arc_swap::ArcSwap;

use crate::recent::RecentErrors;
use crate::{BuildOptions, RouteTable, build_routes};

/// The route table both front ends read; cheap to clone, one atomic load per request.
#[derive(Clone)]
pub struct SharedRoutes(Arc<Live>);

struct Live {
    table: ArcSwap<RouteTable>,
    /// The table in force's target gauges at `/metrics`; removed when the last clone goes.
    gauges: PublishedRoutes,
    /// Keeps two replacements from crossing, so the gauges shown are the table in force's.
    replacing: Mutex<()>,
    /// The last errors answered to clients; kept across reloads.
    recent_errors: RecentErrors,
    /// When the gateway was built, in Unix milliseconds.
    started_at_ms: u64,
}

impl SharedRoutes {
    /// A live table starting with `table`.
    pub fn new(table: RouteTable) -> Self {
        let gauges = aigw_telemetry::metrics().published_routes();
        gauges.publish(route_gauges(&table));
        SharedRoutes(Arc::new(Live {
            table: ArcSwap::from_pointee(table),
            gauges,
            replacing: Mutex::new(()),
            recent_errors: RecentErrors::default(),
            started_at_ms: crate::recent::unix_ms(),
        }))
    }

    /// The last errors answered to clients.
    pub(crate) fn recent_errors(&self) -> &RecentErrors {
        &self.0.recent_errors
    }

    /// When the gateway was built, in Unix milliseconds.
    pub(crate) fn started_at_ms(&self) -> u64 {
        self.0.started_at_ms
    }

    /// The table in force now.
    pub fn load(&self) -> Arc<RouteTable> {
        self.0.table.load_full()
    }

    /// Puts `table` in force for every request from now on, and its routes' target gauges
    /// in place of the old table's at `/metrics`.
    pub fn replace(&self, table: RouteTable) {
        let _one_at_a_time = self
            .0
            .replacing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let gauges = route_gauges(&table);
        self.0.table.store(Arc::new(table));
        self.0.gauges.publish(gauges);
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

/// What `/metrics` reads of each route's balancer state at scrape time.
fn route_gauges(table: &RouteTable) -> Vec<RouteGauges> {
    table
        .routes()
        .iter()
        .map(|route| {
            let state = &route.balancer;
            let labels = (0..state.len())
                .map(|i| state.info(i).map_or_else(String::new, |t| t.label.clone()));
            RouteGauges::new(&route.name, labels, Arc::new(Gauged(state.clone())))
        })
        .collect()
}

/// A route's balancer state as telemetry reads it.
struct Gauged(Arc<RouteState>);

impl LiveTargets for Gauged {
    fn healthy(&self, index: usize) -> bool {
        self.0.is_healthy(index, self.0.now_ms())
    }

    fn in_flight(&self, index: usize) -> u64 {
        u64::from(self.0.in_flight(index))
    }
}
