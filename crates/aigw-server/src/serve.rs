//! One listener for HTTP/1.1, h2c and gRPC, serving the app `stack.rs` builds (both front
//! ends in one router), and a second one, the status listener, for the operator's endpoints
//! (`status.rs`).
//!
//! Connections are served with hyper-util's auto builder rather than `axum::serve`, for
//! two things it lacks: an HTTP/1 header-read timeout (a slowloris client otherwise holds a
//! connection forever) and a bound on how long shutdown waits for in-flight requests.
//! Every request then passes the connection's [`FrontDoor`] (body read timeout, HTTP-level
//! refusals, the peer's address as axum's `ConnectInfo<SocketAddr>` and tonic's
//! `TcpConnectInfo`) on its way to the app.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use futures_util::FutureExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use crate::accepted::{FirstByte, silent_for};
use crate::front_door::FrontDoor;
use crate::local_streams::{StreamExecutor, drive, local_streams};
use crate::repoll::repoll_on_self_wake;
use crate::{RouteTable, SharedRoutes};

/// How connections are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// How long an HTTP/1 client may take to send a request's headers (default 10 s).
    pub header_read_timeout: Duration,
    /// How long a client may leave a request body waiting between two reads (nginx's
    /// `client_body_timeout`; default 60 s); past it the answer is 408 and an HTTP/1
    /// connection is closed.
    pub client_body_timeout: Duration,
    /// The largest request head in bytes (HTTP/1 request line and headers, HTTP/2 header
    /// list); past it the answer is 431 (default 64 KiB; at least 8 KiB on HTTP/1).
    pub max_header_size: usize,
    /// After shutdown begins, how long in-flight requests and streams may take to finish
    /// before their connections are closed (default 30 s).
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            client_body_timeout: Duration::from_secs(60),
            max_header_size: 64 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// The gateway's front ends over a route table.
pub struct Gateway {
    routes: SharedRoutes,
    options: ServeOptions,
    status: Option<TcpListener>,
}

impl Gateway {
    /// Front ends over these routes.
    pub fn new(table: RouteTable) -> Self {
        Gateway {
            routes: SharedRoutes::new(table),
            options: ServeOptions::default(),
            status: None,
        }
    }

    /// Serves the operator's endpoints (`/health`, `/metrics`, `/status/targets`) on
    /// `listener`; without one, [`serve`](Self::serve) serves none of them but `/health`.
    pub fn with_status_listener(mut self, listener: TcpListener) -> Self {
        self.status = Some(listener);
        self
    }

    /// Serves with these timeouts instead of the defaults.
    pub fn with_options(mut self, options: ServeOptions) -> Self {
        self.options = options;
        self
    }

    /// The live route table, for reloading while serving.
    pub fn routes(&self) -> SharedRoutes {
        self.routes.clone()
    }

    /// The whole app as one router: see [`app`](crate::stack::app).
    pub async fn router(&self) -> io::Result<Router> {
        crate::stack::app(self.routes.clone()).await
    }

    /// The status listener's app: the operator's endpoints.
    pub fn status_router(&self) -> Router {
        crate::status::router(self.routes.clone())
    }

