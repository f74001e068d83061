//! The `ratelimiter` binary as an operator runs it: `serve` on the shipped `config/`, answers a
//! real client over gRPC and HTTP, reports NOT_SERVING (and HTTP health 503/500) after SIGTERM,
//! finishes what is in flight and exits 0.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Code, ask, code, request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The binary, started with `args`, and the addresses it logged.
struct Running {
    child: Child,
    grpc_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    stderr: mpsc::Receiver<String>,
    /// What it logged before it served.
    startup_log: Vec<String>,
}

fn spawn(args: &[&str]) -> Running {
    spawn_with_env(args, &[])
}

fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ratelimiter"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("serve")
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the ratelimiter binary starts");
    let (lines, stderr) = mpsc::channel();
    let pipe = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in pipe.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    // Owned by `Running` from here on, so that a failed start still kills the process.
    let mut running = Running {
        child,
        grpc_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        http_addr: None,
        stderr,
        startup_log: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = running
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the binary logs the gRPC address it serves on");
        if let Some((_, address)) = line.split_once("serving HTTP on ") {
            running.http_addr = Some(address.trim().parse().unwrap());
        }
        if let Some((_, address)) = line.split_once("serving gRPC on ") {
            running.grpc_addr = address.trim().parse().unwrap();
            return running;
        }
        running.startup_log.push(line);
    }
}

impl Running {
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits without blocking the runtime, so that the test's clients keep answering the
    /// server's HTTP/2 shutdown handshake (GOAWAY, PING) as Envoy would.
    async fn wait_for_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the binary did not exit within {within:?}; it logged:\n{}",
            self.logged().join("\n")
        );
    }

    fn logged(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn health(addr: SocketAddr, service: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let response = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap();
    ServingStatus::try_from(response.into_inner().status).unwrap()
}

#[tokio::test]
async fn serve_answers_from_the_shipped_config_and_exits_0_on_sigterm() {
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .is_dir()
    );
    let mut running = spawn(&[]);
    let mut client = common::connect(running.grpc_addr).await;
    assert_eq!(
        health(running.grpc_addr, "ratelimit").await,
        ServingStatus::Serving
    );
    let http = common::http::Http::new(running.http_addr.expect("the HTTP address is logged"));
    let healthcheck = http.get("/healthcheck").await;
    assert_eq!((healthcheck.status, healthcheck.body.as_str()), (200, "OK"));
    let response = ask(
        &mut client,
        request("edge", &[&[("remote_address", "203.0.113.7")]]),
    )
    .await;
    assert_eq!(code(&response), Code::Ok);
    assert!(
        response.statuses[0].current_limit.is_some(),
        "the shipped config limits remote_address"
    );

    running.signal("TERM");
    assert_eq!(running.wait_for_exit(Duration::from_secs(5)).await, Some(0));
    assert!(running.logged().iter().any(|line| line.contains("stopped")));
}

#[tokio::test]
async fn during_the_shutdown_delay_health_is_not_serving_and_calls_still_succeed() {
    let mut running = spawn(&["--shutdown-delay", "2s"]);
    let mut client = common::connect(running.grpc_addr).await;
    ask(
        &mut client,
        request("edge", &[&[("remote_address", "198.51.100.1")]]),
    )
    .await;

    running.signal("INT");
    let deadline = Instant::now() + Duration::from_secs(5);
    while health(running.grpc_addr, "").await == ServingStatus::Serving {
        assert!(Instant::now() < deadline, "health never turned NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        health(running.grpc_addr, "ratelimit").await,
        ServingStatus::NotServing
    );
    let http = common::http::Http::new(running.http_addr.expect("the HTTP address is logged"));
    let health = http.get("/health").await;
    assert_eq!(
        (health.status, &health.json()["status"]),
        (503, &"draining".into())
    );
    assert_eq!(http.get("/healthcheck").await.status, 500);
    // The listener is still open and calls on the existing connection are answered.
    let response = ask(
        &mut client,
        request("edge", &[&[("remote_address", "198.51.100.1")]]),
    )
    .await;
    assert_eq!(code(&response), Code::Ok);
    assert_eq!(running.wait_for_exit(Duration::from_secs(5)).await, Some(0));
}

#[test]
fn an_invalid_config_at_startup_exits_1_naming_the_file() {
    let dir = common::config_dir(&[(
        "broken.yaml",
        "domain: x\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight}\n",
    )]);
    let output = Command::new(env!("CARGO_BIN_EXE_ratelimiter"))
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--config")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("broken.yaml: invalid rate limit unit 'fortnight' at line 4"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_environment_can_allow_starting_on_an_invalid_config() {
    let dir = common::config_dir(&[(
        "broken.yaml",
        "domain: x\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight}\n",
    )]);
    let config = dir.path().to_str().unwrap();
    let running = spawn_with_env(
        &["--config", config],
        &[("RATELIMITER_ALLOW_EMPTY_CONFIG", "true")],
    );
    let log = running.startup_log.join("\n");
    assert!(
        log.contains("broken.yaml: invalid rate limit unit 'fortnight' at line 4"),
        "{log}"
    );
    assert!(log.contains("starting with NO rate limits"), "{log}");
    let mut client = common::connect(running.grpc_addr).await;
    let response = ask(&mut client, request("x", &[&[("k", "v")]])).await;
    assert_eq!(code(&response), Code::Ok);
    assert_eq!(response.statuses[0].current_limit, None);
}

#[test]
fn help_explains_every_serve_flag_and_its_environment_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_ratelimiter"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--config",
        "--grpc-addr",
        "--http-addr",
        "--redis-url",
        "--node-id",
        "--response-headers",
        "--shutdown-timeout",
        "--allow-empty-config",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    assert!(help.contains("[env: RATELIMITER_CONFIG=]"), "{help}");
}
