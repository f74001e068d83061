//! Reading the config from disk: which files make up the config, and their contents, read once
//! into [`Sources`] so that a reload can tell whether anything changed before it compiles.

use std::io::Read;
use std::path::{Path, PathBuf};

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
}

impl Sources {
    /// Reads every config file under `path` (see [`config_files`]). Fails only when the
    /// directory itself cannot be listed; a file that cannot be read is kept as its error.
    pub fn read(path: &Path) -> Result<Sources, ConfigError> {
        let files = config_files(path)?
            .iter()
            .map(|file| read_file(file).map(|text| (file.display().to_string(), text)))
            .collect();
        Ok(Sources { files })
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
        match Config::from_sources(readable) {
            Ok(config) if errors.is_empty() => Ok(config),
            Ok(_) => Err(errors),
            Err(mut more) => {
                errors.append(&mut more);
                Err(errors)
            }
        }
    }
}

/// Reads and validates `path`: a directory of `*.yaml`/`*.yml` files (dotfiles and
/// dot-directories such as a ConfigMap's `..data` are skipped; subdirectories are not read), or
/// a single file.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    Sources::read(path).map_err(|error| vec![error])?.compile()
}

/// The files `load` reads, sorted by name.
pub fn config_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let shown = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|e| {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "cannot read config: no such directory or file (see --config)".to_string()
            }
            _ => format!("cannot read config: {e}"),
        };
        ConfigError::new(&shown, message, None)
    })?;
    if !metadata.is_dir() {
        // A single file: `read_file` refuses anything but a regular one.
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| ConfigError::new(&shown, format!("error opening directory: {e}"), None))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| ConfigError::new(&shown, format!("error reading directory: {e}"), None))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        // Follows symlinks: ConfigMap files are links into the `..data` directory. A link to
        // nothing is no file (a ConfigMap swap leaves one for a moment); a YAML name that
        // cannot be followed for another reason (a loop, no permission) is kept, so that
        // reading it reports why instead of the file silently not counting.
        let counts = match std::fs::metadata(entry.path()) {
            Ok(metadata) => !metadata.is_dir(),
            Err(error) => error.kind() != std::io::ErrorKind::NotFound,
        };
        if is_yaml && counts && !name.starts_with('.') {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
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
