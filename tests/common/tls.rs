//! Throwaway certificates for TLS tests, made with the `openssl` command: a CA, a server
//! certificate for `localhost` and 127.0.0.1 signed by it (and a second one, `server-next`, to
//! rotate to; and `misnamed`, for `other.example` only), client certificates for mutual TLS (`client` with the SAN `envoy.client`,
//! `outsider` with another SAN), and a second CA with a client of its own (`other-ca`,
//! `stranger`). A missing `openssl` fails the test with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

/// The files of one test's certificates, in a directory removed when this drops.
pub struct Certificates {
    dir: TempDir,
}

impl Certificates {
    pub fn create() -> Certificates {
        let dir = tempfile::tempdir().unwrap();
        let certificates = Certificates { dir };
        certificates.authority("ca");
        certificates.authority("other-ca");
        let server = "subjectAltName=DNS:localhost,IP:127.0.0.1";
        certificates.signed("ca", "server", "localhost", server);
        certificates.signed("ca", "server-next", "localhost", server);
        let elsewhere = "subjectAltName=DNS:other.example";
        certificates.signed("ca", "misnamed", "other.example", elsewhere);
        let client = |san: &str| format!("extendedKeyUsage=clientAuth\nsubjectAltName=DNS:{san}");
        certificates.signed("ca", "client", "ratelimiter", &client("envoy.client"));
        certificates.signed("ca", "outsider", "outsider", &client("outsider.client"));
        certificates.signed("other-ca", "stranger", "stranger", &client("envoy.client"));
        certificates
    }

    /// `<name>.crt`, `<name>.key` (for `ca`, `server`, `client`, ...).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A self-signed certificate authority, `<name>.crt` and `<name>.key`.
    fn authority(&self, name: &str) {
        let subject = format!("/CN=ratelimiter test {name}");
        let (key, certificate) = (format!("{name}.key"), format!("{name}.crt"));
        self.with_new_key(&[
            "req",
            "-x509",
            "-days",
            "1",
            "-subj",
            &subject,
            "-keyout",
            &key,
            "-out",
            &certificate,
        ]);
    }

    /// The service's flags that trust the CA and present the client certificate:
    /// `--redis-tls-ca` first, then `--redis-tls-cert` and `--redis-tls-key`.
    pub fn client_flags(&self) -> Vec<String> {
        let path = |name: &str| self.file(name).to_str().unwrap().to_string();
        vec![
            "--redis-tls-ca".into(),
            path("ca.crt"),
            "--redis-tls-cert".into(),
            path("client.crt"),
            "--redis-tls-key".into(),
            path("client.key"),
        ]
    }

    /// The `redis-server` flags that serve TLS on `port` with the server certificate `server`
    /// (`server` or `misnamed`), asking clients for a certificate from the CA when `mutual`.
    pub fn redis_flags(&self, port: u16, server: &str, mutual: bool) -> Vec<String> {
        let path = |name: &str| self.file(name).to_str().unwrap().to_string();
        let auth_clients = if mutual { "yes" } else { "no" };
        [
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path(&format!("{server}.crt")),
            "--tls-key-file",
            &path(&format!("{server}.key")),
            "--tls-ca-cert-file",
            &path("ca.crt"),
            "--tls-auth-clients",
            auth_clients,
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// `<name>.key` and `<name>.crt` for `common_name`, signed by the CA `ca`, with `extension`.
    fn signed(&self, ca: &str, name: &str, common_name: &str, extension: &str) {
        let (key, request, certificate) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subject = format!("/CN={common_name}");
        self.with_new_key(&["req", "-subj", &subject, "-keyout", &key, "-out", &request]);
        let extensions = format!("{name}.ext");
        std::fs::write(self.file(&extensions), extension).unwrap();
        run_openssl(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-days",
                "1",
                "-in",
                &request,
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-extfile",
                &extensions,
                "-out",
                &certificate,
            ],
        );
    }

    /// `openssl req …` that makes a fresh P-256 key, unencrypted.
    fn with_new_key(&self, args: &[&str]) {
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let all: Vec<&str> = args.iter().chain(&key).copied().collect();
        run_openssl(self.dir.path(), &all);
    }
}

fn run_openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| {
            panic!("openssl cannot run ({error}): run scripts/setup (it installs the Debian package openssl)")
        });
    assert!(
        output.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
