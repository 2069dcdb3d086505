//! What every request on an accepted connection passes before the router: refusals of
//! requests HTTP itself says are malformed, the request body's read timeout, the caller's
//! address, and `Connection: close` after an HTTP/1 answer that left its request body
//! unread.
//!
//! These are properties of the connection and the protocol, not of a route, so they sit
//! outside the app's router (and its telemetry): one [`FrontDoor`] per connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use aigw_core::{Error, ErrorKind};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Request, Version, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tonic::transport::server::TcpConnectInfo;
use tower::Service;

use crate::ApiError;

/// The gRPC services the app serves: a call to one of them that is not labelled as gRPC
/// cannot be one, and would otherwise get tonic's HTTP 200 with an INTERNAL status.
const GRPC_SERVICES: [&str; 4] = [
    "aigw.v1.ChatService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The service hyper calls for each request on one connection, in front of the app.
#[derive(Clone)]
pub(crate) struct FrontDoor<S> {
    inner: S,
    connection: TcpConnectInfo,
    body_timeout: Duration,
}

impl<S> FrontDoor<S> {
    /// `inner` behind the front door of a connection from `peer` to `local`; a request
    /// body that sends nothing for `body_timeout` while it is read fails with
    /// [`BodyTimeout`].
    pub(crate) fn new(
        inner: S,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        body_timeout: Duration,
    ) -> Self {
        FrontDoor {
            inner,
            connection: TcpConnectInfo {
                local_addr: local,
                remote_addr: Some(peer),
            },
            body_timeout,
        }
    }
}

impl<S, B> Service<Request<B>> for FrontDoor<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = DoorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(error) = refusal(&request) {
            let mut response = ApiError(error).into_response();
            // The body was not read, so the connection cannot carry another request.
            close_http1(request.version(), &mut response);
            return DoorFuture::Refused {
                response: Some(response),
            };
        }
        let version = request.version();
        // Only an HTTP/1 connection is left out of step by an unread body, and only a
        // body that has bytes to come needs watching.
        let finished = (is_http1(version) && !request.body().is_end_stream())
            .then(|| Arc::new(AtomicBool::new(false)));
        let (mut parts, body) = request.into_parts();
        // The caller's address, where axum extractors and tonic's `Request::remote_addr`
        // look for it.
        if let Some(peer) = self.connection.remote_addr {
            parts.extensions.insert(ConnectInfo(peer));
        }
        parts.extensions.insert(self.connection.clone());
        let body = Body::new(ReadBody {
            body,
            idle: None,
            timeout: self.body_timeout,
            finished: finished.clone(),
        });
        DoorFuture::Answering {
            future: self.inner.call(Request::from_parts(parts, body)),
            finished,
            version,
        }
    }
}

/// What HTTP refuses before any route looks at the request.
fn refusal<B>(request: &Request<B>) -> Option<Error> {
    if request.version() == Version::HTTP_11 {
        // RFC 9112 §3.2: a server must answer 400 to a request with no Host or more than one.
        let hosts = request.headers().get_all(header::HOST).iter().count();
        if hosts != 1 {
            return Some(Error::invalid_request(format!(
                "an HTTP/1.1 request must carry exactly one Host header; this one has {hosts}"
            )));
        }
    }
    let service = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next();
    let grpc_path = service.is_some_and(|s| GRPC_SERVICES.contains(&s));
    let grpc_body = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc_path && !grpc_body {
        return Some(Error::new(
            ErrorKind::UnsupportedMediaType,
            format!(
                "{} is a gRPC method; call it with Content-Type application/grpc",
                request.uri().path()
            ),
        ));
    }
    None
}

fn is_http1(version: Version) -> bool {
    version == Version::HTTP_11 || version == Version::HTTP_10
}

