//! The status page at `GET /` in a real browser: Debian's chromium, driven by npm's
//! playwright-core (both installed by `scripts/setup`) through `tests/browser/status_page.js`,
//! against the built binary after real traffic. The screenshot is kept as an artifact.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common;
use crate::common::process::Node;
use crate::common::{ask, request};

const TOKEN: &str = "status-page-token";
const LIMITS: &str = "domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: {unit: hour, requests_per_unit: 5}\n";
const BLOCKED: &str = "198.51.100.66";
const TRAFFIC: &str = "198.51.100.77";

/// What the browser test needs, or the setup command that installs it.
fn browser_tools() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var_os("RATELIMITER_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let playwright = root.join("tests/browser/node_modules/playwright-core");
    for (what, path) in [
        ("chromium", &chromium),
        ("playwright-core (npm)", &playwright),
    ] {
        assert!(
            path.exists(),
            "{what} is missing at {}: run scripts/setup",
            path.display()
        );
    }
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|output| output.status.success()),
        "node is missing: run scripts/setup"
    );
    (root.join("tests/browser/status_page.js"), chromium)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_health_limits_counters_blocks_and_nodes_and_resets_a_counter() {
    let (script, chromium) = browser_tools();
    let config = common::config_dir(&[("edge.yaml", LIMITS)]);
    let node = Node::start(&[
        "--config",
        config.path().to_str().unwrap(),
        "--admin-token",
        TOKEN,
    ]);
    let mut client = common::connect(node.grpc_addr).await;
    // 25 addresses seen once (more than a page of 20), one over its limit, one to add to.
    for n in 0..25 {
        let address = format!("203.0.113.{n}");
        ask(
            &mut client,
            request("edge", &[&[("remote_address", &address)]]),
        )
        .await;
    }
    for _ in 0..7 {
        ask(
            &mut client,
            request("edge", &[&[("remote_address", BLOCKED)]]),
        )
        .await;
    }
    ask(
        &mut client,
        request("edge", &[&[("remote_address", TRAFFIC)]]),
    )
    .await;
    // A bad edit: the page must show the config stale, with the error.
    std::fs::write(
        config.path().join("broken.yaml"),
        "domain: x\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight}\n",
    )
    .unwrap();
    node.log_until("rate limit config rejected", Duration::from_secs(20));

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let base = format!("http://{}", node.http_addr);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .args([base.as_str(), TOKEN])
            .arg(&screenshot)
            .args([BLOCKED, TRAFFIC])
            .env("RATELIMITER_CHROMIUM", chromium)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("the browser script said:\n{stdout}\n{stderr}"));
    eprintln!(
        "screenshot: {}",
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("status-page.png")
            .display()
    );

    assert_eq!(seen["problems"], Value::Array(vec![]), "{seen:#}");
    assert_eq!(
        seen["elsewhere"],
        Value::Array(vec![]),
        "loaded from elsewhere: {seen:#}"
    );
    let before_token = seen["before_token"].as_str().unwrap();
    assert!(
        before_token.contains("401"),
        "without the token: {before_token}"
    );
    assert_eq!(seen["status"], "healthy");
    assert_eq!(seen["store"], "memory");
    let port = format!(":{}", node.grpc_addr.port());
    assert!(
        seen["node_id"].as_str().unwrap().ends_with(&port),
        "{seen:#}"
    );
    assert_eq!(seen["config_state"], "stale");
    assert!(
        seen["config_errors"]
            .as_str()
            .unwrap()
            .contains("fortnight"),
        "{seen:#}"
    );

    let rows =
        |name: &str| -> Vec<Vec<String>> { serde_json::from_value(seen[name].clone()).unwrap() };
    assert_eq!(
        rows("limits"),
        [["edge.remote_address", "5 per hour", "", ""]]
    );
    let nodes = rows("nodes");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0][1], "Up");
    let blocked = format!("remote_address={BLOCKED}");
    let blocks = rows("blocks");
    let row = blocks
        .iter()
        .find(|row| row[1] == blocked)
        .unwrap_or_else(|| panic!("{blocks:?}"));
    assert_eq!(
        (
            row[0].as_str(),
            row[2].as_str(),
            row[3].as_str(),
            row[4].as_str()
        ),
        ("edge", "edge.remote_address", "7", "5")
    );

    let (first, second) = (rows("counters_first_page"), rows("counters_second_page"));
    assert_eq!(first.len(), 20, "a page of 20: {first:?}");
    assert!(!second.is_empty());
    assert!(
        second.iter().all(|row| !first.contains(row)),
        "pages overlap"
    );
    assert_eq!(first.len() + second.len(), 27, "27 counters over two pages");

    assert!(
        !rows("blocks_after_reset")
            .iter()
            .any(|row| row[1] == blocked)
    );
    assert!(
        seen["message_after_reset"]
            .as_str()
            .unwrap()
            .starts_with("reset "),
        "{seen:#}"
    );
    // Six more hits after the page loaded: blocked now, and shown without a reload.
    let newly_blocked = rows("newly_blocked");
    assert_eq!(newly_blocked.len(), 1, "{seen:#}");
    assert_eq!(newly_blocked[0][3], "7", "{newly_blocked:?}");
    assert!(seen["refreshes"].as_u64().unwrap() >= 2, "{seen:#}");

    let png =
        std::fs::read(Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png")).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
