//! statsd over TCP (the Go service's default transport): one connection, made when needed and
//! dropped on a write error, so that a statsd server that comes back is reached again at the
//! next push. Lines are newline-terminated and buffered until the push ends.

use std::io::{self, BufWriter, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Duration;

use cadence::MetricSink;

/// Longest wait to connect, as the Go service's statsd client allows.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_500);

/// Longest a write may block: a stalled statsd server must not hold the pusher.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The TCP buffer size the Go service's statsd client uses.
const BUFFER_BYTES: usize = 64 * 1024;

pub struct TcpSink {
    addr: String,
    connection: Mutex<Option<BufWriter<TcpStream>>>,
}

impl TcpSink {
    pub fn new(addr: String) -> TcpSink {
        TcpSink {
            addr,
            connection: Mutex::new(None),
        }
    }

    fn connect(&self) -> io::Result<BufWriter<TcpStream>> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
        for addr in self.addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                    return Ok(BufWriter::with_capacity(BUFFER_BYTES, stream));
                }
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    /// Runs `write` on the connection (made first if there is none); a failure drops it.
    fn with_connection<T>(
        &self,
        write: impl FnOnce(&mut BufWriter<TcpStream>) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let connection = match slot.as_mut() {
            Some(connection) => connection,
            None => slot.insert(self.connect()?),
        };
        write(connection).inspect_err(|_| *slot = None)
    }
}

impl MetricSink for TcpSink {
    fn emit(&self, metric: &str) -> io::Result<usize> {
        self.with_connection(|connection| {
            connection.write_all(metric.as_bytes())?;
            connection.write_all(b"\n")?;
            Ok(metric.len() + 1)
        })
    }

    fn flush(&self) -> io::Result<()> {
        self.with_connection(|connection| connection.flush())
    }
}
