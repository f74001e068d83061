//! Who gets a connection: each listener serves a bounded number of connections, at most
//! `per_peer` of them from one address, and keeps its last `reserve` slots for addresses that
//! hold only a few, so that a client that floods the listener cannot lock out the next one.
//! A connection refused for its peer is closed at once (with `refusal` written first, if the
//! listener has one); when every slot is taken, new connections wait in the kernel's backlog.
//!
//! [`deadlines`] bounds how long an admitted connection may take to start and may stay idle.

pub mod deadlines;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Notify;

use crate::inflight::PeerShare;
use crate::throttled;

/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections a peer may hold and still take a reserved slot: a new client, or one that
/// lost its connections, gets a few at once; a flood of its own does not.
const RESERVE_PEER_CONNECTIONS: usize = 8;

/// How many connections one listener takes, and from whom.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionLimits {
    pub connections: usize,
    pub per_peer: usize,
    /// The last slots, taken only by peers holding fewer than [`RESERVE_PEER_CONNECTIONS`].
    pub reserve: usize,
}

impl AdmissionLimits {
    /// `connections` and `per_peer`, with a reserve of one slot in sixteen.
    pub fn new(connections: usize, per_peer: usize) -> AdmissionLimits {
        AdmissionLimits {
            connections,
            per_peer,
            reserve: connections / 16,
        }
    }
}

/// The peer every Unix-socket client counts as: such clients have no address, and all run on
/// this host, so they share one peer's connections and in-flight share.
pub const UNIX_PEER: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// A listener whose connections are admitted: accepting yields the stream and its peer.
pub trait Listening {
    type Stream;

    fn accept_peer(&self) -> impl Future<Output = io::Result<(Self::Stream, IpAddr)>> + Send;

    /// Writes `reply` to a refused connection, if it fits at once.
    fn refuse(stream: &Self::Stream, reply: &[u8]);
}

impl Listening for TcpListener {
    type Stream = TcpStream;

    async fn accept_peer(&self) -> io::Result<(TcpStream, IpAddr)> {
        let (stream, address) = self.accept().await?;
        Ok((stream, address.ip()))
    }

    fn refuse(stream: &TcpStream, reply: &[u8]) {
        let _ = stream.try_write(reply);
    }
}

impl Listening for UnixListener {
    type Stream = UnixStream;

    async fn accept_peer(&self) -> io::Result<(UnixStream, IpAddr)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, UNIX_PEER))
    }

    fn refuse(stream: &UnixStream, reply: &[u8]) {
        let _ = stream.try_write(reply);
    }
}

/// One listener's connection slots.
pub struct Admission {
    limits: AdmissionLimits,
    /// The listener's name in logs (`gRPC`, `HTTP`).
    what: &'static str,
    /// Written to a refused connection before it is closed.
    refusal: Option<&'static [u8]>,
    held: Mutex<Held>,
    freed: Notify,
}

#[derive(Default)]
struct Held {
    total: usize,
    peers: HashMap<IpAddr, Peer>,
}

struct Peer {
    connections: usize,
    share: Arc<PeerShare>,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The peer holds as many connections as one peer may.
    PeerFull(usize),
    /// Only reserved slots are left, and the peer holds too many to take one.
    ReserveOnly(usize),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PeerFull(max) => {
                write!(
                    f,
                    "the address already holds {max} connections, the most one may"
                )
            }
            Refusal::ReserveOnly(reserve) => write!(
                f,
                "only the {reserve} reserved slots are free, kept for addresses with fewer than {RESERVE_PEER_CONNECTIONS} connections"
            ),
        }
    }
}

/// An admitted connection's slot; given back when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    peer: IpAddr,
    share: Arc<PeerShare>,
}

impl Ticket {
    /// The peer's share of the in-flight budget, common to all its connections.
    pub fn share(&self) -> &Arc<PeerShare> {
        &self.share
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut held = self.admission.held();
        held.total -= 1;
        if let Some(peer) = held.peers.get_mut(&self.peer) {
            peer.connections -= 1;
            if peer.connections == 0 {
                held.peers.remove(&self.peer);
            }
        }
        drop(held);
        self.admission.freed.notify_one();
    }
}

