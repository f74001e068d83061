//! Reading the config from disk: which files make up the config, and their contents, read once
//! into [`Sources`] so that a reload can tell whether anything changed before it compiles.

use std::io::Read;
use std::path::Path;

use super::files::{self, Layout};
use super::{Config, ConfigError};

/// Files larger than this are refused rather than read: a limits file is a few kilobytes, and a
/// runaway file must not take the service's memory with it.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The config files as read at one moment. Two reads compare equal exactly when `compile` would
/// see the same input.
#[derive(Debug, PartialEq, Eq)]
pub struct Sources {
    /// (name, text) of each file in name order, or why it could not be read.
    files: Vec<Result<(String, String), ConfigError>>,
    /// Entries of the directory that the YAML rule left out.
    skipped: Vec<String>,
    merge_domains: bool,
}

impl Sources {
    /// Reads every config file under `path`. Fails only when the directory itself cannot be
    /// listed; a file that cannot be read is kept as its error.
    pub fn read(path: &Path, layout: Layout) -> Result<Sources, ConfigError> {
        let listing = files::list(path, layout)?;
        let files = listing
            .files
            .iter()
            .map(|file| read_file(file).map(|text| (file.display().to_string(), text)))
            .collect();
        Ok(Sources {
            files,
            skipped: listing.skipped,
            merge_domains: layout.merge_domains,
        })
    }

    /// Says which entries of the directory were left out, if any (logged at each change).
    pub fn warn_skipped(&self) {
        if !self.skipped.is_empty() {
            tracing::warn!(
                skipped = %self.skipped.join(" "),
                "these entries of the config directory are not *.yaml/*.yml files directly in it and were not read (--config-files tree reads every file in the tree, as the Go service does)"
            );
        }
    }

    /// Validates every file and builds the config; every problem is reported, not only the
    /// first.
    pub fn compile(&self) -> Result<Config, Vec<ConfigError>> {
        let mut errors: Vec<ConfigError> = self
            .files
            .iter()
            .filter_map(|file| file.as_ref().err().cloned())
            .collect();
        let readable = self
            .files
            .iter()
            .filter_map(|file| file.as_ref().ok())
            .map(|(name, text)| (name.as_str(), text.as_str()));
        match Config::from_files(readable, self.merge_domains) {
            Ok(config) if errors.is_empty() => Ok(config),
            Ok(_) => Err(errors),
            Err(mut more) => {
                errors.append(&mut more);
                Err(errors)
            }
        }
    }
}

/// Reads and validates `path` as `layout` says (see [`files::list`](super::files::list)): a
/// directory, or a single file.
pub fn load(path: &Path, layout: Layout) -> Result<Config, Vec<ConfigError>> {
    Sources::read(path, layout)
        .map_err(|error| vec![error])?
        .compile()
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| {
        ConfigError::new(&shown, format!("error reading config file: {e}"), None)
    };
    // Only regular files: opening a FIFO or a device would wait for a writer, maybe forever.
    let metadata = std::fs::metadata(path).map_err(unreadable)?;
    if !metadata.is_file() {
        let message = "error reading config file: not a regular file (a FIFO, socket or device cannot be a config)";
        return Err(ConfigError::new(&shown, message, None));
    }
    // Reads at most one byte past the bound, so a file that grows while it is read cannot take
    // more memory than that.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let message = format!("file is more than the {MAX_FILE_BYTES} bytes allowed");
        return Err(ConfigError::new(&shown, message, None));
    }
    String::from_utf8(bytes).map_err(|e| {
        ConfigError::new(
            &shown,
            format!("error loading config file: not valid UTF-8 ({e})"),
            None,
        )
    })
}
