//! The gRPC Unix socket (`--grpc-uds`, the Go service's `GRPC_UDS`): bound at its path once a
//! stale socket file left by a crash is out of the way, and its file removed when the socket is
//! dropped at shutdown.
//!
//! A socket file that a live server still answers on is never taken over, nor is a file that is
//! not a socket replaced.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// A bound Unix socket; dropping it removes its file.
pub struct UnixSocket {
    pub listener: UnixListener,
    pub file: SocketFile,
}

/// The socket's file, removed when dropped.
pub struct SocketFile(PathBuf);

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.0)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), %error, "cannot remove the gRPC socket file");
        }
    }
}

/// Binds a Unix socket at `path`, first removing a socket file there that nothing answers on.
/// Must be called within a tokio runtime.
pub fn bind(path: &Path) -> io::Result<UnixSocket> {
    remove_stale(path)?;
    let listener = UnixListener::bind(path)?;
    Ok(UnixSocket {
        listener,
        file: SocketFile(path.to_path_buf()),
    })
}

fn remove_stale(path: &Path) -> io::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if !metadata.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; not replacing it",
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server is listening on this socket",
        ));
    }
    std::fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_a_live_one_or_a_plain_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grpc.sock");
        let live = bind(&path).unwrap();
        let in_use = bind(&path).err().expect("bound over a live socket");
        assert_eq!(in_use.kind(), io::ErrorKind::AddrInUse, "{in_use}");

        // A crash leaves the file behind with nothing listening.
        let stale = std::os::unix::net::UnixListener::bind(dir.path().join("stale.sock")).unwrap();
        drop(stale);
        let replaced = bind(&dir.path().join("stale.sock")).unwrap();
        drop(replaced);
        assert!(!dir.path().join("stale.sock").exists(), "removed on drop");

        drop(live);
        assert!(!path.exists(), "removed on drop");

        let plain = dir.path().join("notes.txt");
        std::fs::write(&plain, "keep me").unwrap();
        let refused = bind(&plain).err().expect("replaced a plain file");
        assert_eq!(refused.kind(), io::ErrorKind::AlreadyExists, "{refused}");
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep me");
    }
}
