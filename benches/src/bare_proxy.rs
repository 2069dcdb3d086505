//! A reverse proxy with nothing in it but the stack aigw is built on: tokio's multi-thread
//! runtime, hyper's HTTP/1 server and hyper's pooled client. No JSON, no routing, no
//! balancer, no telemetry, no SDK. The benchmark puts it between the SDK and the emulator,
//! as it does nginx, to measure what one hop through this stack costs on the machine: the
//! floor under any gateway written with it, aigw's share being what it adds above.
//!
//! Usage: `aigw-bare-proxy LISTEN_ADDR UPSTREAM_URL`.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: aigw-bare-proxy LISTEN_ADDR UPSTREAM_URL";
    let listen: SocketAddr = args.next().context(usage)?.parse().context("LISTEN_ADDR")?;
    let upstream: Uri = args
        .next()
        .context(usage)?
        .parse()
        .context("UPSTREAM_URL")?;
    let authority = upstream
        .authority()
        .context("UPSTREAM_URL has no host")?
        .clone();

    // TCP_NODELAY on both sides, as aigw and nginx have it: without it a response split in
    // two writes waits for the peer's delayed ACK.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build(connector);

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let client = client.clone();
        let authority = authority.clone();
        tokio::spawn(async move {
            let forward = service_fn(move |request: Request<Incoming>| {
                let client = client.clone();
                let authority = authority.clone();
                async move {
                    let (mut head, body) = request.into_parts();
                    let mut uri = head.uri.clone().into_parts();
                    uri.scheme = Some(hyper::http::uri::Scheme::HTTP);
                    uri.authority = Some(authority);
                    head.uri = Uri::from_parts(uri)?;
                    // The Host header stays the client's, as the SDK signed it.
                    anyhow::Ok(client.request(Request::from_parts(head, body)).await?)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), forward)
                .await;
        });
    }
}
