//! The one connection to Redis that the store and the registry share, kept alive by a
//! background task.
//!
//! Requests never wait for a connection: without one they fail at once with `Unavailable`, and
//! every call is bounded by a deadline (the counting calls', kept by the store's coalescer) or a
//! timeout. The keeper task is the only one that dials, so a
//! recovering Redis sees one attempt at a time from each node, spaced by jittered exponential
//! backoff. It pings every [`PING_INTERVAL`], and at once when a request failed; a failed ping
//! (or an error that says the connection is dead or points at a replica, or a sentinel's
//! announcement that the master moved) makes it dial a new connection. A single server's failed
//! connection is dropped at once, so requests fail fast until the new one works; a Cluster's is
//! kept meanwhile, for the masters that still answer.
//! The keeper also owns the store's half of `/health`: unreachable on a failure, reachable again
//! after a good ping or dial. Every request's outcome is reported too (most of them failing is
//! a failing store, however it answers PING), and each new connection checks that Redis lets
//! this user run scripts, which every count needs.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::{ErrorKind, RedisError, ServerErrorKind};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::cluster::SlotMap;
use super::connect::{Connection, RedisSetupError, Target, redact};
use super::options::RedisOptions;
use crate::health::StoreHealth;
use crate::secret::urls_without_passwords;
use crate::store::StoreError;

/// How often a healthy connection is checked; also bounds how long `/health` can miss a dead
/// Redis that no request has touched.
const PING_INTERVAL: Duration = Duration::from_secs(1);

pub struct RedisLink {
    current: ArcSwapOption<Connection>,
    /// On a Cluster: which master owns each slot, refreshed with every ping.
    slots: ArcSwapOption<SlotMap>,
    /// Wakes the keeper early: a request failed.
    trouble: Notify,
    /// Set with `trouble` when the connection itself must be replaced, not just checked.
    redial: AtomicBool,
    /// Counts successful dials, so that others (the registry) can act on a reconnect.
    dials: watch::Sender<u64>,
    health: Arc<StoreHealth>,
    options: RedisOptions,
    cluster: bool,
}

impl RedisLink {
    /// Builds the client and tries one connection, bounded by the connect timeout. Failing to
    /// connect is not an error: the keeper goes on trying until `stop` fires.
    pub async fn start(
        options: &RedisOptions,
        health: Arc<StoreHealth>,
        stop: CancellationToken,
    ) -> Result<Arc<RedisLink>, RedisSetupError> {
        let mut target = Target::new(options)?;
        let link = Arc::new(RedisLink {
            current: ArcSwapOption::empty(),
            slots: ArcSwapOption::empty(),
            trouble: Notify::new(),
            redial: AtomicBool::new(false),
            dials: watch::Sender::new(0),
            health,
            options: options.clone(),
            cluster: target.is_cluster(),
        });
        link.health.set_reachable(false);
        if let Err(error) = link.dial(&mut target).await {
            tracing::warn!(%error, "cannot reach Redis yet; requests answer UNAVAILABLE until it is there");
            link.trouble(true);
        }
        if let Some(switches) = target.master_switches() {
            let listener = Arc::downgrade(&link);
            let on_switch = Arc::new(move || {
                if let Some(link) = listener.upgrade() {
                    link.master_moved();
                }
            });
            switches.spawn(on_switch, stop.clone());
        }
        tokio::spawn(keep(link.clone(), target, stop));
        Ok(link)
    }

    /// The Cluster's slot map (empty until first read); `None` outside a Cluster.
    pub fn slot_map(&self) -> Option<Arc<SlotMap>> {
        self.cluster
            .then(|| self.slots.load_full().unwrap_or_default())
    }

    /// Notified after every successful (re)connection.
    pub fn reconnects(&self) -> watch::Receiver<u64> {
        self.dials.subscribe()
    }

