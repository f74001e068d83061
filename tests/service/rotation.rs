//! Certificate rotation without a restart: files replaced in place or by a Kubernetes Secret's
//! `..data` swap serve new connections while an established connection goes on, and a broken
//! certificate is refused (log, metric, `/health`) with the previous one kept.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::tls::LIMITS;
use crate::common::tls::Certificates;
use crate::common::tls_client::{check_over_tls, der, get, path, served_certificate, tls_stream};
use crate::common::{Code, Service};

/// A rotation shows within this (the watcher debounces 100 ms; a loaded machine is slower).
const ROTATION: Duration = Duration::from_secs(10);

/// Waits until `condition` holds, failing with `what` after [`ROTATION`].
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, condition: impl Fn() -> F) {
    let deadline = Instant::now() + ROTATION;
    while !condition().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `name.crt`/`name.key` of `certs` copied to `dir/tls.crt`, `dir/tls.key`.
fn install(certs: &Certificates, name: &str, dir: &Path) {
    std::fs::copy(certs.file(&format!("{name}.key")), dir.join("tls.key")).unwrap();
    std::fs::copy(certs.file(&format!("{name}.crt")), dir.join("tls.crt")).unwrap();
}

async fn start_with_files(cert: &Path, key: &Path, listener: &str) -> Service {
    let (cert_flag, key_flag) = (
        format!("--{listener}-tls-cert"),
        format!("--{listener}-tls-key"),
    );
    Service::start(
        &[("edge.yaml", LIMITS)],
        &[&cert_flag, &path(cert), &key_flag, &path(key)],
    )
    .await
}

#[tokio::test]
async fn a_certificate_replaced_in_place_serves_new_connections_and_spares_open_ones() {
    let certs = Certificates::create();
    let dir = tempfile::tempdir().unwrap();
    install(&certs, "server", dir.path());
    let service = start_with_files(
        &dir.path().join("tls.crt"),
        &dir.path().join("tls.key"),
        "http",
    )
    .await;
    let ca = certs.file("ca.crt");
    let mut open = tls_stream(service.http_addr, &ca).await;
    assert_eq!(get(&mut open, "/healthcheck").await.0, "HTTP/1.1 200 OK");

    install(&certs, "server-next", dir.path());
    let next = der(&certs.file("server-next.crt"));
    eventually("new connections get the new certificate", || async {
        served_certificate(service.http_addr, &ca).await == next
    })
    .await;
    assert_eq!(
        get(&mut open, "/healthcheck").await.0,
        "HTTP/1.1 200 OK",
        "the connection opened before the rotation goes on"
    );
    assert_eq!(
        open.get_ref().1.peer_certificates().unwrap()[0].to_vec(),
        der(&certs.file("server.crt"))
    );
}

/// A Secret volume as Kubernetes lays it out: the files are symlinks through `..data`, itself a
/// symlink to a timestamped directory that an update replaces by renaming a new link over it.
struct SecretVolume {
    dir: tempfile::TempDir,
    generation: u32,
}

impl SecretVolume {
    fn new(certs: &Certificates, name: &str) -> SecretVolume {
        let mut volume = SecretVolume {
            dir: tempfile::tempdir().unwrap(),
            generation: 0,
        };
        volume.update(certs, name);
        for file in ["tls.crt", "tls.key", "ca.crt"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), volume.dir.path().join(file))
                .unwrap();
        }
        volume
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Writes `name`'s certificate and key (and the CA) into a new timestamped directory and
    /// swaps `..data` onto it atomically.
    fn update(&mut self, certs: &Certificates, name: &str) {
        let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
        self.update_with(&certs.file(&cert), &certs.file(&key), &certs.file("ca.crt"));
    }

    fn update_with(&mut self, cert: &Path, key: &Path, ca: &Path) {
        self.generation += 1;
        let data = format!("..2026_01_01_00_00_0{}", self.generation);
        let target = self.dir.path().join(&data);
        std::fs::create_dir(&target).unwrap();
        for (from, to) in [(cert, "tls.crt"), (key, "tls.key"), (ca, "ca.crt")] {
            std::fs::copy(from, target.join(to)).unwrap();
        }
        let staging = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&data, &staging).unwrap();
        std::fs::rename(&staging, self.dir.path().join("..data")).unwrap();
    }
}

#[tokio::test]
async fn a_kubernetes_secret_update_is_picked_up_and_a_broken_one_is_refused() {
    let certs = Certificates::create();
    let mut volume = SecretVolume::new(&certs, "server");
    let service = Service::start(
        &[("edge.yaml", LIMITS)],
        &[
            "--grpc-tls-cert",
            &path(&volume.path("tls.crt")),
            "--grpc-tls-key",
            &path(&volume.path("tls.key")),
            "--grpc-tls-client-ca",
            &path(&volume.path("ca.crt")),
        ],
    )
    .await;
    let (addr, ca) = (service.grpc_addr, certs.file("ca.crt"));
    assert_eq!(
        check_over_tls(addr, &certs, Some("client")).await,
        Ok(Code::Ok)
    );

    volume.update(&certs, "server-next");
    let next = der(&certs.file("server-next.crt"));
    eventually("the swapped certificate is served", || async {
        served_certificate(addr, &ca).await == next
    })
    .await;
    assert_eq!(
        check_over_tls(addr, &certs, Some("client")).await,
        Ok(Code::Ok)
    );

    // A certificate whose key is another's: refused, reported, and the previous one stays.
    volume.update_with(
        &certs.file("server.crt"),
        &certs.file("client.key"),
        &certs.file("ca.crt"),
    );

    let http = service.http();
    eventually("/health reports the refused certificate", || async {
        http.get("/health").await.json()["certificates"]["grpc"]["last_error"].is_object()
    })
    .await;
    let health = http.get("/health").await.json();
    let errors = health["certificates"]["grpc"]["last_error"]["errors"].to_string();
    assert!(
        errors.contains("tls.key") || errors.contains("key"),
        "{health}"
    );
    assert_eq!(
        health["status"], "healthy",
        "the previous certificate still serves"
    );
    let metrics = http.get("/metrics").await.body;
    assert!(
        metrics.contains(
            r#"ratelimiter_tls_certificate_loads_total{listener="grpc",result="rejected"} 1"#
        ),
        "{metrics}"
    );
    assert_eq!(
        served_certificate(addr, &ca).await,
        next,
        "the previous certificate stays"
    );
    assert_eq!(
        check_over_tls(addr, &certs, Some("client")).await,
        Ok(Code::Ok)
    );

    // Fixed again: loaded, and the error cleared.
    volume.update(&certs, "server");
    let first = der(&certs.file("server.crt"));
    eventually("the fixed certificate is served", || async {
        served_certificate(addr, &ca).await == first
    })
    .await;
    let health = http.get("/health").await.json();
    assert!(
        health["certificates"]["grpc"]["last_error"].is_null(),
        "{health}"
    );
}
