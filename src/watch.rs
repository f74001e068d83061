//! Watching directories for changes to the files in them: the config directory, and the
//! directories of TLS certificates. Any event stands for "maybe changed"; the watcher's owner
//! rereads its files and compares.
//!
//! Directories are watched rather than files: a Kubernetes ConfigMap or Secret update swaps
//! the `..data` symlink and an editor's save renames a new file over the old one, and a watch
//! on the old file sees neither.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Quiet time that ends a burst: a save or a ConfigMap swap is several events within a few
/// milliseconds, and an edit should still apply well within a second.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Longest a reload waits for quiet: a directory that is never quiet (a log file written next
/// to the watched files) must not hold reloads back for ever.
const MAX_DEFER: Duration = Duration::from_secs(1);

/// A live watch on one directory, and which directory it was when the watch began.
pub struct DirectoryWatch {
    _watcher: RecommendedWatcher,
    identity: DirectoryIdentity,
}

/// Device and inode: a directory deleted and made again, or a symlink pointed elsewhere, is a
/// different directory that needs a new watch.
type DirectoryIdentity = (u64, u64);

/// (Re)starts the watch in `slot` when there is none or `directory` is no longer the one
/// watched; events wake `changed`. `what` names the files in the warning when the watch cannot
/// be set up (the owner then relies on rereading periodically).
pub fn keep_watching(
    slot: &mut Option<DirectoryWatch>,
    directory: &Path,
    changed: &Arc<Notify>,
    what: &str,
) {
    let Some(identity) = identify(directory) else {
        *slot = None;
        return;
    };
    if slot.as_ref().map(|watch| watch.identity) == Some(identity) {
        return;
    }
    *slot = match watch(directory, changed) {
        Ok(watcher) => {
            // Edits made before the watch began raised no event: reread once more.
            changed.notify_one();
            Some(DirectoryWatch {
                _watcher: watcher,
                identity,
            })
        }
        Err(error) => {
            tracing::warn!(directory = %directory.display(), %error, "cannot watch the {what} directory; rereading it periodically instead");
            None
        }
    };
}

/// When to reread: after each burst of events on `changed`, and every `rescan` period without
/// any (a safety net for filesystems that send no events).
pub struct Changes {
    changed: Arc<Notify>,
    rescan: Interval,
}

impl Changes {
    pub fn new(changed: Arc<Notify>, rescan: Duration) -> Changes {
        let mut rescan = tokio::time::interval(rescan);
        rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Changes { changed, rescan }
    }

    /// Waits for the next time to reread (the first comes at once); `false` once `shutdown`
    /// is cancelled.
    pub async fn next(&mut self, shutdown: &CancellationToken) -> bool {
        let woken_by_event = tokio::select! {
            () = shutdown.cancelled() => return false,
            () = self.changed.notified() => true,
            _ = self.rescan.tick() => false,
        };
        if woken_by_event {
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = settle(&self.changed) => {}
            }
        }
        true
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

/// The directory whose entries hold `path`: `path` itself when it is a directory, else its
/// parent (also for a path that does not exist yet, so that making it is seen).
pub fn directory_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn watch(directory: &Path, changed: &Arc<Notify>) -> notify::Result<RecommendedWatcher> {
    let changed = changed.clone();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if is_read_only(&event.kind) => {}
            Ok(_) => changed.notify_one(),
            Err(error) => {
                tracing::warn!(%error, "file watch error; rereading");
                changed.notify_one();
            }
        })?;
    watcher.watch(directory, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Opening and reading files changes nothing, and the owner's own reads must not wake it up
/// again. Closing a file that was written is kept: it marks the end of a write.
fn is_read_only(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(access) if *access != AccessKind::Close(AccessMode::Write))
}

fn identify(directory: &Path) -> Option<DirectoryIdentity> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(directory).ok()?;
    Some((metadata.dev(), metadata.ino()))
}