    /// Serves on `listener` (and the status listener, if given) until `shutdown` resolves,
    /// then stops accepting and lets in-flight requests and streams finish, for at most
    /// the drain timeout.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let router = self.router().await?;
        let status = self.status.take().map(|l| (l, self.status_router()));
        serve_both(listener, router, status, self.options, shutdown).await;
        Ok(())
    }

    /// Binds `addr` and serves in a background task; for tests, benchmarks and the demo.
    /// Without a status listener of its own, it binds one on `addr`'s IP, on a free port.
    pub async fn spawn(mut self, addr: SocketAddr) -> io::Result<GatewayHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let status = match self.status.take() {
            Some(status) => status,
            None => TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?,
        };
        let status_addr = status.local_addr()?;
        let routes = self.routes.clone();
        let router = self.router().await?;
        let status = Some((status, self.status_router()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_both(
            listener,
            router,
            status,
            self.options,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(GatewayHandle {
            addr,
            status_addr,
            routes,
            stop: Some(stop),
            task,
        })
    }
}

/// Serves the data listener and, when given, the status listener, both stopping (and
/// draining) when `shutdown` resolves.
async fn serve_both(
    listener: TcpListener,
    router: Router,
    status: Option<(TcpListener, Router)>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shutdown = shutdown.boxed().shared();
    let data = serve_connections(listener, router, options, shutdown.clone());
    match status {
        Some((listener, router)) => {
            // So that its accept and drain lines are told apart from the data port's.
            let status = serve_connections(listener, router, options, shutdown)
                .instrument(tracing::info_span!("status_listener"));
            tokio::join!(data, status);
        }
        None => data.await,
    }
}

async fn serve_connections(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    // Owning the connection tasks lets the drain timeout cut what is left: dropping the
    // set aborts them. Finished ones are reaped as we go, so the set stays small.
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_errors = AcceptErrors::default();
    loop {
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before accept: keep
                    // serving the connections we have, and try again shortly.
                    accept_errors.record(&error);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small HTTP/2 frames (gRPC messages, stream chunks) would otherwise wait for
        // Nagle's algorithm and the peer's delayed ACK: tens of milliseconds per answer.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(FrontDoor::new(
            router.clone(),
            peer,
            tcp.local_addr().ok(),
            options.client_body_timeout,
        ));
        let (tcp, heard) = FirstByte::new(tcp);
        let (executor, streams) = local_streams();
        let connection = connection_builder(executor, &options)
            .serve_connection(TokioIo::new(tcp), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let silent = silent_for(heard, options.header_read_timeout);
        let connection = async move {
            tokio::select! {
                result = connection => if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                },
                () = silent => tracing::debug!("client sent nothing in time; connection closed"),
            }
        };
        // The connection's task wakes itself once per request (see `repoll`), and its
        // first HTTP/2 streams run in it (see `local_streams`); polling it again in place
        // keeps a request on one worker thread.
        connections.spawn(repoll_on_self_wake(drive(connection, streams)));
    }
    // Closing the listener now makes new connections fail fast instead of waiting in the
    // backlog of a gateway that will never accept them.
    drop(listener);
    let open = graceful.count();
    tracing::info!(
        open_connections = open,
        "shutting down: draining in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("drained; all connections closed"),
        () = tokio::time::sleep(options.drain_timeout) => tracing::warn!(
            drain_timeout_ms = options.drain_timeout.as_millis(),
            "drain timeout reached; closing the remaining connections"
        ),
    }
    connections.shutdown().await;
}

/// How one connection is served; built per connection because its executor hands HTTP/2
/// streams to that connection's own task.
fn connection_builder(executor: StreamExecutor, options: &ServeOptions) -> Builder<StreamExecutor> {
    let mut builder = Builder::new(executor);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        // hyper answers 431 to a head that does not fit its read buffer, instead of
        // buffering up to its ~400 KB default; it refuses (panics on) less than 8 KiB.
        .max_buf_size(options.max_header_size.max(MIN_HTTP1_BUFFER));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_size).unwrap_or(u32::MAX));
    builder
}

/// hyper's smallest HTTP/1 read buffer.
const MIN_HTTP1_BUFFER: usize = 8 * 1024;

/// Failed accepts, logged at most once a second: under fd exhaustion every accept fails,
/// and a line per failure would flood the log while saying nothing new.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    const LOG_EVERY: Duration = Duration::from_secs(1);

    fn record(&mut self, error: &io::Error) {
        aigw_telemetry::metrics().count_accept_error();
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|last| now.duration_since(last) < Self::LOG_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(
            %error,
            also_failed_since_last_line = self.unlogged,
            "accepting a connection failed; serving the open ones and retrying (out of file descriptors? see the fd limit)"
        );
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}

/// A gateway serving in the background; stops when dropped.
pub struct GatewayHandle {
    addr: SocketAddr,
    status_addr: SocketAddr,
    routes: SharedRoutes,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl GatewayHandle {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the status listener (`/metrics`, `/status/targets`, `/health`) listens.
    pub fn status_addr(&self) -> SocketAddr {
        self.status_addr
    }

    /// `http://STATUS_ADDR`, for scraping the operator's endpoints.
    pub fn status_url(&self) -> String {
        format!("http://{}", self.status_addr)
    }

    /// The live route table, for reloading.
    pub fn routes(&self) -> SharedRoutes {
        self.routes.clone()
    }

    /// Stops accepting, waits for in-flight requests (up to the drain timeout), and returns
    /// when the server has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
