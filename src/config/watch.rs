//! Hot reload: watch the config directory (the parent directory when the config path names a
//! file) and reload after each burst of changes, in one task, so reloads never overlap and the
//! last edit always wins. Each outcome goes to the `apply` callback the watcher was given.
//!
//! The directory is watched rather than the files: a ConfigMap update swaps the `..data` symlink
//! and an editor's save renames a new file over the old one, and a watch on the old file sees
//! neither. Any event counts as "maybe changed"; the reload rereads the files and does nothing
//! when their contents are the same. A [`ReloadRequests`] (SIGHUP) makes the next pass load
//! and apply the files even when they are the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Reload, Reloader};

/// What the watcher does with each reload's outcome; it runs on the reload's blocking thread.
pub type Apply = Box<dyn FnMut(Reload) + Send>;

/// Quiet time that ends a burst: a save or a ConfigMap swap is several events within a few
/// milliseconds, and an edit should still apply well within a second.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Longest a reload waits for quiet: a directory that is never quiet (a log file written next
/// to `--config`) must not hold reloads back for ever.
const MAX_DEFER: Duration = Duration::from_secs(1);

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

/// A live watch on one directory, and which directory it was when the watch began.
struct DirectoryWatch {
    _watcher: RecommendedWatcher,
    identity: DirectoryIdentity,
}

/// Device and inode: a directory deleted and made again, or a symlink pointed elsewhere, is a
/// different directory that needs a new watch.
type DirectoryIdentity = (u64, u64);

impl ConfigWatcher {
    /// Starts watching the reloader's path at once, so that edits made from now on are seen.
    pub fn start(reloader: Reloader, apply: Apply, requests: ReloadRequests) -> ConfigWatcher {
        let mut watcher = ConfigWatcher {
            reloader,
            apply,
            changed: Arc::new(Notify::new()),
            requests,
            watch: None,
        };
        watcher.keep_watching();
        watcher
    }

    /// Reloads after every burst of changes until `shutdown` is cancelled. The first pass
    /// rereads at once, catching edits made between the first load and the watch.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut rescan = tokio::time::interval(RESCAN_INTERVAL);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let woken_by_event = tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.changed.notified() => true,
                () = self.requests.wake.notified() => false,
                _ = rescan.tick() => false,
            };
            if self.requests.take() {
                tracing::info!(path = %self.reloader.path().display(), "reloading the config, as asked (SIGHUP)");
                self.reloader.forget();
            }
            if woken_by_event {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = settle(&self.changed) => {}
                }
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
        let directory = watched_directory(self.reloader.path());
        let Some(identity) = identify(&directory) else {
            self.watch = None;
            return;
        };
        if self.watch.as_ref().map(|watch| watch.identity) == Some(identity) {
            return;
        }
        self.watch = match watch(&directory, &self.changed) {
            Ok(watcher) => {
                // Edits made before the watch began raised no event: reread once more.
                self.changed.notify_one();
                Some(DirectoryWatch {
                    _watcher: watcher,
                    identity,
                })
            }
            Err(error) => {
                tracing::warn!(directory = %directory.display(), %error, interval = ?RESCAN_INTERVAL, "cannot watch the config directory; rereading it periodically instead");
                None
            }
        };
    }
}

/// Waits until no event has come for [`DEBOUNCE`], or [`MAX_DEFER`] has passed.
async fn settle(changed: &Notify) {
    let give_up = Instant::now() + MAX_DEFER;
    loop {
        tokio::select! {
            () = changed.notified() => if Instant::now() >= give_up { return },
            () = tokio::time::sleep(DEBOUNCE) => return,
        }
    }
}

fn watch(directory: &Path, changed: &Arc<Notify>) -> notify::Result<RecommendedWatcher> {
    let changed = changed.clone();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if is_read_only(&event.kind) => {}
            Ok(_) => changed.notify_one(),
            Err(error) => {
                tracing::warn!(%error, "config watch error; rereading the config");
                changed.notify_one();
            }
        })?;
    watcher.watch(directory, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Opening and reading files changes nothing, and the reload's own reads must not wake it up
/// again. Closing a file that was written is kept: it marks the end of a write.
fn is_read_only(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(access) if *access != AccessKind::Close(AccessMode::Write))
}

/// The directory whose entries make up the config: `path` itself, or the parent of a file (or
/// of a directory that does not exist yet, so that making it is seen).
fn watched_directory(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn identify(directory: &Path) -> Option<DirectoryIdentity> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(directory).ok()?;
    Some((metadata.dev(), metadata.ino()))
}
