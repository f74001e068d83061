//! The memory budget of work in flight: request streams open and request bytes buffered, across
//! every connection of both listeners, with a share per peer address so that one client cannot
//! take it all. Each stream costs a few KB in the HTTP/2 and gRPC machinery, each buffered byte
//! a byte: bounding both bounds what clients can make the process hold. Work over budget is
//! refused at once (the faces answer RESOURCE_EXHAUSTED or 503), never queued.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What may be in flight at once.
#[derive(Clone, Copy, Debug)]
pub struct InFlightLimits {
    /// Open request streams (gRPC calls, HTTP requests), all peers together.
    pub streams: usize,
    /// ... and from one peer address.
    pub streams_per_peer: usize,
    /// Open `grpc.health.v1.Health/Watch` streams, which last as long as the client wants:
    /// a part of `streams` that they alone cannot exceed.
    pub watches: usize,
    /// Request body bytes read and not yet released, all peers together.
    pub bytes: usize,
    /// ... and from one peer address.
    pub bytes_per_peer: usize,
}

/// The budget: what is in flight now, against [`InFlightLimits`].
#[derive(Debug)]
pub struct InFlight {
    limits: InFlightLimits,
    streams: Gauge,
    watches: Gauge,
    bytes: Gauge,
}

/// One peer address's share of the budget, kept as long as the peer has a connection or a
/// stream open.
#[derive(Debug, Default)]
pub struct PeerShare {
    streams: Gauge,
    bytes: Gauge,
}

/// A count that never passes its maximum.
#[derive(Debug, Default)]
struct Gauge(AtomicUsize);

impl Gauge {
    fn take(&self, amount: usize, max: usize) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(amount).filter(|&total| total <= max)
            })
            .is_ok()
    }

    fn give(&self, amount: usize) {
        self.0.fetch_sub(amount, Ordering::AcqRel);
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// Why a stream or its bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverBudget {
    #[error("too many requests in flight ({0} at most); retry later")]
    Streams(usize),
    #[error("too many requests in flight from this address ({0} at most); retry later")]
    PeerStreams(usize),
    #[error("too many health watches open ({0} at most)")]
    Watches(usize),
    #[error("too many request bytes in flight ({0} at most); retry later")]
    Bytes(usize),
    #[error("too many request bytes in flight from this address ({0} at most); retry later")]
    PeerBytes(usize),
}

impl InFlight {
    pub fn new(limits: InFlightLimits) -> InFlight {
        InFlight {
            limits,
            streams: Gauge::default(),
            watches: Gauge::default(),
            bytes: Gauge::default(),
        }
    }

    /// Opens a stream for `peer`; a watch also takes one of the watch places.
    pub fn open(self: &Arc<Self>, peer: Arc<PeerShare>, watch: bool) -> Result<Stream, OverBudget> {
        let limits = &self.limits;
        if !self.streams.take(1, limits.streams) {
            return Err(OverBudget::Streams(limits.streams));
        }
        if !peer.streams.take(1, limits.streams_per_peer) {
            self.streams.give(1);
            return Err(OverBudget::PeerStreams(limits.streams_per_peer));
        }
        if watch && !self.watches.take(1, limits.watches) {
            self.streams.give(1);
            peer.streams.give(1);
            return Err(OverBudget::Watches(limits.watches));
        }
        Ok(Stream {
            budget: self.clone(),
            peer,
            watch,
            bytes: AtomicUsize::new(0),
        })
    }

    /// Streams open now, all peers together.
    pub fn streams(&self) -> usize {
        self.streams.get()
    }

    /// Request bytes held now, all peers together.
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }
}

/// An open stream's place in the budget, and the bytes it holds; all given back when dropped.
pub struct Stream {
    budget: Arc<InFlight>,
    peer: Arc<PeerShare>,
    watch: bool,
    bytes: AtomicUsize,
}

impl Stream {
    /// Counts `amount` more request bytes as held by this stream until it ends.
    pub fn hold(&self, amount: usize) -> Result<(), OverBudget> {
        let limits = &self.budget.limits;
        if !self.budget.bytes.take(amount, limits.bytes) {
            return Err(OverBudget::Bytes(limits.bytes));
        }
        if !self.peer.bytes.take(amount, limits.bytes_per_peer) {
            self.budget.bytes.give(amount);
            return Err(OverBudget::PeerBytes(limits.bytes_per_peer));
        }
        self.bytes.fetch_add(amount, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let bytes = *self.bytes.get_mut();
        self.budget.bytes.give(bytes);
        self.peer.bytes.give(bytes);
        self.budget.streams.give(1);
        self.peer.streams.give(1);
        if self.watch {
            self.budget.watches.give(1);
        }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("watch", &self.watch)
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Arc<InFlight> {
        Arc::new(InFlight::new(InFlightLimits {
            streams: 4,
            streams_per_peer: 3,
            watches: 1,
            bytes: 100,
            bytes_per_peer: 60,
        }))
    }

    #[test]
    fn a_peer_takes_its_share_and_others_the_rest() {
        let budget = budget();
        let (greedy, other) = (
            Arc::new(PeerShare::default()),
            Arc::new(PeerShare::default()),
        );
        let held: Vec<Stream> = (0..3)
            .map(|_| budget.open(greedy.clone(), false).unwrap())
            .collect();
        assert_eq!(
            budget.open(greedy.clone(), false).unwrap_err(),
            OverBudget::PeerStreams(3)
        );
        let served = budget.open(other.clone(), false).unwrap();
        assert_eq!(
            budget.open(other.clone(), false).unwrap_err(),
            OverBudget::Streams(4)
        );
        drop(held);
        assert_eq!(budget.streams(), 1);
        drop(served);
        assert_eq!(budget.streams(), 0);
    }

    #[test]
    fn watches_and_bytes_are_bounded_and_given_back() {
        let budget = budget();
        let peer = Arc::new(PeerShare::default());
        let watch = budget.open(peer.clone(), true).unwrap();
        assert_eq!(
            budget.open(peer.clone(), true).unwrap_err(),
            OverBudget::Watches(1)
        );
        watch.hold(50).unwrap();
        assert_eq!(watch.hold(20).unwrap_err(), OverBudget::PeerBytes(60));
        let other = budget.open(Arc::new(PeerShare::default()), false).unwrap();
        other.hold(50).unwrap();
        assert_eq!(other.hold(1).unwrap_err(), OverBudget::Bytes(100));
        drop(watch);
        assert_eq!(budget.bytes(), 50);
        assert!(budget.open(peer, true).is_ok(), "the watch place came back");
    }
}
