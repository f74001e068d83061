//! Changing config files the ways operators do: saving through a renamed temporary file, and
//! a Kubernetes ConfigMap volume whose `..data` symlink is swapped.

use std::path::{Path, PathBuf};

/// Writes `text` to a hidden temporary file beside `path`, then renames it over `path`, as
/// editors save.
pub fn save_by_rename(path: &Path, text: &str) {
    let name = path.file_name().unwrap().to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.swp"));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// The file's inode: tells a write in place from a file replaced by another.
pub fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

/// A Kubernetes ConfigMap volume: `edge.yaml -> ..data/edge.yaml`, `..data -> ..<timestamp>`.
pub struct ConfigMap {
    root: PathBuf,
    current: PathBuf,
    updates: u32,
}

impl ConfigMap {
    pub fn create(root: &Path, files: &[(&str, &str)]) -> ConfigMap {
        let mut map = ConfigMap {
            root: root.to_path_buf(),
            current: PathBuf::new(),
            updates: 0,
        };
        map.current = map.write_version(files);
        std::os::unix::fs::symlink(map.current.file_name().unwrap(), root.join("..data")).unwrap();
        for (name, _) in files {
            std::os::unix::fs::symlink(Path::new("..data").join(name), root.join(name)).unwrap();
        }
        map
    }

    fn write_version(&mut self, files: &[(&str, &str)]) -> PathBuf {
        self.updates += 1;
        let version = self
            .root
            .join(format!("..2026_11_29_10_00_{:02}.123", self.updates));
        std::fs::create_dir(&version).unwrap();
        for (name, text) in files {
            std::fs::write(version.join(name), text).unwrap();
        }
        version
    }

    /// What the kubelet does: a new timestamped directory, a temporary link to it renamed over
    /// `..data`, then the old directory removed.
    pub fn update(&mut self, files: &[(&str, &str)]) {
        let version = self.write_version(files);
        let link = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(version.file_name().unwrap(), &link).unwrap();
        std::fs::rename(&link, self.root.join("..data")).unwrap();
        std::fs::remove_dir_all(std::mem::replace(&mut self.current, version)).unwrap();
    }
}