impl Admission {
    pub fn new(
        limits: AdmissionLimits,
        what: &'static str,
        refusal: Option<&'static [u8]>,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            what,
            refusal,
            held: Mutex::default(),
            freed: Notify::new(),
        })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        // Nothing panics while holding it; counts stay consistent anyway.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a free slot, then accepts connections until one is admitted. Cancel-safe:
    /// a cancelled call has taken nothing.
    pub async fn accept<L: Listening>(self: &Arc<Self>, listener: &L) -> (L::Stream, Ticket) {
        loop {
            self.slot_free().await;
            let (stream, address) = match listener.accept_peer().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    throttled!(WARN, %error, "cannot accept a {} connection", self.what);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            match self.admit(address) {
                Ok(ticket) => return (stream, ticket),
                Err(refusal) => {
                    throttled!(WARN, peer = %address, "refused a {} connection: {refusal}", self.what);
                    if let Some(reply) = self.refusal {
                        // Best effort: a reply that does not fit the socket buffer is cut.
                        L::refuse(&stream, reply);
                    }
                }
            }
        }
    }

    /// Takes a slot for `peer`, if the limits allow.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, Refusal> {
        let limits = self.limits;
        let mut held = self.held();
        let total = held.total;
        let entry = held.peers.entry(peer).or_insert_with(|| Peer {
            connections: 0,
            share: Arc::default(),
        });
        let refusal = if entry.connections >= limits.per_peer {
            Some(Refusal::PeerFull(limits.per_peer))
        } else if total >= limits.connections.saturating_sub(limits.reserve)
            && entry.connections >= RESERVE_PEER_CONNECTIONS
        {
            Some(Refusal::ReserveOnly(limits.reserve))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            if entry.connections == 0 {
                held.peers.remove(&peer);
            }
            return Err(refusal);
        }
        entry.connections += 1;
        let share = entry.share.clone();
        held.total += 1;
        Ok(Ticket {
            admission: self.clone(),
            peer,
            share,
        })
    }

    /// Completes when fewer than the most connections are held.
    async fn slot_free(&self) {
        loop {
            let freed = self.freed.notified();
            if self.held().total < self.limits.connections {
                return;
            }
            freed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_cannot_take_the_reserve_or_more_than_its_share() {
        let admission = Admission::new(
            AdmissionLimits {
                connections: 32,
                per_peer: 28,
                reserve: 16,
            },
            "test",
            None,
        );
        let flood: IpAddr = [127, 0, 0, 2].into();
        let tickets: Vec<Ticket> = (0..16).map(|_| admission.admit(flood).unwrap()).collect();
        assert_eq!(admission.admit(flood).err(), Some(Refusal::ReserveOnly(16)));
        let newcomer: IpAddr = [127, 0, 0, 3].into();
        let served: Vec<Ticket> = (0..RESERVE_PEER_CONNECTIONS)
            .map(|_| admission.admit(newcomer).unwrap())
            .collect();
        assert_eq!(
            admission.admit(newcomer).err(),
            Some(Refusal::ReserveOnly(16))
        );
        drop(tickets);
        assert!(admission.admit(flood).is_ok(), "its slots came back");
        assert_eq!(admission.held().total, RESERVE_PEER_CONNECTIONS);
        drop(served);
        assert_eq!(admission.held().peers.len(), 0, "freed peers are forgotten");
    }

    #[test]
    fn a_peer_holds_at_most_its_share() {
        let admission = Admission::new(AdmissionLimits::new(1_000, 2), "test", None);
        let peer: IpAddr = [10, 0, 0, 1].into();
        let _held = [
            admission.admit(peer).unwrap(),
            admission.admit(peer).unwrap(),
        ];
        assert_eq!(admission.admit(peer).err(), Some(Refusal::PeerFull(2)));
    }
}
