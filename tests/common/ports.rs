//! Loopback ports for the processes the tests start (redis-server, Envoy, Prometheus, the built
//! binary). A port is only a candidate: until the process started on it proves that it is the
//! one answering there (its pid, or its config path), anything else on the machine may hold it.
//! A start whose port was taken is retried on another candidate.
//!
//! Candidates come from below the kernel's ephemeral range (Linux: 32768-60999), from which
//! `bind(0)` and outgoing connections take their ports: while a server is down for a restart,
//! no connection on the machine can take its port.

use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use tokio::net::TcpSocket;

/// Candidates are `FIRST..FIRST + SPAN`; a companion port (a Cluster node's bus, a TLS port)
/// is `COMPANION` above its port, so the two ranges never meet.
const FIRST: u16 = 10_000;
const SPAN: u16 = 10_000;
const COMPANION: u16 = 10_000;

/// How many times a start is tried on fresh candidates before the test gives up.
const ATTEMPTS: usize = 20;

/// A process exited because another one holds a port it was to listen on.
pub struct PortTaken;

/// Runs `start` (which picks its own candidates) until an attempt finds its ports free.
pub fn retry<T>(what: &str, mut start: impl FnMut() -> Result<T, PortTaken>) -> T {
    for _ in 0..ATTEMPTS {
        if let Ok(started) = start() {
            return started;
        }
    }
    panic!("{what} found no free port in {ATTEMPTS} attempts");
}

/// [`retry`] for a start that waits asynchronously.
pub async fn retry_async<T, F>(what: &str, mut start: impl FnMut() -> F) -> T
where
    F: Future<Output = Result<T, PortTaken>>,
{
    for _ in 0..ATTEMPTS {
        if let Ok(started) = start().await {
            return started;
        }
    }
    panic!("{what} found no free port in {ATTEMPTS} attempts");
}

/// A random candidate port.
pub fn candidate() -> u16 {
    let random = RandomState::new().hash_one(std::process::id());
    FIRST + (random % u64::from(SPAN)) as u16
}

/// The port paired with `port`: `redis-server` binds its Cluster bus there, a TLS server its
/// TLS port.
pub fn companion(port: u16) -> u16 {
    port + COMPANION
}

/// Waits until `started` says that the process answering on its ports is `child` (which logs
/// to `log`), for at most `within`. `Err(PortTaken)` when the child exited because a port was
/// taken; any other exit, or no answer in time, fails the test with the child's log.
pub async fn started<F>(
    what: &str,
    child: &mut Child,
    log: &Path,
    within: Duration,
    mut started: impl FnMut() -> F,
) -> Result<(), PortTaken>
where
    F: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    while !started().await {
        if let Some(status) = child.try_wait().unwrap() {
            if taken(&log()) {
                return Err(PortTaken);
            }
            panic!("{what} exited ({status}); its log:\n{}", log());
        }
        assert!(
            Instant::now() < deadline,
            "{what} never answered; its log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Whether a process's log says it could not bind its port (redis-server, Envoy and the built
/// binary say "Address already in use", Prometheus "address already in use").
pub fn taken(log: &str) -> bool {
    log.to_ascii_lowercase().contains("address already in use")
}

/// A port bound but not listening: connections to it are refused, and nothing else can bind it
/// until this drops.
pub struct ReservedPort {
    pub port: u16,
    _socket: TcpSocket,
}

impl ReservedPort {
    pub fn new() -> ReservedPort {
        retry("a reserved port", || {
            let port = candidate();
            let socket = TcpSocket::new_v4().expect("a TCP socket");
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match socket.bind(address) {
                Ok(()) => Ok(ReservedPort {
                    port,
                    _socket: socket,
                }),
                Err(_) => Err(PortTaken),
            }
        })
    }
}
