//! The Redis ceiling: the store's counting script called straight at Redis over raw RESP, a
//! whole batch of calls in one write and their replies read back together, as a service that
//! coalesced its concurrent requests into pipelines would send them. What Redis costs per call
//! at best, and how fast it can go.

use std::rc::Rc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::load::{Load, Turn};

/// One call of the script, as the store makes it: `EVALSHA sha 1 key window_ms delta`.
pub struct Call {
    pub key: String,
    pub window_ms: u64,
    pub delta: i64,
}

/// `load.connections` workers on Redis at `address`, each sending `load.in_flight /
/// load.connections` calls of script `sha` per write; user `n` makes `calls[n]`.
pub async fn workers(
    address: &str,
    sha: &str,
    calls: &[Call],
    load: Load,
) -> Vec<impl AsyncFnMut(u32) -> Turn + use<>> {
    let commands: Rc<[Vec<u8>]> = calls
        .iter()
        .map(|call| {
            let args = [
                "EVALSHA",
                sha,
                "1",
                &call.key,
                &call.window_ms.to_string(),
                &call.delta.to_string(),
            ];
            encode(&args)
        })
        .collect();
    let batch = (load.in_flight / load.connections.max(1)).max(1);
    let mut workers = Vec::new();
    for _ in 0..load.connections {
        let mut stream = TcpStream::connect(address).await.expect("Redis accepts");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let commands = commands.clone();
        let (mut out, mut input) = (Vec::new(), BytesMut::with_capacity(64 * 1024));
        workers.push(async move |user: u32| {
            out.clear();
            for offset in 0..batch {
                out.extend_from_slice(&commands[(user as usize + offset) % commands.len()]);
            }
            let failed = match exchange(&mut stream, &out, &mut input, batch).await {
                Ok(failed) => failed,
                Err(_) => batch as u64,
            };
            Turn::batch(batch as u64, failed)
        });
    }
    workers
}

/// Writes `out` (`replies` commands) and reads their replies; how many were errors.
async fn exchange(
    stream: &mut TcpStream,
    out: &[u8],
    input: &mut BytesMut,
    mut replies: usize,
) -> std::io::Result<u64> {
    stream.write_all(out).await?;
    let mut failed = 0;
    while replies > 0 {
        match reply(input) {
            Some((length, ok)) => {
                input.advance(length);
                failed += u64::from(!ok);
                replies -= 1;
            }
            None => {
                if stream.read_buf(input).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
    }
    Ok(failed)
}

/// A command in RESP: an array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// The length of the complete reply at the start of `input`, and whether it is not an error;
/// `None` until it has all arrived.
fn reply(input: &[u8]) -> Option<(usize, bool)> {
    let line_end = input.windows(2).position(|pair| pair == b"\r\n")?;
    let (kind, line) = (input.first()?, &input[1..line_end]);
    let after = line_end + 2;
    let number = || -> Option<i64> { std::str::from_utf8(line).ok()?.parse().ok() };
    match kind {
        b'+' | b':' => Some((after, true)),
        b'-' => Some((after, false)),
        b'$' => match number()? {
            -1 => Some((after, true)),
            length => {
                let end = after + length as usize + 2;
                (input.len() >= end).then_some((end, true))
            }
        },
        b'*' => {
            let mut at = after;
            let mut ok = true;
            for _ in 0..number()?.max(0) {
                let (length, fine) = reply(&input[at..])?;
                at += length;
                ok &= fine;
            }
            Some((at, ok))
        }
        _ => Some((input.len(), false)),
    }
}