    /// Runs one request on the current connection within the request timeout; its outcome
    /// counts in the store's health.
    pub async fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let outcome = self.run_within(self.options.timeout, work).await;
        self.report(&outcome);
        outcome
    }

    /// Counts a request's outcome in the store's health: most requests failing is a failing
    /// store, however it answers PING.
    fn report<T>(&self, outcome: &Result<T, StoreError>) {
        let failure = outcome.as_ref().err().map(ToString::to_string);
        self.health.record_call(failure.as_deref());
    }

    /// Counts the outcome of a counting call that was given `budget` (sent another way than
    /// [`RedisLink::run`]: coalesced), unless it tells nothing about the store: a call cut by a
    /// caller who allowed less than the request timeout was cut by the caller's haste, or a
    /// client sending tiny deadlines could make a working store look failing. Errors Redis
    /// answered, and calls that outlasted the request timeout, still count.
    pub(super) fn report_within<T>(&self, budget: Duration, outcome: &Result<T, StoreError>) {
        if matches!(outcome, Err(StoreError::Timeout(_))) && !self.tells_about_store(budget) {
            return;
        }
        self.report(outcome);
    }

    /// Whether a call given `budget` and not answered within it says the store is slow: the
    /// caller waited at least as long as the request timeout.
    pub(super) fn tells_about_store(&self, budget: Duration) -> bool {
        budget >= self.options.timeout
    }

    /// Runs a management request (listing, registry) within the connect timeout: such requests
    /// may take several round trips, and nobody's traffic waits for them.
    pub async fn run_slow<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.run_within(self.slow_timeout(), work).await
    }

    /// Runs one request on the current connection, answered by `deadline`.
    pub(super) async fn run_by<T, F, Fut>(
        &self,
        deadline: Instant,
        work: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.run_within(timeout, work).await
    }

    async fn run_within<T, F, Fut>(&self, timeout: Duration, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(connection) = self.current.load_full() else {
            return Err(StoreError::Unavailable("not connected to Redis".into()));
        };
        match tokio::time::timeout(timeout, work(Connection::clone(&connection))).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.classify(&error)),
            Err(_) => {
                self.trouble(false);
                Err(StoreError::Timeout(timeout))
            }
        }
    }

    /// The connection requests use now, if there is one.
    pub(super) fn connection(&self) -> Option<Arc<Connection>> {
        self.current.load_full()
    }

    /// Longest wait for one request's counters when its caller set no deadline.
    pub(super) fn timeout(&self) -> Duration {
        self.options.timeout
    }

    /// Longest wait for a management request (see [`RedisLink::run_slow`]).
    pub(super) fn slow_timeout(&self) -> Duration {
        self.options.connect_timeout.max(self.options.timeout)
    }

    /// A request sent on the connection was not answered within the request timeout: check the
    /// connection.
    pub(super) fn timed_out(&self) {
        self.trouble(false);
    }

    /// Whether this user may run scripts, which every count needs: an ACL without
    /// `@scripting` answers NOPERM to each of them, while PING works. Recorded in health.
    async fn check_scripts(&self) {
        let answered = self
            .run_within(self.options.connect_timeout, |mut connection| async move {
                redis::cmd("EVAL")
                    .arg("return 1")
                    .arg(0)
                    .query_async::<i64>(&mut connection)
                    .await
            })
            .await;
        let refusal = match answered {
            Err(StoreError::Protocol(error)) => Some(format!(
                "Redis refuses to run this service's scripts ({error}); give the Redis user the right to run them (ACL +@scripting, or +eval +evalsha +script)"
            )),
            _ => None,
        };
        if let Some(refusal) = &refusal {
            crate::throttled!(ERROR, "{refusal}");
        }
        self.health.set_refusal(refusal);
    }

    /// Classifies a failed request: the store is unreachable (transient) or said something the
    /// service did not expect.
    pub(super) fn classify(&self, error: &RedisError) -> StoreError {
        let text = redact(&error.to_string(), self.options.urls.expose());
        // A timeout says nothing about the connection (Redis may just be slow): checked first,
        // as redis-rs reports it as an I/O error.
        if error.is_timeout() || error.is_cluster_error() || busy(error) {
            self.trouble(false);
            StoreError::Unavailable(text)
        } else if needs_new_connection(error) {
            self.trouble(true);
            StoreError::Unavailable(text)
        } else {
            StoreError::Protocol(text)
        }
    }

    /// The sentinels moved the master: dial the new one now.
    fn master_moved(&self) {
        self.trouble(true);
    }

    fn trouble(&self, redial: bool) {
        self.health.set_reachable(false);
        if redial {
            self.redial.store(true, Ordering::Relaxed);
        }
        self.trouble.notify_one();
    }

    /// One bounded connection attempt; installs the connection and reports it when it works,
    /// or says why not (without credentials).
    async fn dial(&self, target: &mut Target) -> Result<(), String> {
        // A sentinel setup asks a sentinel, then connects to the master: two steps.
        let bound = self.options.connect_timeout * 2;
        match tokio::time::timeout(bound, target.dial(&self.options)).await {
            Ok(Ok(connection)) => {
                self.current.store(Some(Arc::new(connection)));
                self.redial.store(false, Ordering::Relaxed);
                self.refresh_slots().await;
                self.health.set_reachable(true);
                self.check_scripts().await;
                self.dials.send_modify(|dials| *dials += 1);
                Ok(())
            }
            Ok(Err(error)) => Err(format!(
                "{} ({})",
                redact(&error.to_string(), self.options.urls.expose()),
                self.shown_urls()
            )),
            Err(_) => Err(format!(
                "no connection within {} ({})",
                humantime::format_duration(bound),
                self.shown_urls()
            )),
        }
    }

    /// The `--redis-url` entries without their passwords: where the link dials.
    fn shown_urls(&self) -> String {
        urls_without_passwords(self.options.urls.expose())
    }

    /// Lets go of a single server's connection that failed its ping: requests then fail at once
    /// instead of waiting out their timeout, and what was queued on it is freed. A Cluster
    /// connection is kept, as it still serves the masters that answer.
    fn drop_single_connection(&self) {
        if !self.cluster {
            self.current.store(None);
        }
    }

    /// Reads the Cluster's slot map again; a failure keeps the old one (the next ping retries).
    async fn refresh_slots(&self) {
        if !self.cluster {
            return;
        }
        let fetched = self
            .run_within(self.options.connect_timeout, |connection| async move {
                match connection {
                    Connection::Cluster(mut cluster) => {
                        SlotMap::fetch(&mut cluster).await.map(Some)
                    }
                    Connection::Node(_) => Ok(None),
                }
            })
            .await;
        if let Ok(Some(map)) = fetched {
            self.slots.store(Some(Arc::new(map)));
        }
    }

    /// Whether the current connection answers a PING in time.
    async fn ping(&self) -> bool {
        let bound = self.options.connect_timeout;
        let answered = self
            .run_within(bound, |mut connection| async move {
                redis::cmd("PING").query_async::<()>(&mut connection).await
            })
            .await;
        answered.is_ok() && !self.redial.load(Ordering::Relaxed)
    }
}

