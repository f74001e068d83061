//! Sentinel's `+switch-master` announcements: when the sentinels move our master elsewhere, the
//! link dials the new master at once.
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

use super::link::{RedisLink, backoff};

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

    /// Listens on every sentinel until `stop` fires; a switch of our master makes `link` redial.
    pub fn spawn(self, link: Arc<RedisLink>, stop: CancellationToken) {
        for sentinel in self.sentinels {
            tokio::spawn(listen(
                sentinel,
                self.master.clone(),
                link.clone(),
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
    link: Arc<RedisLink>,
    connect_timeout: Duration,
    stop: CancellationToken,
) {
    let jitter = foldhash::fast::RandomState::default();
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            ended = follow(&sentinel, &master, &link, connect_timeout) => match ended {
                Ok(()) => failures = 1,
                Err(error) => {
                    failures += 1;
                    // Only failovers are slower to follow meanwhile: logged on the 1st, 2nd,
                    // 4th... failure in a row.
                    if failures.is_power_of_two() {
                        tracing::warn!(%error, attempts = failures, "cannot listen to a sentinel for master switches");
                    }
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff(failures, &jitter)) => {}
        }
    }
}

/// Subscribes on one sentinel and tells `link` of each switch of `master`, until the
/// connection ends.
async fn follow(
    sentinel: &Client,
    master: &str,
    link: &RedisLink,
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
            link.master_moved();
        }
    }
    Ok(())
}
