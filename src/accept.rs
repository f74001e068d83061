//! Accepting TCP connections for a listener that serves a bounded number at once: wait for a
//! free slot, then accept. After a failed accept (out of file descriptors, say) it pauses before
//! trying again instead of spinning. The gRPC and the HTTP listener both accept this way.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Pause after a failed accept before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connection slots of one listener.
pub struct Slots {
    free: Arc<Semaphore>,
    /// The listener's name in logs.
    what: &'static str,
}

impl Slots {
    pub fn new(max: usize, what: &'static str) -> Slots {
        Slots {
            free: Arc::new(Semaphore::new(max)),
            what,
        }
    }

    /// Waits for a free slot and then for the next connection; the slot stays taken until the
    /// permit is dropped. Cancel-safe: a cancelled wait takes nothing. `None` only if the
    /// slots were closed, which nothing does.
    pub async fn accept(
        &self,
        listener: &TcpListener,
    ) -> Option<(TcpStream, OwnedSemaphorePermit)> {
        let slot = self.free.clone().acquire_owned().await.ok()?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => return Some((stream, slot)),
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a {} connection", self.what);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}