/// Asks hyper to close an HTTP/1 connection after `response`: the client's next request
/// would start somewhere in the unread rest of this one's body. HTTP/2 streams end on
/// their own, and HTTP/2 forbids the header.
fn close_http1(version: Version, response: &mut Response) {
    if is_http1(version) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

pin_project! {
    /// The answer of a [`FrontDoor`] call.
    #[project = DoorProjection]
    pub(crate) enum DoorFuture<F> {
        /// Refused before the app saw it.
        Refused { response: Option<Response> },
        /// The app's answer, to be told whether the request body was read to its end.
        Answering {
            #[pin]
            future: F,
            finished: Option<Arc<AtomicBool>>,
            version: Version,
        },
    }
}

impl<F> Future for DoorFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DoorProjection::Refused { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
            DoorProjection::Answering {
                future,
                finished,
                version,
            } => {
                let Ok(mut response) = std::task::ready!(future.poll(cx));
                let unread = finished
                    .as_ref()
                    .is_some_and(|f| !f.load(Ordering::Acquire));
                if unread {
                    close_http1(*version, &mut response);
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}

/// The error of a request body whose client sent nothing for the body read timeout.
#[derive(Debug)]
pub(crate) struct BodyTimeout(Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the client sent no request body bytes for {} ms (client_body_timeout_ms)",
            self.0.as_millis()
        )
    }
}

impl std::error::Error for BodyTimeout {}

pin_project! {
    /// A request body with nginx's `client_body_timeout`: the time allowed between two
    /// successive reads, not for the whole body, so a large body on a slow link is fine and
    /// a client that stops sending is not. Records when it has been read to its end.
    struct ReadBody<B> {
        #[pin]
        body: B,
        // Armed while a read waits for the client; disarmed by every frame.
        #[pin]
        idle: Option<Sleep>,
        timeout: Duration,
        finished: Option<Arc<AtomicBool>>,
    }
}

impl<B> HttpBody for ReadBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.as_mut().poll_frame(cx) {
            this.idle.set(None);
            let ended = match &frame {
                None => true,
                Some(Ok(_)) => this.body.is_end_stream(),
                Some(Err(_)) => false,
            };
            if let (true, Some(finished)) = (ended, this.finished) {
                finished.store(true, Ordering::Release);
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.idle.is_none() {
            this.idle.set(Some(tokio::time::sleep(*this.timeout)));
        }
        let timed_out = this
            .idle
            .as_pin_mut()
            .is_some_and(|idle| idle.poll(cx).is_ready());
        if timed_out {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(*this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;

    fn request(version: Version, hosts: &[&'static str]) -> Request<()> {
        let mut request = Request::builder()
            .version(version)
            .uri("/r")
            .body(())
            .expect("request");
        for host in hosts {
            request
                .headers_mut()
                .append(header::HOST, HeaderValue::from_static(host));
        }
        request
    }

    #[test]
    fn http_1_1_needs_exactly_one_host() {
        assert!(refusal(&request(Version::HTTP_11, &["a"])).is_none());
        for hosts in [&[][..], &["a", "b"][..]] {
            let error = refusal(&request(Version::HTTP_11, hosts)).expect("refused");
            assert_eq!(error.kind(), ErrorKind::InvalidRequest);
        }
        assert!(refusal(&request(Version::HTTP_10, &[])).is_none());
        assert!(refusal(&request(Version::HTTP_2, &[])).is_none());
    }

    /// The app behind the door: reads the body only when asked to, and answers with the
    /// peer address it was given.
    async fn app(request: Request<Body>) -> Result<Response, Infallible> {
        let read = request.headers().contains_key("x-read");
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        let remote = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        assert_eq!(remote.map(|r| r.to_string()), Some(peer.clone()));
        if read {
            let _ = request.into_body().collect().await;
        }
        Ok(Response::new(Body::from(peer)))
    }

    async fn through_the_door(read: bool) -> Response {
        let peer = SocketAddr::from(([192, 0, 2, 7], 40000));
        let mut door = FrontDoor::new(tower::service_fn(app), peer, None, Duration::from_secs(60));
        let mut request = Request::builder()
            .uri("/r")
            .header(header::HOST, "aigw")
            .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
            .expect("request");
        if read {
            request
                .headers_mut()
                .insert("x-read", HeaderValue::from_static("1"));
        }
        let Ok(response) = door.call(request).await;
        response
    }

    #[tokio::test]
    async fn an_answer_that_left_its_body_unread_closes_the_http1_connection() {
        let unread = through_the_door(false).await;
        assert_eq!(unread.headers()[header::CONNECTION], "close");
        let read = through_the_door(true).await;
        assert!(!read.headers().contains_key(header::CONNECTION));
        let peer = read.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(
            &peer[..],
            b"192.0.2.7:40000",
            "the app sees the caller's address"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_runs_between_reads_not_over_the_whole_body() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        let body = tokio_stream::wrappers::ReceiverStream::new(receiver);
        let finished = Arc::new(AtomicBool::new(false));
        let mut body = std::pin::pin!(ReadBody {
            body: http_body_util::StreamBody::new(body),
            idle: None,
            timeout: Duration::from_secs(60),
            finished: Some(finished.clone()),
        });
        let feeding = tokio::spawn(async move {
            // Five frames, 50 s apart: 200 s in all, never 60 s without a byte.
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(50)).await;
                let _ = sender.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
            }
            // Then silence.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        for _ in 0..5 {
            let frame = body.frame().await.expect("a frame").expect("not timed out");
            assert!(frame.is_data());
        }
        let error = body
            .frame()
            .await
            .expect("an error")
            .expect_err("timed out");
        assert!(error.downcast_ref::<BodyTimeout>().is_some(), "{error}");
        assert!(!finished.load(Ordering::Acquire));
        feeding.abort();
    }
}
