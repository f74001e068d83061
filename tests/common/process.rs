//! The built `ratelimiter` binary as a child process: started with real flags, its addresses read
//! from its log, signalled like an operator would, killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a node may take to start serving on a loaded machine.
const STARTUP: Duration = Duration::from_secs(30);

pub struct Node {
    child: Child,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
    /// What it logged before it served.
    pub startup_log: Vec<String>,
}

impl Node {
    /// `ratelimiter serve` on free loopback ports, from the repository's directory, plus `args`.
    pub fn start(args: &[&str]) -> Node {
        Node::start_with_env(args, &[])
    }

    /// [`Node::start`] with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Node {
        let ports = ["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"];
        let all: Vec<&str> = ports.iter().chain(args).copied().collect();
        Node::start_exactly(&all, env)
    }

    /// `ratelimiter serve` with exactly `args` (addresses included).
    pub fn start_exactly(args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ratelimiter"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the ratelimiter binary starts");
        let (lines, stderr) = mpsc::channel();
        let pipe = BufReader::new(child.stderr.take().expect("stderr is piped"));
        std::thread::spawn(move || {
            for line in pipe.lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        // Owned by `Node` from here on, so that a failed start still kills the process.
        let unset = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut node = Node {
            child,
            grpc_addr: unset,
            http_addr: unset,
            stderr,
            startup_log: Vec::new(),
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            let Ok(line) = node
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                panic!(
                    "the node never logged its gRPC address; it logged:\n{}",
                    node.startup_log.join("\n")
                );
            };
            if let Some((_, address)) = line.split_once("serving HTTP on ") {
                node.http_addr = address.trim().parse().expect("an HTTP address");
            }
            if let Some((_, address)) = line.split_once("serving gRPC on ") {
                node.grpc_addr = address.trim().parse().expect("a gRPC address");
                return node;
            }
            node.startup_log.push(line);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the node.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the node to exit, without blocking the runtime: the test's clients keep
    /// answering the server's HTTP/2 shutdown handshake (GOAWAY, PING) as Envoy would.
    pub async fn wait_for_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("the node can be waited for") {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the node did not exit within {within:?}; it logged:\n{}",
            self.logged().join("\n")
        );
    }

    /// What the node logged since it started serving (and since the last call).
    pub fn logged(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
