//! Clients that open a connection and then stall cannot hold the service: the HTTP listener
//! speaks HTTP/1.1 only and closes a connection whose request headers do not arrive in time
//! (silent, half-sent, trickled, or idle after a response), so its connection slots come back;
//! a gRPC call whose body never comes is ended by the server, a gRPC connection that never
//! sends anything is closed, and gRPC connections announce a limit on concurrent calls. One
//! address cannot take every connection slot of either listener, a gRPC opening must be whole
//! within its deadline however it is trickled, and an idle gRPC connection is closed.
//! Everything runs in real time against the real listeners.

mod common;

use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::Service;
use futures_util::future::join_all;
use ratelimiter::http::MAX_CONNECTIONS;
use ratelimiter::server::GRPC_MAX_CONCURRENT_STREAMS;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::codegen::Service as _;
use tonic::codegen::http::{Request, header};
use tonic::transport::Endpoint;
use warp::hyper::body::{Body, Bytes, Frame};

/// How long the server may take to close a stalled connection or end a stalled call: several
/// times its timeouts (10 s for HTTP headers, 5 s for a gRPC call), for a loaded machine.
const WITHIN: Duration = Duration::from_secs(45);

/// What an HTTP/2 client sends first when it assumes the server speaks HTTP/2 (prior knowledge).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty HTTP/2 SETTINGS frame: length 0, type 4, no flags, stream 0.
const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

/// The HTTP/2 SETTINGS parameter that limits concurrent streams.
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 3;

fn service() -> impl Future<Output = Service> {
    Service::start(&[("x.yaml", "domain: x\n")], &[])
}

/// A connection to `addr` that has sent `bytes`.
async fn open(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the server closes the connection (end of stream, or a reset), which it must do
/// within [`WITHIN`]; returns what it sent before.
async fn until_closed(mut stream: impl AsyncRead + Unpin, what: &str) -> String {
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(WITHIN, async {
        while let Ok(1..) = stream.read_buf(&mut answer).await {}
    })
    .await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        closed.is_ok(),
        "the server kept {what} open for {WITHIN:?}; it sent {answer:?}"
    );
    answer
}

