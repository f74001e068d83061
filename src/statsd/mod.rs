//! Pushing stats to statsd (the Go service's default sink) with the Go service's names: every
//! flush interval, each counter's gain since the last push (none when it gained nothing), and
//! each ShouldRateLimit response time as a timer. Prometheus `/metrics` is unchanged; this reads
//! the same registry. DogStatsD carries the extra tags as `|#key:value`; plain statsd appends
//! them to each name as `.__key=value`, as the Go service does.
//!
//! Pushes run on a blocking thread: a TCP statsd server that stalls holds no request.

mod names;
mod tcp;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::panic::RefUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use cadence::prelude::*;
use cadence::{BufferedUdpMetricSink, MetricSink, StatsdClient};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use tcp::TcpSink;

/// The Go name of the ShouldRateLimit response-time timer.
const RESPONSE_TIME: &str = "ratelimit_server.ShouldRateLimit.response_time";

/// Bytes per UDP datagram, as the Go service's statsd client packs them (fits a 1500-byte MTU).
const DATAGRAM_BYTES: usize = 1_432;

#[derive(Clone, Debug)]
pub struct StatsdOptions {
    /// `host:port`.
    pub addr: String,
    pub tcp: bool,
    pub flush_interval: Duration,
    pub dogstatsd: bool,
    /// On every stat (the Go service's EXTRA_TAGS).
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatsdError {
    #[error("cannot send statsd over UDP to {addr}: {source}")]
    Udp {
        addr: String,
        source: cadence::MetricError,
    },
    #[error("cannot open a UDP socket for statsd: {0}")]
    Socket(#[from] std::io::Error),
}

pub struct StatsdPusher {
    client: StatsdClient,
    metrics: Arc<Metrics>,
    interval: Duration,
    /// Each counter's total at the last push.
    pushed: HashMap<String, u64>,
    /// `.__key=value` for every tag, sorted by key (plain statsd only).
    suffix: String,
}

impl StatsdPusher {
    /// A pusher for `metrics`; nothing is sent before the first interval has passed.
    pub fn new(
        options: &StatsdOptions,
        metrics: Arc<Metrics>,
    ) -> Result<StatsdPusher, StatsdError> {
        let mut tags = options.tags.clone();
        tags.sort();
        let (client, suffix) = if options.tcp {
            tagged(TcpSink::new(options.addr.clone()), &tags, options.dogstatsd)
        } else {
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            let sink = BufferedUdpMetricSink::with_capacity(&*options.addr, socket, DATAGRAM_BYTES)
                .map_err(|source| StatsdError::Udp {
                    addr: options.addr.clone(),
                    source,
                })?;
            tagged(sink, &tags, options.dogstatsd)
        };
        metrics.response_times.keep();
        Ok(StatsdPusher {
            client,
            metrics,
            interval: options.flush_interval,
            pushed: HashMap::new(),
            suffix,
        })
    }

    /// Pushes every interval until `shutdown`, then once more so that the last counts go too.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let last = tokio::select! {
                () = shutdown.cancelled() => true,
                _ = ticks.tick() => false,
            };
            self = match tokio::task::spawn_blocking(move || {
                self.push();
                self
            })
            .await
            {
                Ok(pusher) => pusher,
                Err(error) => {
                    tracing::error!(%error, "the statsd push failed; stats are no longer pushed");
                    return;
                }
            };
            if last {
                return;
            }
        }
    }

    /// Sends what changed since the last push.
    fn push(&mut self) {
        let families = self.metrics.registry().gather();
        for stat in names::counters(&families, &self.metrics.rule_stats_by_key()) {
            let before = self
                .pushed
                .insert(stat.name.clone(), stat.total)
                .unwrap_or(0);
            let gained = stat.total.saturating_sub(before);
            if gained > 0 {
                let name = format!("{}{}", stat.name, self.suffix);
                let _ = self
                    .client
                    .count(&name, i64::try_from(gained).unwrap_or(i64::MAX));
            }
        }
        let timer = format!("{RESPONSE_TIME}{}", self.suffix);
        for millis in self.metrics.response_times.take() {
            let _ = self.client.time(&timer, u64::from(millis));
        }
        if let Err(error) = self.client.flush() {
            tracing::debug!(%error, "statsd flush failed");
        }
    }
}

/// A client on `sink` with `tags`: DogStatsD tags, or the `.__key=value` suffix to put after
/// each name for plain statsd.
fn tagged<S>(sink: S, tags: &[(String, String)], dogstatsd: bool) -> (StatsdClient, String)
where
    S: MetricSink + Send + Sync + RefUnwindSafe + 'static,
{
    let mut builder = StatsdClient::builder("", sink)
        .with_error_handler(|error| tracing::debug!(%error, "statsd push failed"));
    let mut suffix = String::new();
    for (key, value) in tags {
        if dogstatsd {
            builder = builder.with_tag(key, value);
        } else {
            // The Go service's tag values lose the characters statsd names cannot carry.
            suffix.push_str(&format!(".__{key}={}", value.replace(['.', ':', '|'], "_")));
        }
    }
    (builder.build(), suffix)
}
