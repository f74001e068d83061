//! Deadlines on an admitted HTTP/2 connection: it must send its opening (the preface and its
//! first SETTINGS frame) within a time, however it trickles the bytes, and it is closed once no
//! stream has been open on it for a time. Without them a client could hold a slot forever by
//! sending a byte now and then, or by answering PINGs on a connection it never uses.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, then a frame header (length, type, flags, stream).
const PREFACE_BYTES: usize = 24;
const FRAME_HEADER_BYTES: usize = 9;

/// Whether streams are open on a connection, and since when none is.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    open: AtomicUsize,
    /// Milliseconds after `started` of the latest stream opened or closed.
    changed_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            started: Instant::now(),
            open: AtomicUsize::new(0),
            changed_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// Marks a stream open until the returned guard is dropped.
    pub fn stream(self: &Arc<Self>) -> OpenStream {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.touch();
        OpenStream(self.clone())
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.changed_ms.fetch_max(now, Ordering::AcqRel);
    }

    /// When the connection falls idle for `after`: `None` while a stream is open.
    fn idle_deadline(&self, after: Duration) -> Option<Instant> {
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        let changed = Duration::from_millis(self.changed_ms.load(Ordering::Acquire));
        Some(self.started + changed + after)
    }
}

/// An open stream, as [`Activity`] counts it.
#[derive(Debug)]
pub struct OpenStream(Arc<Activity>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's byte stream with its deadlines: reading fails once the opening is late, and
/// reads end (as if the peer had closed) once the connection has been idle too long.
pub struct Deadlines<IO> {
    io: IO,
    opening: Option<Opening>,
    idle: Option<Idle>,
}

/// Counting the opening's bytes as they come.
struct Opening {
    read: usize,
    /// The first frame's length, as its bytes arrive.
    length: [u8; 3],
    deadline: Pin<Box<Sleep>>,
}

struct Idle {
    activity: Arc<Activity>,
    after: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<IO> Deadlines<IO> {
    /// `io`, which must send its HTTP/2 opening within `opening`, and is closed after `idle`
    /// (when given) with no stream open, as `activity` counts them.
    pub fn new(
        io: IO,
        opening: Duration,
        idle: Option<(Arc<Activity>, Duration)>,
    ) -> Deadlines<IO> {
        Deadlines {
            io,
            opening: Some(Opening {
                read: 0,
                length: [0; 3],
                deadline: Box::pin(tokio::time::sleep(opening)),
            }),
            idle: idle.map(|(activity, after)| Idle {
                timer: Box::pin(tokio::time::sleep(after)),
                activity,
                after,
            }),
        }
    }
}

impl Opening {
    /// Counts `fresh` bytes; true once the whole opening has been read.
    fn saw(&mut self, fresh: &[u8]) -> bool {
        for &byte in fresh {
            let at = self.read;
            if (PREFACE_BYTES..PREFACE_BYTES + 3).contains(&at) {
                self.length[at - PREFACE_BYTES] = byte;
            }
            self.read += 1;
            if self.done() {
                return true;
            }
        }
        false
    }

    fn done(&self) -> bool {
        let [a, b, c] = self.length;
        let length = u32::from_be_bytes([0, a, b, c]) as usize;
        self.read >= PREFACE_BYTES + FRAME_HEADER_BYTES + length
    }
}

impl Idle {
    /// Whether the connection has been idle for `after`; otherwise the timer is set to the
    /// moment it could be, and wakes the task then.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self
                .activity
                .idle_deadline(self.after)
                .unwrap_or_else(|| Instant::now() + self.after);
            if due <= Instant::now() {
                return true;
            }
            self.timer.as_mut().reset(due);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Deadlines<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Some(opening) = &mut this.opening
                    && opening.saw(&buf.filled()[before..])
                {
                    this.opening = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if let Some(opening) = &mut this.opening
                    && opening.deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection did not send its HTTP/2 opening in time",
                    )));
                }
                if let Some(idle) = &mut this.idle
                    && idle.expired(cx)
                {
                    // Read as the end of the stream: the server closes the connection.
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            failed => failed,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Deadlines<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    #[tokio::test(start_paused = true)]
    async fn a_trickled_opening_is_cut_at_its_deadline() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = Deadlines::new(server, Duration::from_secs(10), None);
        let reading = tokio::spawn(async move {
            let mut sink = Vec::new();
            server.read_to_end(&mut sink).await
        });
        for &byte in PREFACE {
            client.write_all(&[byte]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            if reading.is_finished() {
                break;
            }
        }
        let error = reading.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_opening_lifts_the_deadline_and_idleness_closes() {
        let (mut client, server) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::default());
        let after = Duration::from_secs(60);
        let mut server = Deadlines::new(
            server,
            Duration::from_secs(10),
            Some((activity.clone(), after)),
        );
        // A SETTINGS frame with one setting (6 bytes).
        let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        client
            .write_all(&[PREFACE, &settings].concat())
            .await
            .unwrap();
        let mut opening = vec![0; PREFACE.len() + settings.len()];
        server.read_exact(&mut opening).await.unwrap();
        let stream = activity.stream();
        let reading = tokio::spawn(async move {
            let mut sink = Vec::new();
            server.read_to_end(&mut sink).await.map(|_| Instant::now())
        });
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!reading.is_finished(), "open while a stream is");
        let closed_from = Instant::now();
        drop(stream);
        let closed_at = reading.await.unwrap().expect("an end, not an error");
        assert!(closed_at >= closed_from + after, "idle for {after:?} first");
    }
}
