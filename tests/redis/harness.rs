//! The harness itself: a server counts as started only when the process answering on its port
//! is the one the harness started, so a test never talks to another test's Redis.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::redis::RedisServer;

#[test]
fn a_restart_never_takes_another_server_on_its_port_for_its_own() {
    let mut ours = RedisServer::start();
    ours.kill();
    // Another redis-server takes the port while ours is down.
    let mut other = Command::new("redis-server")
        .args(["--port", &ours.port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ours.cli(&["ping"]).trim() != "PONG" {
        assert!(Instant::now() < deadline, "the other server never answered");
        std::thread::sleep(Duration::from_millis(20));
    }

    let restarted = catch_unwind(AssertUnwindSafe(|| ours.restart()));
    let _ = other.kill();
    let _ = other.wait();
    let refused = restarted.expect_err("the restart took the other server for its own");
    let message = refused
        .downcast_ref::<String>()
        .map_or("(no message)", String::as_str);
    assert!(message.contains("was taken"), "{message}");
}
