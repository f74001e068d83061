//! `examples/demo.sh`, run as the README tells a newcomer to run it (with the test build's
//! binary instead of a release build): Redis, two nodes, Envoy, and a user limited through
//! Envoy while another is not.

use std::process::Command;

#[test]
fn the_demo_limits_alice_and_not_bob() {
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo.sh"))
        .env("RATELIMITER_BIN", env!("CARGO_BIN_EXE_ratelimiter"))
        .output()
        .expect("the demo runs (bash)");
    let said = String::from_utf8_lossy(&output.stdout);
    let complained = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed:\n{said}\n{complained}"
    );
    for line in [
        "alice, request 1: HTTP 200, x-ratelimit-remaining: 2",
        "alice, request 3: HTTP 200, x-ratelimit-remaining: 0",
        "alice, request 4: HTTP 429, x-ratelimit-remaining: 0",
        "bob, request 1: HTTP 200, x-ratelimit-remaining: 2",
        r#""id":"demo-a""#,
        r#""id":"demo-b""#,
        r#""key":"1|edge|3600|user_id?alice""#,
    ] {
        assert!(
            said.contains(line),
            "the demo did not print {line:?}:\n{said}"
        );
    }
}
