//! An attacker's HTTP/2 connections, made with the `h2` crate from a loopback address of its
//! own (127.0.0.0/8 is all loopback), so that the service sees it as another client.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderValue, Method, Request};
use tokio::net::TcpSocket;

/// Where attacks come from; normal clients use 127.0.0.1.
pub const ATTACKER: [u8; 4] = [127, 0, 0, 2];

/// A call the server ends sooner than this was refused, not held.
const REFUSED_WITHIN: Duration = Duration::from_millis(500);

pub const WATCH: &str = "/grpc.health.v1.Health/Watch";
pub const SHOULD_RATE_LIMIT: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// An HTTP/2 connection from `from` to `addr`, its connection task spawned (it answers PINGs).
pub async fn connect(from: [u8; 4], addr: SocketAddr) -> Option<SendRequest<Bytes>> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((from, 0))).ok()?;
    let stream = socket.connect(addr).await.ok()?;
    let (send, connection) = h2::client::handshake(stream).await.ok()?;
    tokio::spawn(connection);
    Some(send)
}

/// A gRPC call's headers for `path`.
pub fn call(addr: SocketAddr, path: &str) -> Request<()> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}{path}"))
        .body(())
        .expect("a valid request");
    let headers = request.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("te", HeaderValue::from_static("trailers"));
    request
}

/// An empty protobuf message, framed for gRPC (`HealthCheckRequest { service: "" }`).
pub fn empty_message() -> Bytes {
    Bytes::from_static(&[0, 0, 0, 0, 0])
}

/// Opens up to `streams` calls to `path` on one connection and keeps them: with `body`, each
/// sends it and ends its side (a watch); without, each sends its headers only (half-open).
/// Calls the server held and then ended are opened again at once, until `until` passes.
pub async fn hold_streams(
    mut send: SendRequest<Bytes>,
    addr: SocketAddr,
    path: &'static str,
    body: Option<Bytes>,
    streams: usize,
    until: tokio::time::Instant,
) {
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let Ok(ready) = send.clone().ready().await else {
            break;
        };
        send = ready;
        let mut sender = send.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < until {
                let Ok(mut ready) = sender.clone().ready().await else {
                    return;
                };
                let Ok((response, mut stream)) = ready.send_request(call(addr, path), false) else {
                    return;
                };
                if let Some(body) = &body {
                    let _ = stream.send_data(body.clone(), true);
                }
                // Held until the server ends the call (its response body ends).
                let opened = tokio::time::Instant::now();
                let ended = tokio::time::timeout_at(until, async {
                    let mut answer = response.await?.into_body();
                    while let Some(data) = answer.data().await {
                        let data = data?;
                        let _ = answer.flow_control().release_capacity(data.len());
                    }
                    Ok::<(), h2::Error>(())
                })
                .await;
                drop(stream);
                // A call refused at once is not tried again (that would be a flood of refusals,
                // CPU rather than memory); one the server held and then ended is reopened.
                if ended.is_err() || opened.elapsed() < REFUSED_WITHIN {
                    return;
                }
                sender = ready;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}