/// Sends `head` and then one more header byte every half second, as long as the server takes
/// them; returns what the server sent before it closed the connection.
async fn trickle(addr: SocketAddr, head: &[u8]) -> String {
    let (reader, mut writer) = open(addr, head).await.into_split();
    let dripping = tokio::spawn(async move {
        while writer.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let answer = until_closed(reader, "a connection trickling its headers").await;
    dripping.abort();
    answer
}

#[tokio::test]
async fn connections_that_stall_before_their_headers_end_are_closed_while_health_answers() {
    let service = service().await;
    let addr = service.http_addr;
    let stalled = [
        ("a silent connection", &b""[..]),
        ("a connection that sent one byte", b"G"),
        ("a half-sent request line", b"GET /he"),
        (
            "a request line without headers",
            b"GET /health HTTP/1.1\r\n",
        ),
        (
            "unfinished headers",
            b"GET /health HTTP/1.1\r\nHost: ratelimiter\r\n",
        ),
    ];
    let mut streams = Vec::new();
    for (what, bytes) in stalled {
        streams.push((what, open(addr, bytes).await));
    }
    let idle = open(addr, b"GET /health HTTP/1.1\r\nHost: ratelimiter\r\n\r\n").await;

    let health = service.http().get("/health").await;
    assert_eq!(health.status, 200, "{}", health.body);

    let (cut, trickled, after_response) = tokio::join!(
        join_all(
            streams
                .into_iter()
                .map(|(what, stream)| async move { (what, until_closed(stream, what).await) })
        ),
        trickle(addr, b"GET /health HTTP/1.1\r\nX-Slow: "),
        until_closed(idle, "an idle keep-alive connection"),
    );
    for (what, answer) in cut {
        assert!(!answer.contains(" 200 "), "{what} was answered: {answer}");
    }
    assert!(!trickled.contains(" 200 "), "{trickled}");
    // The one complete request is answered and the connection kept alive, until it idles.
    assert!(
        after_response.starts_with("HTTP/1.1 200 "),
        "{after_response}"
    );
    assert!(
        !after_response
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{after_response}"
    );
}

/// A connection to `addr` from the loopback address `from` (127.0.0.0/8 is all loopback).
async fn open_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn silent_connections_from_a_few_addresses_leave_the_reserve_and_are_closed() {
    let service = service().await;
    assert_eq!(service.http().get("/health").await.status, 200);
    // One at a time, so that the server accepts each before the next comes: the kernel's queue
    // of connections not yet accepted is short (128), and one that overflows it may never be
    // accepted, nor told so. Five addresses, each trying for more than its share.
    let mut silent = Vec::new();
    for last in 2..7 {
        for _ in 0..300 {
            silent.push(open_from([127, 0, 0, last], service.http_addr).await);
        }
    }

    // Every slot but the reserve is held: a new address is served at once.
    let health = tokio::time::timeout(Duration::from_secs(5), service.http().get("/health"))
        .await
        .expect("/health answers from the reserved slots");
    assert_eq!(health.status, 200, "{}", health.body);

    let answers = join_all(
        silent
            .into_iter()
            .map(|stream| until_closed(stream, "a silent connection")),
    )
    .await;
    let refused = answers
        .iter()
        .filter(|answer| answer.starts_with("HTTP/1.1 503 "))
        .count();
    let closed_silently = answers.iter().filter(|answer| answer.is_empty()).count();
    assert_eq!(refused + closed_silently, answers.len(), "{answers:?}");
    // The admitted ones held every slot but the reserve, and the last address a few of it.
    let unreserved = MAX_CONNECTIONS - MAX_CONNECTIONS / 16;
    assert!(
        (unreserved..MAX_CONNECTIONS).contains(&closed_silently),
        "{closed_silently} held"
    );
}

#[tokio::test]
async fn an_http2_prior_knowledge_client_gets_no_http2_session() {
    let service = service().await;
    let stream = open(service.http_addr, &[H2_PREFACE, &EMPTY_SETTINGS].concat()).await;
    let answer = until_closed(stream, "an HTTP/2 connection").await;
    // An HTTP/2 server would start with its SETTINGS frame; HTTP/1 closes, or answers an error.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer:?}"
    );
}

/// A request body that never sends anything and never ends.
struct Silent;

impl Body for Silent {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

#[tokio::test]
async fn a_grpc_call_whose_body_never_comes_is_ended_by_the_server() {
    let service = service().await;
    let mut channel = Endpoint::from_shared(format!("http://{}", service.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let call = Request::post("/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit")
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(tonic::body::Body::new(Silent))
        .unwrap();
    poll_fn(|cx| channel.poll_ready(cx)).await.unwrap();
    let response = tokio::time::timeout(WITHIN, channel.call(call))
        .await
        .expect("the server ends a call whose body never comes")
        .expect("the server answers the call");
    // No message can follow, so the status comes at once, in the headers (trailers-only).
    let status = response
        .headers()
        .get("grpc-status")
        .map(|code| tonic::Code::from_bytes(code.as_bytes()));
    assert!(
        matches!(
            status,
            Some(tonic::Code::Cancelled | tonic::Code::DeadlineExceeded)
        ),
        "{status:?} in {:?}",
        response.headers()
    );
}

#[tokio::test]
async fn grpc_connections_announce_a_limit_on_concurrent_calls() {
    let service = service().await;
    let mut stream = open(service.grpc_addr, &[H2_PREFACE, &EMPTY_SETTINGS].concat()).await;
    let settings = tokio::time::timeout(WITHIN, async {
        loop {
            let mut head = [0; 9];
            stream.read_exact(&mut head).await.unwrap();
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0; length];
            stream.read_exact(&mut payload).await.unwrap();
            let (kind, ack) = (head[3], head[4] & 1 == 1);
            if kind == 4 && !ack {
                return payload;
            }
        }
    })
    .await
    .expect("the server sends its HTTP/2 SETTINGS");
    let limit = settings.chunks_exact(6).find_map(|setting| {
        let id = u16::from_be_bytes([setting[0], setting[1]]);
        (id == SETTINGS_MAX_CONCURRENT_STREAMS)
            .then(|| u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]))
    });
    assert_eq!(limit, Some(GRPC_MAX_CONCURRENT_STREAMS));
}

#[tokio::test]
async fn a_grpc_connection_that_never_speaks_is_closed_while_calls_are_answered() {
    let service = service().await;
    let silent = open(service.grpc_addr, b"").await;
    let mut client = service.client().await;
    let answer = common::ask(&mut client, common::request("x", &[&[("k", "v")]])).await;
    assert_eq!(common::code(&answer), common::Code::Ok);
    until_closed(silent, "a gRPC connection that sent nothing").await;
}

/// Opens `count` HTTP/2 connections from `from` that finish their opening and answer PINGs,
/// and keeps them; each with the task that drives it, which ends when the server closes it.
async fn hold_h2_connections(
    from: [u8; 4],
    addr: SocketAddr,
    count: usize,
) -> Vec<(h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>)> {
    let mut held = Vec::new();
    for _ in 0..count {
        let stream = open_from(from, addr).await;
        let Ok((send, connection)) = h2::client::handshake(stream).await else {
            continue;
        };
        let driven = tokio::spawn(async move {
            let _ = connection.await;
        });
        held.push((send, driven));
    }
    held
}

#[tokio::test]
async fn idle_grpc_connections_from_one_address_cannot_take_every_slot() {
    let flags = [
        "--grpc-max-connections",
        "256",
        "--max-connections-per-peer",
        "128",
    ];
    let service = Service::start(&[("x.yaml", "domain: x\n")], &flags).await;
    // Three flooding addresses, each trying for more than the whole listener.
    let mut flood = Vec::new();
    for last in 2..5 {
        flood.push(hold_h2_connections([127, 0, 0, last], service.grpc_addr, 300).await);
    }
    // The server closes what it refused; give it a moment to be seen.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = flood
        .iter()
        .flatten()
        .filter(|(_, driven)| !driven.is_finished())
        .count();
    assert!(held <= 256, "{held} connections held");

    let call = async {
        let mut client = service.client().await;
        common::ask(&mut client, common::request("x", &[&[("k", "v")]])).await
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("a new client is served from the reserve");
    assert_eq!(common::code(&answer), common::Code::Ok);
}

#[tokio::test]
async fn a_grpc_opening_trickled_a_byte_at_a_time_is_cut_off() {
    let service = service().await;
    let (reader, mut writer) = open(service.grpc_addr, b"").await.into_split();
    let dripping = tokio::spawn(async move {
        for &byte in H2_PREFACE {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    until_closed(reader, "a gRPC connection trickling its preface").await;
    assert!(!dripping.is_finished(), "cut before the preface was whole");
    dripping.abort();
}

#[tokio::test]
async fn an_idle_grpc_connection_is_closed_and_a_busy_one_is_not() {
    let flags = ["--grpc-max-connection-idle", "2s"];
    let service = Service::start(&[("x.yaml", "domain: x\n")], &flags).await;
    let idle = open_from([127, 0, 0, 1], service.grpc_addr).await;
    let (_send, connection) = h2::client::handshake(idle).await.unwrap();
    let mut client = service.client().await;
    let closed = tokio::spawn(connection);
    // The busy client calls every half second for longer than the idle limit.
    for _ in 0..8 {
        let answer = common::ask(&mut client, common::request("x", &[&[("k", "v")]])).await;
        assert_eq!(common::code(&answer), common::Code::Ok);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::timeout(WITHIN, closed)
        .await
        .expect("the idle connection was closed")
        .unwrap()
        .ok();
}

#[tokio::test]
async fn http_connections_held_by_one_address_leave_room_for_new_clients() {
    let flags = ["--http-max-connections", "256"];
    let service = Service::start(&[("x.yaml", "domain: x\n")], &flags).await;
    let addr = service.http_addr;
    // 400 keep-alive connections from one address, each asking /health every 5 s.
    let mut held = Vec::new();
    for _ in 0..400 {
        let stream = open_from([127, 0, 0, 2], addr).await;
        held.push(tokio::spawn(async move {
            let mut stream = stream;
            let mut answer = vec![0; 4096];
            loop {
                let asked = stream
                    .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await;
                if asked.is_err() || matches!(stream.read(&mut answer).await, Ok(0) | Err(_)) {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }));
    }
    // Twelve new clients, each from an address of its own.
    let clients = (0..12u8).map(|index| async move {
        let ask = async {
            let mut stream = open_from([127, 0, 0, 10 + index], addr).await;
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            String::from_utf8_lossy(&answer).into_owned()
        };
        tokio::time::timeout(Duration::from_secs(5), ask).await
    });
    let answers = join_all(clients).await;
    let served = answers
        .iter()
        .filter(|answer| {
            answer
                .as_ref()
                .is_ok_and(|reply| reply.starts_with("HTTP/1.1 200 "))
        })
        .count();
    assert_eq!(
        served, 12,
        "new clients served while one address holds connections: {answers:?}"
    );
    for task in held {
        task.abort();
    }
}
