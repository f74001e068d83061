//! Hot reload: watch the config directory (the parent directory when the config path names a
//! file) and reload after each burst of changes, in one task, so reloads never overlap and the
//! last edit always wins. Each outcome goes to the `apply` callback the watcher was given.
//!
//! Any event counts as "maybe changed" (see [`crate::watch`] for why the directory is
//! watched); the reload rereads the files and does nothing when their contents are the same.
//! A [`ReloadRequests`] (SIGHUP) makes the next pass load and apply the files even when they
//! are the same.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Reload, Reloader};
use crate::watch::{Changes, DirectoryWatch, directory_of, keep_watching};

/// What the watcher does with each reload's outcome; it runs on the reload's blocking thread.
pub type Apply = Box<dyn FnMut(Reload) + Send>;

/// How often the files are reread without any event: a safety net for filesystems that send
/// no events (some network and container mounts), for a directory that was replaced, and for a
/// watch that could not be set up. Rereading a config costs milliseconds.
const RESCAN_INTERVAL: Duration = Duration::from_secs(10);

/// Owns the reload loop: file events in, [`Reloader::reload`] outcomes out to `apply`.
pub struct ConfigWatcher {
    reloader: Reloader,
    apply: Apply,
    /// Woken by the watch callback and by reload requests; one stored permit stands for any
    /// number of events.
    changed: Arc<Notify>,
    requests: ReloadRequests,
    watch: Option<DirectoryWatch>,
}

/// Asks the watcher to load the config again, changed or not (what SIGHUP does). Clones ask
/// the same watcher; a request made before the watcher starts is kept for it.
#[derive(Clone, Debug, Default)]
pub struct ReloadRequests {
    wake: Arc<Notify>,
    pending: Arc<AtomicBool>,
}

impl ReloadRequests {
    pub fn request(&self) {
        self.pending.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn take(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }
}

impl ConfigWatcher {
    /// Starts watching the reloader's path at once, so that edits made from now on are seen.
    pub fn start(reloader: Reloader, apply: Apply, requests: ReloadRequests) -> ConfigWatcher {
        let mut watcher = ConfigWatcher {
            reloader,
            apply,
            changed: requests.wake.clone(),
            requests,
            watch: None,
        };
        watcher.keep_watching();
        watcher
    }

    /// Reloads after every burst of changes until `shutdown` is cancelled. The first pass
    /// rereads at once, catching edits made between the first load and the watch.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut changes = Changes::new(self.changed.clone(), RESCAN_INTERVAL);
        while changes.next(&shutdown).await {
            if self.requests.take() {
                tracing::info!(path = %self.reloader.path().display(), "reloading the config, as asked (SIGHUP)");
                self.reloader.forget();
            }
            self = match self.reload_off_runtime().await {
                Ok(watcher) => watcher,
                Err(error) => {
                    tracing::error!(%error, "the config reload task failed; limits will no longer be reloaded");
                    return;
                }
            };
            self.keep_watching();
        }
    }

    /// Reloads and applies on a blocking thread: reading and compiling a large config takes
    /// long enough (a few hundred milliseconds for 10,000 rules) to hold up the requests sharing
    /// a runtime thread, and so does freeing the config it replaces.
    async fn reload_off_runtime(mut self) -> Result<ConfigWatcher, tokio::task::JoinError> {
        tokio::task::spawn_blocking(move || {
            let outcome = self.reloader.reload();
            (self.apply)(outcome);
            self
        })
        .await
    }

    /// (Re)starts the watch when there is none or the directory is no longer the one watched.
    fn keep_watching(&mut self) {
        let directory = directory_of(self.reloader.path());
        keep_watching(&mut self.watch, &directory, &self.changed, "config");
    }
}
