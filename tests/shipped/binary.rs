//! The `ratelimiter` binary as an operator runs it: `serve` on the shipped `config/`, answers a
//! real client over gRPC and HTTP, reports NOT_SERVING (and HTTP health 503/500) after SIGTERM,
//! finishes what is in flight and exits 0.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::process::{Node, serve_until_exit};
use crate::common::{Code, ServingStatus, ask, code, request};

#[tokio::test]
async fn serve_answers_from_the_shipped_config_and_exits_0_on_sigterm() {
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .is_dir()
    );
    let mut running = Node::start(&[]);
    let mut client = common::connect(running.grpc_addr).await;
    assert_eq!(
        common::grpc_health(running.grpc_addr, "ratelimit").await,
        ServingStatus::Serving
    );
    let http = common::http::Http::new(running.http_addr);
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
    let mut running = Node::start(&["--shutdown-delay", "2s"]);
    let mut client = common::connect(running.grpc_addr).await;
    ask(
        &mut client,
        request("edge", &[&[("remote_address", "198.51.100.1")]]),
    )
    .await;

    running.signal("INT");
    let deadline = Instant::now() + Duration::from_secs(5);
    while common::grpc_health(running.grpc_addr, "").await == ServingStatus::Serving {
        assert!(Instant::now() < deadline, "health never turned NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        common::grpc_health(running.grpc_addr, "ratelimit").await,
        ServingStatus::NotServing
    );
    let http = common::http::Http::new(running.http_addr);
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
    let output = serve_until_exit(&["--config", dir.path().to_str().unwrap()]);
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
    let running = Node::start_with_env(
        &["--config", config],
        &[("RATELIMITER_ALLOW_EMPTY_CONFIG", "true")],
    );
    let log = running.startup_log.join("\n");
    assert!(
        log.contains("broken.yaml: invalid rate limit unit 'fortnight' at line 4"),
        "{log}"
    );
    assert!(
        log.contains("starting with no rate limit configuration"),
        "{log}"
    );
    let mut client = common::connect(running.grpc_addr).await;
    let refused = client
        .should_rate_limit(request("x", &[&[("k", "v")]]))
        .await
        .expect_err("no config: every call fails, so that failure_mode_deny decides");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert_eq!(refused.message(), "no rate limit configuration loaded");
}

/// Every `serve` flag, from `--help`: (flag, the environment variable it names).
fn serve_flags() -> Vec<(String, Option<String>)> {
    let output = Command::new(env!("CARGO_BIN_EXE_ratelimiter"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    for line in help.lines() {
        let line = line.trim();
        if let Some(flag) = line.strip_prefix("--") {
            let name = flag.split_whitespace().next().unwrap();
            flags.push((format!("--{name}"), None));
        } else if let Some(env) = line.strip_prefix("[env: ") {
            let name = env.split(['=', ']']).next().unwrap().to_string();
            flags.last_mut().expect("an env line follows its flag").1 = Some(name);
        }
    }
    flags
}

#[test]
fn every_serve_flag_reads_its_environment_variable_and_is_documented() {
    let flags = serve_flags();
    assert!(flags.len() >= 40, "{flags:?}");
    let reference = include_str!("../../docs/configuration.md");
    for (flag, env) in flags.iter().filter(|(flag, _)| flag != "--help") {
        let expected = format!("RATELIMITER_{}", flag[2..].to_uppercase().replace('-', "_"));
        assert_eq!(env.as_deref(), Some(expected.as_str()), "{flag}");
        assert!(
            reference.contains(&format!("`{flag}`")),
            "{flag} is missing from the flags table of docs/configuration.md"
        );
    }
}

#[tokio::test]
async fn sighup_reloads_the_config_and_user_signals_do_not_end_the_process() {
    let config = common::config_dir(&[("x.yaml", "domain: x\n")]);
    let node = Node::start(&["--config", config.path().to_str().unwrap()]);
    // Files unchanged: only the signal can make this load happen.
    node.signal("HUP");
    let lines = node.log_until("loaded rate limit config", Duration::from_secs(20));
    assert!(
        lines.iter().any(|line| line.contains("SIGHUP")),
        "{}",
        lines.join("\n")
    );
    node.signal("USR1");
    node.signal("USR2");
    node.log_until("SIGUSR2", Duration::from_secs(20));
    let mut client = common::connect(node.grpc_addr).await;
    let response = ask(&mut client, request("x", &[&[("k", "v")]])).await;
    assert_eq!(code(&response), Code::Ok);
}
