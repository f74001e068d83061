//! What an operator reads in the log of the built binary: what it started with, what a reload
//! changed (a WARN when a domain goes), what a refused edit leaves in force, why a check was
//! decided (at debug level, throttled), which signal stopped it; never a secret; JSON on every
//! line when asked, fatal errors included.

use std::time::Duration;

use crate::common;
use crate::common::files::save_by_rename;
use crate::common::process::{Node, serve_until_exit};
use crate::common::{ask, request};

/// Long enough for a reload on a loaded machine (a reload takes about 100 ms).
const RELOAD: Duration = Duration::from_secs(20);

const API: &str = "domain: api\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 2}\n";
const EDGE: &str = "domain: edge\ndescriptors:\n  - key: ip\n    rate_limit: {unit: second, requests_per_unit: 5}\n";
const EDGE_EDITED: &str = "domain: edge\ndescriptors:\n  - key: ip\n    rate_limit: {unit: second, requests_per_unit: 6}\n";
const BAD: &str = "domain: edge\ndescriptors:\n  - key: ip\n    rate_limit: {unit: fortnight}\n";

#[test]
fn a_reload_says_what_changed_and_warns_when_a_domain_goes() {
    let config = common::config_dir(&[("api.yaml", API), ("edge.yaml", EDGE)]);
    let node = Node::start(&["--config", config.path().to_str().unwrap()]);

    std::fs::remove_file(config.path().join("api.yaml")).unwrap();
    let lines = node.log_until("loaded rate limit config", RELOAD);
    let removed = lines
        .iter()
        .find(|line| line.contains("domain removed"))
        .unwrap_or_else(|| panic!("no WARN for the removed domain:\n{}", lines.join("\n")));
    assert!(
        removed.contains("WARN") && removed.contains("domain=\"api\""),
        "{removed}"
    );
    let loaded = lines.last().unwrap();
    assert!(loaded.contains("domains_removed=api"), "{loaded}");
    assert!(loaded.contains("rules_removed=api.user"), "{loaded}");

    save_by_rename(&config.path().join("edge.yaml"), EDGE_EDITED);
    let loaded = node
        .log_until("loaded rate limit config", RELOAD)
        .join("\n");
    assert!(loaded.contains("rules_changed=edge.ip"), "{loaded}");
    assert!(loaded.contains("domains_removed=none"), "{loaded}");
    assert!(!loaded.contains("domain removed"), "{loaded}");

    save_by_rename(&config.path().join("edge.yaml"), BAD);
    let refused = node
        .log_until("rate limit config rejected", RELOAD)
        .join("\n");
    assert!(
        refused.contains("the config loaded before stays in force"),
        "{refused}"
    );
    assert!(refused.contains("in_force_since="), "{refused}");
}

#[test]
fn starting_on_a_refused_config_does_not_claim_a_previous_one() {
    let config = common::config_dir(&[("edge.yaml", BAD)]);
    let node = Node::start(&[
        "--config",
        config.path().to_str().unwrap(),
        "--allow-empty-config",
    ]);
    let log = node.startup_log.join("\n");
    assert!(log.contains("no config was ever loaded"), "{log}");
    assert!(!log.contains("stays in force"), "{log}");
}

/// Secrets given to the binary, each a marker that must never be printed.
const SECRETS: [(&str, &str); 3] = [
    ("RATELIMITER_ADMIN_TOKEN", "marker-admin-token"),
    (
        "RATELIMITER_REDIS_URL",
        "redis://admin:marker-redis-password@127.0.0.1:1",
    ),
    ("RATELIMITER_REDIS_SENTINEL_PASSWORD", "marker-sentinel"),
];

#[test]
fn serve_help_never_prints_a_secret_from_the_environment() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ratelimiter"))
        .args(["serve", "--help"])
        .envs(SECRETS)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("RATELIMITER_ADMIN_TOKEN"), "{help}");
    assert!(!help.contains("marker"), "{help}");
}

#[tokio::test]
async fn a_redis_that_cannot_be_reached_is_named_without_its_password() {
    let node = Node::start_with_env(&[], &SECRETS);
    let log = node.startup_log.join("\n");
    assert!(log.contains("cannot reach Redis"), "{log}");
    assert!(log.contains("redis://admin@127.0.0.1:1"), "{log}");
    let health = common::http::Http::new(node.http_addr).get("/health").await;
    for shown in [&log, &health.body] {
        assert!(!shown.contains("marker"), "{shown}");
    }
}

#[tokio::test]
async fn startup_says_what_runs_and_shutdown_names_the_signal() {
    let mut node = Node::start(&[]);
    let log = node.startup_log.join("\n");
    let summary = node
        .startup_log
        .iter()
        .find(|line| line.contains("starting ratelimiter"))
        .unwrap_or_else(|| panic!("no startup summary:\n{log}"));
    for field in [
        format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        format!(":{}", node.grpc_addr.port()),
        "store=memory".to_string(),
        "domains=2".to_string(),
        "rules=".to_string(),
    ] {
        assert!(summary.contains(&field), "{field} missing: {summary}");
    }

    node.signal("TERM");
    assert_eq!(node.wait_for_exit(RELOAD).await, Some(0));
    let log = node.logged().join("\n");
    assert!(log.contains("received SIGTERM: shutting down"), "{log}");
    assert!(log.contains("delay=0s"), "{log}");
}

#[tokio::test]
async fn at_debug_level_checks_are_explained_a_few_lines_a_second() {
    let node = Node::start(&["--log-level", "info,ratelimiter=debug"]);
    let mut client = common::connect(node.grpc_addr).await;
    let descriptor: &[(&str, &str)] = &[("remote_address", "203.0.113.9")];
    ask(&mut client, request("edge", &[descriptor])).await;
    let explained = node.log_until("check:", RELOAD).pop().unwrap();
    for part in [
        "domain=\"edge\"",
        "decision=\"OK\"",
        "remote_address=\"203.0.113.9\" -> rule edge.remote_address: 1/50 per second (within)",
    ] {
        assert!(explained.contains(part), "{part} missing: {explained}");
    }

    // Every check after the first is either logged or counted in the next line's held_back.
    for _ in 0..200 {
        ask(&mut client, request("edge", &[descriptor])).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    ask(
        &mut client,
        request("edge", &[&[("remote_address", "last")]]),
    )
    .await;
    let lines: Vec<String> = node
        .log_until("remote_address=\"last\"", RELOAD)
        .into_iter()
        .filter(|line| line.contains("check:"))
        .collect();
    let held_back: u64 = lines
        .iter()
        .map(|line| {
            let (_, after) = line.split_once("held_back=").unwrap();
            after
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(lines.len() < 100, "{} lines for 201 checks", lines.len());
    assert_eq!(lines.len() as u64 + held_back, 201, "{lines:#?}");
}

#[test]
fn with_json_logs_a_fatal_startup_error_is_json_too() {
    let config = common::config_dir(&[("edge.yaml", BAD)]);
    let output = serve_until_exit(&[
        "--log-format",
        "json",
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let fatal = lines.last().expect("a line");
    assert_eq!(fatal["level"], "ERROR", "{fatal}");
    let message = fatal["fields"]["message"].as_str().unwrap();
    assert!(
        message.contains("edge.yaml: invalid rate limit unit 'fortnight'"),
        "{message}"
    );
}

#[test]
fn a_missing_config_directory_is_called_missing_not_invalid() {
    let output = serve_until_exit(&["--config", "/nonexistent/ratelimit/config"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot load the rate limit config"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no such directory or file (see --config)"),
        "{stderr}"
    );
    assert!(!stderr.contains("invalid"), "{stderr}");
}
