//! `ShouldRateLimit` calls on hand-rolled HTTP/2, for this one call shape only, so that the
//! generator costs a small share of what it measures. Per connection: the header block encoded
//! once (`hpack.rs`), each user's request message encoded once, the HEADERS and DATA frames of
//! every call that can start written in one `write`, and replies recognised by frame type and
//! END_STREAM. Every reply is still checked: `:status` 200, one whole gRPC message whose
//! `overall_code` is OK, and `grpc-status: 0` in its trailers. Flow control: the connection's
//! receive window is opened wide at once and topped up by one large WINDOW_UPDATE; what we send
//! stays within the server's window. Over TLS (rustls) when asked, to measure what TLS costs
//! the server.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use prost::Message;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::hpack::{self, Heard, Words};
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

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 section 6).
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;

/// Frame flags.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// How long the generator should sleep between looks at its connections (`Load::pace`): a few
/// calls' worth at the rates of this machine, so that it costs a small share of a server's CPU
/// per call.
pub const PACE: Duration = Duration::from_micros(500);

/// The largest flow-control window (2^31 - 1), ours for every stream and the connection.
const MAX_WINDOW: u32 = 0x7fff_ffff;

/// The window every connection starts with, before any WINDOW_UPDATE.
const DEFAULT_WINDOW: u32 = 65_535;

/// Received DATA after which the connection window is topped up again.
const TOP_UP: u64 = 1 << 30;

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
fn messages(descriptors: usize, users: u32) -> Rc<[Vec<u8>]> {
    (0..users)
        .map(|user| {
            let body = request(descriptors, user).encode_to_vec();
            let mut message = Vec::with_capacity(5 + body.len());
            message.push(0);
            message.extend_from_slice(&(body.len() as u32).to_be_bytes());
            message.extend_from_slice(&body);
            message
        })
        .collect()
}

/// One worker per connection to `address`, each keeping `load.in_flight / load.connections`
/// calls with `descriptors` descriptors in flight.
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
    let depth = (load.in_flight / load.connections.max(1)).max(1);
    let mut workers = Vec::new();
    for _ in 0..load.connections {
        let socket = connect(address, tls.as_ref()).await;
        let header_block = hpack::request_block(PATH, address, tls.is_some());
        let mut connection = Connection::open(socket, header_block, messages.clone(), depth);
        workers.push(async move |user: u32| connection.turn(user).await);
    }
    workers
}

/// A connection's byte stream: plain TCP or TLS over it.
trait Socket: AsyncRead + AsyncWrite + Unpin {}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket for S {}

async fn connect(address: &str, tls: Option<&TlsConnector>) -> Box<dyn Socket> {
    let stream = TcpStream::connect(address)
        .await
        .expect("the server accepts");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    match tls {
        None => Box::new(stream),
        Some(tls) => {
            let name = ServerName::try_from("localhost").expect("a server name");
            Box::new(tls.connect(name, stream).await.expect("a TLS handshake"))
        }
    }
}

/// A call sent and not yet answered.
struct Pending {
    stream: u32,
    sent: Instant,
    heard: Heard,
    message: Vec<u8>,
}

struct Connection {
    socket: Box<dyn Socket>,
    /// Frames to write: calls, and answers to the server's SETTINGS and PINGs.
    out: Vec<u8>,
    input: BytesMut,
    header_block: Vec<u8>,
    words: Words,
    messages: Rc<[Vec<u8>]>,
    depth: usize,
    next_stream: u32,
    pending: Vec<Pending>,
    /// What the server lets us send: on the connection, and on each new stream.
    send_window: i64,
    stream_window: i64,
    /// DATA received since the connection window was last topped up.
    received: u64,
    /// The latencies (µs) and results of the calls answered in this turn.
    answered: Vec<(u64, bool)>,
    broken: bool,
}

