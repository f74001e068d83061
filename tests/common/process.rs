//! The built `ratelimiter` binary as a child process: started with real flags, its addresses read
//! from its own log (so they are its own), signalled like an operator would, killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::ports::{self, PortTaken};

/// How long a node may take to start serving on a loaded machine.
const STARTUP: Duration = Duration::from_secs(30);

pub struct Node {
    child: Child,
    /// The command line (`serve` and its flags, or nothing), and the extra environment: what
    /// [`Node::start_again`] runs.
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
    /// What it logged before it served.
    pub startup_log: Vec<String>,
}

impl Node {
    /// `ratelimiter serve` on loopback port 0 (the addresses it got are read from its log), from
    /// the repository's directory, plus `args`.
    pub fn start(args: &[&str]) -> Node {
        Node::start_with_env(args, &[])
    }

    /// [`Node::start`] with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Node {
        let ports = ["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"];
        let all: Vec<&str> = ports.iter().chain(args).copied().collect();
        Node::start_exactly(&all, env)
    }

    /// `ratelimiter serve` on fixed candidate addresses (`--grpc-addr`, `--http-addr`), so that
    /// [`Node::start_again`] serves on the same ones; started on others if they are taken.
    pub fn start_pinned(args: &[&str]) -> Node {
        ports::retry("ratelimiter", || {
            let grpc = format!("127.0.0.1:{}", ports::candidate());
            let http = format!("127.0.0.1:{}", ports::candidate());
            let addresses = ["--grpc-addr", &grpc, "--http-addr", &http];
            Node::launch(&[&["serve"], &addresses[..], args].concat(), &[])
        })
    }

    /// `ratelimiter serve` with exactly `args` (addresses included).
    pub fn start_exactly(args: &[&str], env: &[(&str, &str)]) -> Node {
        Node::launch(&[&["serve"], args].concat(), env)
            .unwrap_or_else(|PortTaken| panic!("an address of {args:?} is taken"))
    }

    /// `ratelimiter` with no arguments, as a Go deployment's `command: ["/bin/ratelimit"]`
    /// runs it, configured by the Go service's variables `env(grpc port, http port)` alone, on
    /// candidate ports.
    pub fn start_go(env: impl Fn(u16, u16) -> Vec<(String, String)>) -> Node {
        ports::retry("ratelimiter", || {
            let env = env(ports::candidate(), ports::candidate());
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Node::launch(&[], &env)
        })
    }

    /// The same command line again, once this node has exited: its addresses are free again
    /// (they lie outside the range connections take their ports from), unless another test
    /// took them, which fails the test.
    pub fn start_again(&self) -> Node {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        Node::launch(&args, &env)
            .unwrap_or_else(|PortTaken| panic!("an address of {args:?} is taken"))
    }

    /// Starts the process and reads its log until it serves; `PortTaken` if it could not
    /// listen because another process holds an address.
    fn launch(args: &[&str], env: &[(&str, &str)]) -> Result<Node, PortTaken> {
        let mut child = Command::new(binary())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
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
            args: args.iter().map(|arg| arg.to_string()).collect(),
            env: env
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            grpc_addr: unset,
            http_addr: unset,
            stderr,
            startup_log: Vec::new(),
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            let line = match node
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => line,
                // The process exited: its log says why.
                Err(RecvTimeoutError::Disconnected)
                    if ports::taken(&node.startup_log.join("\n")) =>
                {
                    return Err(PortTaken);
                }
                Err(_) => panic!(
                    "the node never logged its gRPC address; it logged:\n{}",
                    node.startup_log.join("\n")
                ),
            };
            if let Some((_, address)) = line.split_once("serving HTTP on ") {
                node.http_addr = address.trim().parse().expect("an HTTP address");
            }
            if let Some((_, address)) = line.split_once("serving gRPC on ") {
                node.grpc_addr = address.trim().parse().expect("a gRPC address");
                return Ok(node);
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

    /// What the node logs from now (since the last call) up to the first line that contains
    /// `text`, which must come within `within`. Blocks the thread.
    pub fn log_until(&self, text: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut lines = Vec::new();
        while !lines
            .last()
            .is_some_and(|line: &String| line.contains(text))
        {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => lines.push(line),
                Err(_) => panic!(
                    "the node did not log {text:?} within {within:?}; it logged:\n{}",
                    lines.join("\n")
                ),
            }
        }
        lines
    }

    /// Everything the node logs until it exits (after a signal). Blocks the thread.
    pub fn log_until_exit(&self) -> Vec<String> {
        self.stderr.iter().collect()
    }
}

/// `ratelimiter serve` on loopback port 0 with `args`, run to its end (a start that fails):
/// its exit code and what it printed.
pub fn serve_until_exit(args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(args)
        .output()
        .expect("the ratelimiter binary runs")
}

/// The binary to run: this build's, or the one `RATELIMITER_TEST_BINARY` names (to take the same
/// measurements of another build).
fn binary() -> std::ffi::OsString {
    std::env::var_os("RATELIMITER_TEST_BINARY")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ratelimiter").into())
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
