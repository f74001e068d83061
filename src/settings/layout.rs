//! Flags for which files under `--config` make up the config, and how domains split over files
//! combine (the Go service's `RUNTIME_*` and `MERGE_DOMAIN_CONFIG`).

use clap::{Args, ValueEnum};

/// Which files of the config directory are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ConfigFiles {
    /// `*.yaml` and `*.yml` files directly in the directory; other files are skipped, with a
    /// warning naming them.
    #[default]
    Yaml,
    /// Every regular file in the directory and its subdirectories, whatever its name, as the
    /// Go service loads its runtime directory.
    Tree,
}

#[derive(Clone, Debug, Args)]
pub struct ConfigLayout {
    /// Which files of a `--config` directory are read: `yaml` (top-level `*.yaml`/`*.yml`) or
    /// `tree` (every file in the tree, as the Go service reads RUNTIME_ROOT). The entries of a
    /// Kubernetes ConfigMap mount (`..data`, `..2024_...`) are always skipped.
    #[arg(long, env = "RATELIMITER_CONFIG_FILES", value_enum, default_value_t = ConfigFiles::Yaml)]
    pub config_files: ConfigFiles,

    /// Read files and directories whose names start with `.` too (the Go service does unless
    /// RUNTIME_IGNOREDOTFILES=true).
    #[arg(long, env = "RATELIMITER_CONFIG_DOTFILES")]
    pub config_dotfiles: bool,

    /// Let one domain be split over several files: their descriptors are put together (the Go
    /// service's MERGE_DOMAIN_CONFIG); without it a domain in two files is an error.
    #[arg(long, env = "RATELIMITER_MERGE_DOMAIN_CONFIG")]
    pub merge_domain_config: bool,
}
