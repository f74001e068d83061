//! The problems found in one config file while it is checked: each message with the position it
//! belongs to, collected so that every problem is reported at once.

use super::error::ConfigError;
use super::suggest::{self, did_you_mean};
use super::yaml::{At, StrayKey};

/// Line and column, 1-based.
pub(super) type Position = (usize, usize);

/// Where a parsed value was written.
pub(super) fn position<T>(at: &At<T>) -> Position {
    (
        at.referenced.line() as usize,
        at.referenced.column() as usize,
    )
}

pub(super) struct Problems<'f> {
    file: &'f str,
    errors: Vec<ConfigError>,
}

impl<'f> Problems<'f> {
    pub(super) fn new(file: &'f str) -> Problems<'f> {
        Problems {
            file,
            errors: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, message: impl Into<String>, at: Option<Position>) {
        self.errors.push(ConfigError::new(self.file, message, at));
    }

    /// Keys that do not belong where they were written, in the Go service's words.
    pub(super) fn stray_keys(&mut self, keys: &[At<StrayKey>]) {
        for key in keys {
            let message = match &key.value {
                StrayKey::Unknown(name) => format!(
                    "config error, unknown key '{name}'{}",
                    did_you_mean(name, &suggest::KEYS)
                ),
                StrayKey::NotText(text) => {
                    format!("config error, key is not of type string: {text}")
                }
            };
            self.error(message, Some(position(key)));
        }
    }

    /// How many problems so far (to tell whether a part of the file added any).
    pub(super) fn count(&self) -> usize {
        self.errors.len()
    }

    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }
}
