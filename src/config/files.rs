//! Which files make up the config: the top-level `*.yaml`/`*.yml` files of a directory, or,
//! as the Go service reads its runtime directory, every regular file in the tree. Either way
//! the entries of a Kubernetes ConfigMap mount (`..data`, `..2024_...`) are skipped, so each
//! file is read once, through its link.

use std::path::{Path, PathBuf};

use super::ConfigError;

/// How the config directory is read, and how domains split over files combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Every regular file in the tree (true) or the top-level YAML files (false).
    pub tree: bool,
    /// Read names starting with `.` too (never `..`, the ConfigMap machinery).
    pub dotfiles: bool,
    /// One domain may be split over several files.
    pub merge_domains: bool,
}

/// Deepest subdirectory read: a tree is a few levels deep, and a link loop must end.
const MAX_DEPTH: usize = 16;

/// The files of a config directory, sorted by path.
pub struct Listing {
    pub files: Vec<PathBuf>,
    /// Files and directories the YAML rule left out (shown to the operator, never silent).
    pub skipped: Vec<String>,
}

/// The files `load` reads under `path` (a directory or one file).
pub fn list(path: &Path, layout: Layout) -> Result<Listing, ConfigError> {
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
    let mut listing = Listing {
        files: Vec::new(),
        skipped: Vec::new(),
    };
    if !metadata.is_dir() {
        // A single file: reading it refuses anything but a regular one.
        listing.files.push(path.to_path_buf());
        return Ok(listing);
    }
    walk(path, layout, 0, &mut listing)?;
    listing.files.sort();
    listing.skipped.sort();
    Ok(listing)
}

fn walk(
    dir: &Path,
    layout: Layout,
    depth: usize,
    listing: &mut Listing,
) -> Result<(), ConfigError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::new(&shown, format!("error opening directory: {e}"), None))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| ConfigError::new(&shown, format!("error reading directory: {e}"), None))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("..") || (name.starts_with('.') && !layout.dotfiles) {
            continue;
        }
        let path = entry.path();
        // Not following links: a link to a directory is not descended (as in the Go loader).
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        // Following links: ConfigMap files are links into `..data`. A link to nothing is no
        // file (a ConfigMap swap leaves one for a moment); one that cannot be followed for
        // another reason (a loop, no permission) is kept, so that reading it says why.
        let is_file = match std::fs::metadata(&path) {
            Ok(metadata) => !metadata.is_dir(),
            Err(error) => error.kind() != std::io::ErrorKind::NotFound,
        };
        let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if layout.tree {
            if is_dir && depth < MAX_DEPTH {
                walk(&path, layout, depth + 1, listing)?;
            } else if is_file {
                listing.files.push(path);
            }
        } else if is_file && is_yaml {
            listing.files.push(path);
        } else if is_file || is_dir {
            listing.skipped.push(path.display().to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::config::load;

    fn domain(name: &str) -> String {
        format!(
            "domain: {name}\ndescriptors:\n  - key: k\n    rate_limit: {{unit: second, requests_per_unit: 1}}\n"
        )
    }

    /// A Go-style runtime tree: files without `.yaml`, a subdirectory, a dotfile, and a
    /// ConfigMap mount (`..data` swapped onto a timestamped directory, files linked through it).
    fn go_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("config"), domain("plain")).unwrap();
        std::fs::create_dir(root.join("team")).unwrap();
        std::fs::write(root.join("team/limits.conf"), domain("team")).unwrap();
        std::fs::write(root.join(".hidden"), domain("hidden")).unwrap();
        std::fs::create_dir(root.join("..2026_12_05_01_00_00.1")).unwrap();
        std::fs::write(
            root.join("..2026_12_05_01_00_00.1/mapped"),
            domain("mapped"),
        )
        .unwrap();
        symlink("..2026_12_05_01_00_00.1", root.join("..data")).unwrap();
        symlink("..data/mapped", root.join("mapped")).unwrap();
        dir
    }

    fn domains(path: &Path, layout: Layout) -> Vec<String> {
        let config = load(path, layout).unwrap_or_else(|errors| panic!("{errors:?}"));
        config.domains().iter().map(|d| d.name.clone()).collect()
    }

    #[test]
    fn the_tree_rule_reads_every_file_once_and_dotfiles_when_asked() {
        let dir = go_tree();
        let tree = Layout {
            tree: true,
            ..Layout::default()
        };
        assert_eq!(domains(dir.path(), tree), ["mapped", "plain", "team"]);
        let with_dotfiles = Layout {
            dotfiles: true,
            ..tree
        };
        assert_eq!(
            domains(dir.path(), with_dotfiles),
            ["hidden", "mapped", "plain", "team"],
            "a ConfigMap's ..data entries are skipped even with dotfiles"
        );
    }

    #[test]
    fn the_yaml_rule_names_what_it_skips() {
        let dir = go_tree();
        std::fs::write(dir.path().join("edge.yaml"), domain("edge")).unwrap();
        let listing = list(dir.path(), Layout::default()).unwrap();
        assert_eq!(listing.files, [dir.path().join("edge.yaml")]);
        let skipped: Vec<&str> = listing
            .skipped
            .iter()
            .map(|path| path.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(skipped, ["config", "mapped", "team"]);
    }

    #[test]
    fn merged_domains_put_their_descriptors_together() {
        let dir = tempfile::tempdir().unwrap();
        let rule = |key: &str| {
            format!(
                "domain: d\ndescriptors:\n  - key: {key}\n    rate_limit: {{unit: second, requests_per_unit: 1}}\n"
            )
        };
        std::fs::write(dir.path().join("a"), rule("one")).unwrap();
        std::fs::write(dir.path().join("b"), rule("two")).unwrap();
        let tree = Layout {
            tree: true,
            ..Layout::default()
        };
        let errors = load(dir.path(), tree).unwrap_err();
        assert!(
            errors[0].to_string().contains("duplicate domain 'd'"),
            "{errors:?}"
        );
        let merged = load(
            dir.path(),
            Layout {
                merge_domains: true,
                ..tree
            },
        )
        .unwrap();
        assert_eq!(merged.domains().len(), 1);
        assert_eq!(merged.rule_count(), 2);
        std::fs::write(dir.path().join("c"), rule("one")).unwrap();
        let errors = load(
            dir.path(),
            Layout {
                merge_domains: true,
                ..tree
            },
        )
        .unwrap_err();
        assert!(errors[0].to_string().contains("duplicate"), "{errors:?}");
    }
}
