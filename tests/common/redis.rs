//! Real Redis for tests: `redis-server` processes on free loopback ports, in temporary
//! directories, as a single server, a 3-master Cluster or a master watched by a sentinel. Every
//! process is killed when its handle drops, so a failing test leaves nothing behind.
//!
//! A missing `redis-server` fails the test with the command that installs it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to answer PING after it starts (generous for a loaded machine).
const START_DEADLINE: Duration = Duration::from_secs(20);

/// One `redis-server` process, restartable on the same port.
pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    /// The whole `redis-server` command line.
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// A single server on a free port.
    pub fn start() -> RedisServer {
        RedisServer::start_with(free_port(), &[])
    }

    /// A server on `port` with extra `redis-server` arguments.
    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let mut server = RedisServer::planned_on(port, extra);
        server.launch();
        server
    }

    /// A server that is not running yet: its port is chosen, [`RedisServer::restart`] starts it.
    pub fn planned() -> RedisServer {
        RedisServer::planned_on(free_port(), &[])
    }

    fn planned_on(port: u16, extra: &[&str]) -> RedisServer {
        let port_text = port.to_string();
        let args = [
            "--port",
            &port_text,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ];
        RedisServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            args: args
                .iter()
                .chain(extra)
                .map(|arg| arg.to_string())
                .collect(),
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let child = Command::new(redis_server())
            .current_dir(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_for_ping(self.port);
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`] or for a planned one).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// SIGSTOP: the process keeps its sockets but answers nothing.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Runs a command with `redis-cli` and returns its output (for checks the store cannot make).
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three cluster-enabled masters, slots spread by `redis-cli --cluster create`, and for
/// [`RedisCluster::start_with_replicas`] one replica each.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        RedisCluster::create(0, "5000")
    }

    /// Three masters and three replicas; a master that stops answering for a second is
    /// replaced by its replica.
    pub fn start_with_replicas() -> RedisCluster {
        RedisCluster::create(1, "1000")
    }

    fn create(replicas: usize, node_timeout: &str) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(
                    free_cluster_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        node_timeout,
                        "--repl-diskless-sync-delay",
                        "0",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let output = Command::new(redis_cli())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + START_DEADLINE;
        for node in &cluster.nodes {
            while !node.cli(&["cluster", "info"]).contains("cluster_state:ok")
                || (replicas > 0 && cluster.replicas_linked() < 3)
            {
                assert!(Instant::now() < deadline, "the cluster never became ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// How many replicas have a live link to their master.
    fn replicas_linked(&self) -> usize {
        self.nodes
            .iter()
            .filter(|node| {
                node.cli(&["info", "replication"])
                    .contains("master_link_status:up")
            })
            .count()
    }

    /// The seed URLs, comma-separated, as `--redis-url` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A master, a replica of it, and one sentinel watching them as `mymaster` that fails over
/// half a second after the master stops answering.
pub struct RedisSentinel {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinel: RedisServer,
}

/// The master name the sentinel monitors.
pub const SENTINEL_MASTER: &str = "mymaster";

impl RedisSentinel {
    pub fn start() -> RedisSentinel {
        // Either may become the master; a new replica then syncs at once, not after 5 s.
        let no_delay = ["--repl-diskless-sync-delay", "0"];
        let master = RedisServer::start_with(free_port(), &no_delay);
        let master_port = master.port.to_string();
        let replica = RedisServer::start_with(
            free_port(),
            &[&no_delay[..], &["--replicaof", "127.0.0.1", &master_port]].concat(),
        );
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sentinel.conf");
        // A failover must be confirmed within failover-timeout (the sentinel looks once a
        // second), and the next may start only twice that after it: 3 s serves both.
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\n\
                 sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 500\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 3000\n"
            ),
        )
        .unwrap();
        let config = config.to_str().unwrap().to_string();
        // A sentinel takes its config file first.
        let mut sentinel = RedisServer {
            port,
            dir,
            args: vec![config, "--sentinel".into()],
            child: None,
        };
        sentinel.launch();
        let sentinels = RedisSentinel {
            master,
            replica,
            sentinel,
        };
        let replica_port = sentinels.replica.port.to_string();
        let deadline = Instant::now() + START_DEADLINE;
        while sentinels.master_port() != Some(sentinels.master.port)
            || !sentinels
                .sentinel
                .cli(&["sentinel", "replicas", SENTINEL_MASTER])
                .contains(&replica_port)
            || !sentinels
                .replica
                .cli(&["info", "replication"])
                .contains("master_link_status:up")
        {
            assert!(
                Instant::now() < deadline,
                "the sentinel never knew its master and replica"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sentinels
    }

    /// The port of the master the sentinel names now.
    pub fn master_port(&self) -> Option<u16> {
        let answer = self
            .sentinel
            .cli(&["sentinel", "get-master-addr-by-name", SENTINEL_MASTER]);
        answer.lines().nth(1)?.trim().parse().ok()
    }

    /// The sentinel's URL, as `--redis-url` takes it with `--redis-type sentinel`.
    pub fn url(&self) -> String {
        self.sentinel.url()
    }
}

/// `redis-server`, or a failure that says how to install it.
fn redis_server() -> &'static str {
    require("redis-server")
}

fn redis_cli() -> &'static str {
    require("redis-cli")
}

fn require(program: &'static str) -> &'static str {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "{program} is not installed: run scripts/setup (it installs the Debian packages \
         redis-server and redis-tools)"
    );
    program
}

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new(redis_cli())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until the server on `port` answers PING (or asks for a password).
fn wait_for_ping(port: u16) {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if ping(port) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} never answered PING"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0; 7];
    // A server with a password answers, too: "-NOAUTH Authentication required."
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && (&reply == b"+PONG\r\n" || &reply == b"-NOAUTH")
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_535 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Polls `check` every 20 ms until it holds, failing with `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every key on the server at `port` and its PTTL (-1: no expiry; -2: gone).
pub fn keys_and_ttls(port: u16) -> Vec<(String, i64)> {
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut connection = client.get_connection().unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query(&mut connection)
        .unwrap();
    let mut pipe = ::redis::pipe();
    for key in &keys {
        pipe.cmd("PTTL").arg(key);
    }
    let ttls: Vec<i64> = pipe.query(&mut connection).unwrap();
    keys.into_iter().zip(ttls).collect()
}