impl Connection {
    fn open(
        socket: Box<dyn Socket>,
        header_block: Vec<u8>,
        messages: Rc<[Vec<u8>]>,
        depth: usize,
    ) -> Connection {
        let mut out = PREFACE.to_vec();
        // Settings: HEADER_TABLE_SIZE 0, ENABLE_PUSH 0, INITIAL_WINDOW_SIZE the largest.
        let settings: [(u16, u32); 3] = [(0x1, 0), (0x2, 0), (0x4, MAX_WINDOW)];
        frame_head(&mut out, 6 * settings.len(), SETTINGS, 0, 0);
        for (id, value) in settings {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        window_update(&mut out, u64::from(MAX_WINDOW - DEFAULT_WINDOW));
        Connection {
            socket,
            out,
            input: BytesMut::with_capacity(64 * 1024),
            header_block,
            words: Words::new(),
            messages,
            depth,
            next_stream: 1,
            pending: Vec::with_capacity(depth),
            send_window: i64::from(DEFAULT_WINDOW),
            stream_window: i64::from(DEFAULT_WINDOW),
            received: 0,
            answered: Vec::with_capacity(depth),
            broken: false,
        }
    }

    /// Starts calls for users from `user` on until `depth` are in flight, in one write, then
    /// reads until at least one is answered.
    async fn turn(&mut self, user: u32) -> Turn {
        if self.broken {
            // Counted as failed, slowly: the row's errors show it.
            tokio::time::sleep(Duration::from_millis(10)).await;
            return Turn::one(false);
        }
        let now = Instant::now();
        let mut next = user as usize;
        while self.pending.len() < self.depth {
            let message = &self.messages[next % self.messages.len()];
            let size = message.len() as i64;
            if size > self.send_window || size > self.stream_window {
                break;
            }
            let stream = self.next_stream;
            frame_head(
                &mut self.out,
                self.header_block.len(),
                HEADERS,
                END_HEADERS,
                stream,
            );
            self.out.extend_from_slice(&self.header_block);
            frame_head(&mut self.out, message.len(), DATA, END_STREAM, stream);
            self.out.extend_from_slice(message);
            self.send_window -= size;
            self.next_stream += 2;
            next += 1;
            self.pending.push(Pending {
                stream,
                sent: now,
                heard: Heard::default(),
                message: Vec::new(),
            });
        }
        while self.answered.is_empty() && !self.broken {
            if !self.out.is_empty() && self.socket.write_all(&self.out).await.is_err() {
                self.broken = true;
            }
            self.out.clear();
            match self.socket.read_buf(&mut self.input).await {
                Ok(1..) => self.read_frames(),
                _ => self.broken = true,
            }
        }
        if self.broken {
            for call in self.pending.drain(..) {
                let micros = call.sent.elapsed().as_micros() as u64;
                self.answered.push((micros, false));
            }
        }
        let failed = self.answered.iter().filter(|(_, ok)| !ok).count();
        Turn {
            calls: self.answered.len() as u64,
            failed: failed as u64,
            latencies: self.answered.drain(..).map(|(micros, _)| micros).collect(),
        }
    }

    /// Takes every whole frame out of the input.
    fn read_frames(&mut self) {
        let mut input = std::mem::take(&mut self.input);
        let mut at = 0;
        while let Some(head) = input.get(at..at + 9) {
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let Some(payload) = input.get(at + 9..at + 9 + length) else {
                break;
            };
            self.frame(kind, flags, stream, payload);
            at += 9 + length;
        }
        input.advance(at);
        self.input = input;
        if self.received >= TOP_UP {
            window_update(&mut self.out, std::mem::take(&mut self.received));
        }
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        match kind {
            DATA => {
                self.received += payload.len() as u64;
                let data = unpadded(flags, payload);
                if let Some(call) = self.call(stream) {
                    call.message.extend_from_slice(data);
                }
                if flags & END_STREAM != 0 {
                    self.answer(stream);
                }
            }
            HEADERS => {
                let mut block = unpadded(flags, payload);
                if flags & PRIORITY != 0 {
                    block = block.get(5..).unwrap_or_default();
                }
                let words = &self.words;
                let Some(call) = self.pending.iter_mut().find(|call| call.stream == stream) else {
                    return;
                };
                // Header blocks continued in CONTINUATION frames are not expected of replies
                // this small; one would fail the connection.
                if flags & END_HEADERS == 0 || !words.read(block, &mut call.heard) {
                    self.broken = true;
                } else if flags & END_STREAM != 0 {
                    self.answer(stream);
                }
            }
            RST_STREAM => self.answer(stream),
            SETTINGS if flags & ACK == 0 => {
                for setting in payload.chunks_exact(6) {
                    if setting[..2] == [0, 4] {
                        let window = u32::from_be_bytes(setting[2..].try_into().expect("4"));
                        self.stream_window = i64::from(window);
                    }
                }
                frame_head(&mut self.out, 0, SETTINGS, ACK, 0);
            }
            PING if flags & ACK == 0 => {
                frame_head(&mut self.out, payload.len(), PING, ACK, 0);
                self.out.extend_from_slice(payload);
            }
            GOAWAY => self.broken = true,
            WINDOW_UPDATE if stream == 0 && payload.len() == 4 => {
                let increment = u32::from_be_bytes(payload.try_into().expect("4 bytes"));
                self.send_window += i64::from(increment & 0x7fff_ffff);
            }
            _ => {}
        }
    }

    fn call(&mut self, stream: u32) -> Option<&mut Pending> {
        self.pending.iter_mut().find(|call| call.stream == stream)
    }

    /// The stream ended: its call succeeded if every check passed.
    fn answer(&mut self, stream: u32) {
        let Some(at) = self.pending.iter().position(|call| call.stream == stream) else {
            return;
        };
        let call = self.pending.swap_remove(at);
        let ok = call.heard.status_200
            && call.heard.grpc_ok == Some(true)
            && overall_code(&call.message) == Some(Code::Ok as u64);
        let micros = call.sent.elapsed().as_micros() as u64;
        self.answered.push((micros, ok));
    }
}

fn frame_head(out: &mut Vec<u8>, length: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

fn window_update(out: &mut Vec<u8>, increment: u64) {
    frame_head(out, 4, WINDOW_UPDATE, 0, 0);
    out.extend_from_slice(&(increment as u32).to_be_bytes());
}

/// A DATA or HEADERS payload without its padding.
fn unpadded(flags: u8, payload: &[u8]) -> &[u8] {
    if flags & PADDED == 0 {
        return payload;
    }
    let Some((&padding, rest)) = payload.split_first() else {
        return &[];
    };
    &rest[..rest.len().saturating_sub(usize::from(padding))]
}

/// The `overall_code` (field 1) of one whole gRPC-framed `RateLimitResponse`, read from its
/// top-level fields; `None` when the framing or the protobuf is not whole. An absent field is
/// its default, 0.
fn overall_code(message: &[u8]) -> Option<u64> {
    let (&[0, a, b, c, d], mut body) = message.split_first_chunk::<5>()? else {
        return None;
    };
    if u32::from_be_bytes([a, b, c, d]) as usize != body.len() {
        return None;
    }
    let mut code = 0;
    while !body.is_empty() {
        let tag;
        (tag, body) = varint(body)?;
        let skip = match tag & 7 {
            0 => {
                let value;
                (value, body) = varint(body)?;
                if tag >> 3 == 1 {
                    code = value;
                }
                0
            }
            1 => 8,
            2 => {
                let length;
                (length, body) = varint(body)?;
                usize::try_from(length).ok()?
            }
            5 => 4,
            _ => return None,
        };
        body = body.get(skip..)?;
    }
    Some(code)
}

fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[index + 1..]));
        }
    }
    None
}
