//! One problem with the configuration, as every layer reports it: the file, the message in
//! envoyproxy/ratelimit's words, and the position where the YAML parser knows it.

use std::fmt;

/// One problem with the configuration, reported as `<file>: <message>` plus the position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub message: String,
    /// Line and column (1-based), where known.
    pub position: Option<(usize, usize)>,
}

impl ConfigError {
    pub fn new(
        file: &str,
        message: impl Into<String>,
        position: Option<(usize, usize)>,
    ) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            message: message.into(),
            position,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)?;
        if let Some((line, column)) = self.position {
            write!(f, " at line {line}, column {column}")?;
        }
        Ok(())
    }
}