/// Errors after which this connection is no use: it broke, or it leads to a replica (a sentinel
/// failover demoted the master).
fn needs_new_connection(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
        || matches!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly)
                | ErrorKind::Server(ServerErrorKind::MasterDown)
                | ErrorKind::ClusterConnectionNotFound
        )
}

/// Redis is there but cannot serve yet: it is loading its data set.
fn busy(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::BusyLoading)
}

/// The keeper: checks the connection, and replaces it when it fails, until `stop` fires.
async fn keep(link: Arc<RedisLink>, mut target: Target, stop: CancellationToken) {
    let mut backoff = Backoff::new();
    loop {
        let healthy = backoff.failures() == 0;
        let pause = if healthy {
            PING_INTERVAL
        } else {
            backoff.pause()
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
            () = link.trouble.notified(), if healthy => {}
        }
        if healthy && link.ping().await {
            link.refresh_slots().await;
            link.health.set_reachable(true);
            if link.health.problem().is_some() {
                // Rights can be given without a reconnect: look again.
                link.check_scripts().await;
            }
            continue;
        }
        link.health.set_reachable(false);
        link.drop_single_connection();
        match link.dial(&mut target).await {
            Ok(()) => {
                let failures = backoff.succeeded();
                if failures > 0 {
                    tracing::info!(attempts = failures + 1, "reconnected to Redis");
                }
            }
            Err(error) => {
                if backoff.failed() {
                    tracing::warn!(%error, attempts = backoff.failures(), "cannot reach Redis; requests answer UNAVAILABLE until it is back");
                }
            }
        }
    }
}
