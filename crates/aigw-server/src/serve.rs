//! One listener for HTTP/1.1, h2c and gRPC: axum serves the OpenAI facade and, merged into
//! the same router, tonic's ChatService, reflection and health.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use aigw_proto::v1::chat_service_server::ChatServiceServer;
use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::RouteTable;
use crate::grpc::GrpcChat;
use crate::{openai, status};

/// The gateway's front ends over a route table.
pub struct Gateway {
    table: Arc<RouteTable>,
}

impl Gateway {
    /// Front ends over these routes.
    pub fn new(table: RouteTable) -> Self {
        Gateway {
            table: Arc::new(table),
        }
    }

    /// The whole app as one router: gRPC services, `/health`, and every route path.
    pub async fn router(&self) -> io::Result<Router> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<ChatServiceServer<GrpcChat>>().await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(aigw_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        // grpcurl releases still in wide use speak only reflection v1alpha.
        let reflection_v1 = reflection().build_v1().map_err(io::Error::other)?;
        let reflection_v1alpha = reflection().build_v1alpha().map_err(io::Error::other)?;
        let http = Router::new()
            .route("/health", get(openai::health))
            .route(status::TARGETS_PATH, get(status::targets))
            .route("/metrics", get(metrics))
            // Route paths come from the config and may hold characters axum's path syntax
            // treats specially, so they are matched by exact lookup in the fallback.
            .fallback(openai::route_path)
            .with_state(self.table.clone());
        Ok(tonic::service::Routes::from(http)
            .add_service(ChatServiceServer::new(GrpcChat {
                table: self.table.clone(),
            }))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .into_axum_router()
            // Outermost, so the server span covers HTTP and gRPC alike.
            .layer(aigw_telemetry::ServerSpanLayer))
    }

    /// Serves on `listener` until `shutdown` resolves, then drains open connections.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let router = self.router().await?;
        axum::serve(without_nagle(listener), router)
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Binds `addr` and serves in a background task; for tests, benchmarks and the demo.
    pub async fn spawn(self, addr: SocketAddr) -> io::Result<GatewayHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let router = self.router().await?;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(without_nagle(listener), router).await {
                tracing::error!(%error, "gateway server stopped");
            }
        });
        Ok(GatewayHandle { addr, task })
    }
}

/// Small HTTP/2 frames (gRPC messages, stream chunks) would otherwise wait for Nagle's
/// algorithm and the peer's delayed ACK: tens of milliseconds per answer.
fn without_nagle(listener: TcpListener) -> impl axum::serve::Listener<Addr = SocketAddr> {
    listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    })
}

/// `GET /metrics`: the Prometheus (OpenMetrics text) exposition.
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            http::header::CONTENT_TYPE,
            aigw_telemetry::METRICS_CONTENT_TYPE,
        )],
        aigw_telemetry::metrics().encode(),
    )
}

/// A gateway serving in the background; stops when dropped.
pub struct GatewayHandle {
    addr: SocketAddr,
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
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
