//! Hot reload: watch the config directory (the parent directory when the config path names a
//! file) and reload after each burst of changes, in one task, so reloads never overlap and the
//! last edit always wins. Each outcome goes to the `apply` callback the watcher was given.
//!
//! Any event counts as "maybe changed" (see [`crate::watch`] for why the directory is
//! watched); the reload rereads the files and does nothing when their contents are the same.

use std::sync::Arc;
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
    /// Set by the watch callback; one stored permit stands for any number of events.
    changed: Arc<Notify>,
    watch: Option<DirectoryWatch>,
}

impl ConfigWatcher {
    /// Starts watching the reloader's path at once, so that edits made from now on are seen.
    pub fn start(reloader: Reloader, apply: Apply) -> ConfigWatcher {
        let mut watcher = ConfigWatcher {
            reloader,
            apply,
            changed: Arc::new(Notify::new()),
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
