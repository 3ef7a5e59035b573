//! The ceiling for any gateway built on obgate's HTTP stack: a hyper pass-through proxy with
//! no checks at all (the same hyper server and pooled hyper-util client obgate uses, on a
//! two-worker tokio runtime like obgate's on this machine), measured with the same wrk load.
//!
//! obgate does everything this does plus its checks, so its gateway row cannot beat this
//! row; when a target lies above it, the target is out of reach for this stack on this
//! machine, and this row is the measurement that shows it.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Starts the proxy on a port of its own, forwarding every request to `upstream`
/// (`http://host:port`); it runs until the process ends.
pub fn start(upstream: &'static str) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let client: Client<HttpConnector, Incoming> =
                Client::builder(TokioExecutor::new()).build_http();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let client = client.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                            let client = client.clone();
                            async move {
                                let path = req
                                    .uri()
                                    .path_and_query()
                                    .map_or("/", |p| p.as_str())
                                    .to_owned();
                                *req.uri_mut() = format!("{upstream}{path}").parse().unwrap();
                                req.headers_mut().remove(hyper::header::HOST);
                                let res = match client.request(req).await {
                                    Ok(r) => r.map(Body::new),
                                    Err(_) => hyper::Response::builder()
                                        .status(502)
                                        .body(Body::empty())
                                        .unwrap(),
                                };
                                Ok::<_, Infallible>(res)
                            }
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}
