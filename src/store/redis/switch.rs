//! Sentinel's `+switch-master` announcements: when the sentinels move our master elsewhere, the
//! link is told at once, so that it dials the new master.
//!
//! Without this a node would go on writing to the old master until Sentinel demotes it, which
//! it does only when it next looks at that server (up to 10 s later); the counts written there
//! meanwhile would be lost when it resyncs as a replica. Each sentinel is listened to by its own
//! task, which resubscribes with backoff when its connection ends.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::{
    Client, ConnectionInfo, ErrorKind, RedisConnectionInfo, RedisError, RedisResult,
    TlsCertificates,
};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;

/// What to do when the sentinels move our master: called from the listening tasks.
pub type OnSwitch = Arc<dyn Fn() + Send + Sync>;

/// The channel on which a sentinel announces `<master name> <old ip> <old port> <new ip> <new
/// port>` after a failover.
const CHANNEL: &str = "+switch-master";

/// Where to listen, and for which master.
#[derive(Clone)]
pub struct MasterSwitches {
    sentinels: Vec<Client>,
    master: String,
    connect_timeout: Duration,
}

impl MasterSwitches {
    /// Clients for each sentinel of `addresses`, authenticated with `password` (sentinels have
    /// their own) and using `certificates` when the addresses are TLS.
    pub fn new(
        addresses: &[ConnectionInfo],
        master: &str,
        password: Option<&str>,
        certificates: Option<&TlsCertificates>,
        connect_timeout: Duration,
    ) -> RedisResult<MasterSwitches> {
        let sentinels = addresses
            .iter()
            .map(|address| {
                let mut settings = RedisConnectionInfo::default();
                if let Some(password) = password {
                    settings = settings.set_password(password);
                }
                let info = address.clone().set_redis_settings(settings);
                match certificates {
                    Some(certificates) => Client::build_with_tls(info, certificates.clone()),
                    None => Client::open(info),
                }
            })
            .collect::<RedisResult<_>>()?;
        Ok(MasterSwitches {
            sentinels,
            master: master.to_string(),
            connect_timeout,
        })
    }

    /// Listens on every sentinel until `stop` fires; each switch of our master calls
    /// `on_switch`.
    pub fn spawn(self, on_switch: OnSwitch, stop: CancellationToken) {
        for sentinel in self.sentinels {
            tokio::spawn(listen(
                sentinel,
                self.master.clone(),
                on_switch.clone(),
                self.connect_timeout,
                stop.clone(),
            ));
        }
    }
}

/// Follows one sentinel, subscribing again with backoff whenever its connection ends.
async fn listen(
    sentinel: Client,
    master: String,
    on_switch: OnSwitch,
    connect_timeout: Duration,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            ended = follow(&sentinel, &master, &*on_switch, connect_timeout) => match ended {
                Ok(()) => {
                    backoff.succeeded();
                }
                // Only failovers are slower to follow meanwhile.
                Err(error) => if backoff.failed() {
                    tracing::warn!(%error, attempts = backoff.failures(), "cannot listen to a sentinel for master switches");
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff.pause()) => {}
        }
    }
}

/// Subscribes on one sentinel and calls `on_switch` for each switch of `master`, until the
/// connection ends.
async fn follow(
    sentinel: &Client,
    master: &str,
    on_switch: &(dyn Fn() + Send + Sync),
    connect_timeout: Duration,
) -> RedisResult<()> {
    let mut pubsub = tokio::time::timeout(connect_timeout, sentinel.get_async_pubsub())
        .await
        .map_err(|_| RedisError::from((ErrorKind::Io, "no sentinel connection in time")))??;
    pubsub.subscribe(CHANNEL).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let announcement: String = message.get_payload()?;
        if announcement.split(' ').next() == Some(master) {
            tracing::info!(%announcement, "Sentinel moved the master; connecting to the new one");
            on_switch();
        }
    }
    Ok(())
}
