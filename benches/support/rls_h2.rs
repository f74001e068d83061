//! `ShouldRateLimit` calls straight on the `h2` crate, as light as a client can make them: each
//! user's request message encoded once (prost, gRPC framing), headers from static parts, the
//! answer's frames read and their flow-control capacity released, its trailers checked for
//! `grpc-status: 0`. No tonic, tower or hyper, no per-call encoding or decoding. Over TLS
//! (rustls) when asked, to measure what TLS costs the server.

use std::rc::Rc;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use h2::client::SendRequest;
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderValue, Request, StatusCode, Uri};
use prost::Message;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::load::{Load, Turn};

const PATH: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// The limits every service in the benchmark loads: per-user rules too large to be hit.
pub const LIMITS: &str = "
domain: bench
descriptors:
  - {key: d0, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d1, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d2, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d3, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: d4, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
";

/// A request for `descriptors` descriptors of one user: `(d0, user)`, `(d1, user)`, ... so that
/// each descriptor is a counter of its own.
pub fn request(descriptors: usize, user: u32) -> RateLimitRequest {
    let value = format!("user-{user}");
    RateLimitRequest {
        domain: "bench".into(),
        descriptors: (0..descriptors)
            .map(|index| RateLimitDescriptor {
                entries: vec![Entry {
                    key: format!("d{index}"),
                    value: value.clone(),
                }],
                ..Default::default()
            })
            .collect(),
        hits_addend: 1,
    }
}

/// Every user's request as a gRPC message: not compressed, its length, the protobuf.
fn messages(descriptors: usize, users: u32) -> Rc<[Bytes]> {
    (0..users)
        .map(|user| {
            let body = request(descriptors, user).encode_to_vec();
            let mut message = Vec::with_capacity(5 + body.len());
            message.push(0);
            message.extend_from_slice(&(body.len() as u32).to_be_bytes());
            message.extend_from_slice(&body);
            Bytes::from(message)
        })
        .collect()
}

/// `load.in_flight` workers calling `ShouldRateLimit` at `address` with `descriptors`
/// descriptors, spread over `load.connections` connections. Call on the generator's runtime:
/// the connections are driven by tasks spawned there.
pub async fn workers(
    address: &str,
    descriptors: usize,
    load: Load,
) -> Vec<impl AsyncFnMut(u32) -> Turn + use<>> {
    workers_over(address, descriptors, load, None).await
}

/// [`workers`], over TLS (for the name `localhost`) when `tls` is given.
pub async fn workers_over(
    address: &str,
    descriptors: usize,
    load: Load,
    tls: Option<TlsConnector>,
) -> Vec<impl AsyncFnMut(u32) -> Turn + use<>> {
    let messages = messages(descriptors, load.users);
    let uri: Uri = format!("http://{address}{PATH}")
        .parse()
        .expect("a valid URI");
    let mut senders = Vec::new();
    for _ in 0..load.connections {
        senders.push(connect(address, tls.as_ref()).await);
    }
    (0..load.in_flight)
        .map(|worker| {
            let mut sender = senders[worker % senders.len()].clone();
            let (messages, uri) = (messages.clone(), uri.clone());
            async move |user: u32| {
                let message = messages[user as usize % messages.len()].clone();
                Turn::one(matches!(call(&mut sender, &uri, message).await, Ok(true)))
            }
        })
        .collect()
}

async fn connect(address: &str, tls: Option<&TlsConnector>) -> SendRequest<Bytes> {
    let stream = TcpStream::connect(address)
        .await
        .expect("the server accepts");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    match tls {
        None => handshake(stream).await,
        Some(tls) => {
            let name = ServerName::try_from("localhost").expect("a server name");
            handshake(tls.connect(name, stream).await.expect("a TLS handshake")).await
        }
    }
}

async fn handshake<S>(stream: S) -> SendRequest<Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = h2::client::handshake(stream)
        .await
        .expect("an HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// One call: true when the server answered the message with `grpc-status: 0`.
async fn call(
    sender: &mut SendRequest<Bytes>,
    uri: &Uri,
    message: Bytes,
) -> Result<bool, h2::Error> {
    std::future::poll_fn(|context| sender.poll_ready(context)).await?;
    let mut request = Request::post(uri.clone()).body(()).expect("a request");
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    let (response, mut stream) = sender.send_request(request, false)?;
    stream.send_data(message, true)?;
    let response = response.await?;
    if response.status() != StatusCode::OK || response.headers().contains_key("grpc-status") {
        // Not 200, or a trailers-only answer: an error status, never a message.
        return Ok(false);
    }
    let mut body = response.into_body();
    let mut received = 0;
    while let Some(data) = body.data().await {
        let data = data?;
        received += data.len();
        body.flow_control().release_capacity(data.len())?;
    }
    let trailers = body.trailers().await?;
    let status = trailers
        .as_ref()
        .and_then(|trailers| trailers.get("grpc-status"));
    Ok(received > 5 && status.is_some_and(|status| status == "0"))
}
