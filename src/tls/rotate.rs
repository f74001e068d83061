//! Certificate rotation: watch the directories of a listener's certificate, key and CA, and
//! after each burst of changes reread them. New files that make a good configuration replace
//! the one in force for new handshakes (established connections keep theirs); files that do
//! not are refused and the previous configuration stays. Each outcome goes to the `apply`
//! callback, which logs and reports it.
//!
//! cert-manager and Kubernetes Secret mounts rotate by swapping the `..data` symlink, editors
//! and scripts write in place; both change the watched directory (see [`crate::watch`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Contents, ServerTls, TlsError};
use crate::watch::{Changes, DirectoryWatch, directory_of, keep_watching};

/// How often the files are reread without any event (the config watcher's safety net, for
/// filesystems that send no events). Reading three small files costs microseconds.
const RESCAN_INTERVAL: Duration = Duration::from_secs(10);

/// The outcome of rereading a listener's TLS files after they changed.
#[derive(Debug)]
pub enum CertReload {
    /// New files, now served to new connections.
    Loaded,
    /// New files that cannot be served; the previous ones stay in use.
    Rejected(TlsError),
}

/// What the watcher does with each outcome.
pub type Apply = Box<dyn FnMut(CertReload) + Send>;

pub struct CertWatcher {
    tls: Arc<ServerTls>,
    /// The files' bytes as last read, good or not: the same bytes are not reported twice.
    seen: Contents,
    apply: Apply,
    changed: Arc<Notify>,
    /// One watch per distinct directory of the certificate, the key and the CA.
    watches: Vec<(PathBuf, Option<DirectoryWatch>)>,
}

impl CertWatcher {
    /// Starts watching `tls`'s files at once; the bytes it was loaded from are the baseline.
    pub fn start(tls: Arc<ServerTls>, apply: Apply) -> CertWatcher {
        let options = tls.options();
        let mut directories: Vec<PathBuf> = [Some(&options.cert), Some(&options.key)]
            .into_iter()
            .chain([options.client_ca.as_ref()])
            .flatten()
            .map(|path| directory_of(path))
            .collect();
        directories.sort();
        directories.dedup();
        let seen = options.read().unwrap_or_default();
        let mut watcher = CertWatcher {
            tls,
            seen,
            apply,
            changed: Arc::new(Notify::new()),
            watches: directories.into_iter().map(|dir| (dir, None)).collect(),
        };
        watcher.keep_watching();
        watcher
    }

    /// Rereads after every burst of changes until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut changes = Changes::new(self.changed.clone(), RESCAN_INTERVAL);
        while changes.next(&shutdown).await {
            if let Some(outcome) = self.reload() {
                (self.apply)(outcome);
            }
            self.keep_watching();
        }
    }

    /// Rereads the files; `None` when their bytes are the ones last seen.
    fn reload(&mut self) -> Option<CertReload> {
        let options = self.tls.options();
        let contents = match options.read() {
            Ok(contents) => contents,
            // A file that is missing for a moment (being replaced) is reported once, like any
            // other refused change, and forgotten so that its return is a change.
            Err(error) => {
                let first = self.seen != Contents::default();
                self.seen = Contents::default();
                return first.then_some(CertReload::Rejected(error));
            }
        };
        if contents == self.seen {
            return None;
        }
        let outcome = match options.build(&contents) {
            Ok(config) => {
                self.tls.replace(config);
                CertReload::Loaded
            }
            Err(error) => CertReload::Rejected(error),
        };
        self.seen = contents;
        Some(outcome)
    }

    fn keep_watching(&mut self) {
        for (directory, watch) in &mut self.watches {
            keep_watching(watch, directory, &self.changed, "TLS certificate");
        }
    }
}
