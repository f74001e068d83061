//! Real Redis for tests: `redis-server` processes on loopback ports, in temporary directories,
//! as a single server, a 3-master Cluster or a master watched by a sentinel. A server has
//! started once the one answering on its port reports this child's pid (`INFO server`), so a
//! test never talks to another test's server; a start whose port was taken is retried on
//! another port. Every process is killed when its handle drops, so a failing test leaves
//! nothing behind.
//!
//! A missing `redis-server` fails the test with the command that installs it.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::ports::{self, PortTaken, ReservedPort};

/// How long a server may take to answer after it starts (generous for a loaded machine).
const START_DEADLINE: Duration = Duration::from_secs(20);

/// One `redis-server` process, restartable on the same port.
pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    /// The whole `redis-server` command line.
    args: Vec<String>,
    child: Option<Child>,
    /// Held until a planned server first starts: until then, connections to its port are
    /// refused rather than answered by whatever else took it.
    reserved: Option<ReservedPort>,
}

impl RedisServer {
    /// A single server.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A server with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        RedisServer::start_on_candidates(|port, _| server_args(port, extra))
    }

    /// A server with extra arguments that name its companion port ([`ports::companion`]), such
    /// as a TLS port.
    pub fn start_with_companion(extra: impl Fn(u16) -> Vec<String>) -> RedisServer {
        RedisServer::start_on_candidates(|port, _| {
            let extra = extra(ports::companion(port));
            server_args(port, &extra.iter().map(String::as_str).collect::<Vec<_>>())
        })
    }

    /// A server that is not running yet: its port is reserved (connections are refused), and
    /// [`RedisServer::restart`] starts it there.
    pub fn planned() -> RedisServer {
        let reserved = ReservedPort::new();
        RedisServer {
            port: reserved.port,
            dir: tempfile::tempdir().unwrap(),
            args: server_args(reserved.port, &[]),
            child: None,
            reserved: Some(reserved),
        }
    }

    /// Starts `redis-server` with `command(port, its directory)` on candidate ports until one
    /// was free.
    fn start_on_candidates(command: impl Fn(u16, &Path) -> Vec<String>) -> RedisServer {
        ports::retry("redis-server", || {
            let port = ports::candidate();
            let dir = tempfile::tempdir().unwrap();
            let mut server = RedisServer {
                port,
                args: command(port, dir.path()),
                dir,
                child: None,
                reserved: None,
            };
            server.launch().map(|()| server)
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits until the server answering on the port is this child.
    fn launch(&mut self) -> Result<(), PortTaken> {
        self.reserved = None;
        let log_path = self.dir.path().join("redis.log");
        let log = File::create(&log_path).unwrap();
        let mut child = Command::new(redis_server())
            .current_dir(self.dir.path())
            .args(&self.args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("redis-server starts");
        let (port, pid) = (self.port, child.id());
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let deadline = Instant::now() + START_DEADLINE;
        while answering_pid(port, self.password()) != Some(pid) {
            if let Some(status) = child.try_wait().unwrap() {
                if ports::taken(&log()) {
                    return Err(PortTaken);
                }
                panic!("redis-server on port {port} exited ({status}):\n{}", log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server (pid {pid}) never answered on port {port}; its log:\n{}",
                    log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    /// The `--requirepass` the server was started with.
    fn password(&self) -> Option<&str> {
        let at = self.args.iter().position(|arg| arg == "--requirepass")?;
        self.args.get(at + 1).map(String::as_str)
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`] or for a planned
    /// one). Its port lies outside the range connections take theirs from, so only another
    /// test's server could have taken it meanwhile: that fails the test.
    pub fn restart(&mut self) {
        self.kill();
        if self.launch().is_err() {
            panic!(
                "port {} was taken while its redis-server was down",
                self.port
            );
        }
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

/// A plain server's command line on `port`, plus `extra`.
fn server_args(port: u16, extra: &[&str]) -> Vec<String> {
    let port = port.to_string();
    let args = [
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
    ];
    args.iter()
        .chain(extra)
        .map(|arg| arg.to_string())
        .collect()
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
                RedisServer::start_with_companion(|bus_port| {
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-port",
                        &bus_port.to_string(),
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        node_timeout,
                        "--repl-diskless-sync-delay",
                        "0",
                    ]
                    .map(str::to_string)
                    .to_vec()
                })
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
        let master = RedisServer::start_with(&no_delay);
        let master_port = master.port.to_string();
        let replica = RedisServer::start_with(
            &[&no_delay[..], &["--replicaof", "127.0.0.1", &master_port]].concat(),
        );
        // A sentinel takes its config file first.
        let sentinel = RedisServer::start_on_candidates(|port, dir| {
            let config = dir.join("sentinel.conf");
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
            vec![config.to_str().unwrap().to_string(), "--sentinel".into()]
        });
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

/// The pid that the server answering on `port` reports (`INFO server`), if one answers.
fn answering_pid(port: u16, password: Option<&str>) -> Option<u32> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut replies = BufReader::new(stream.try_clone().ok()?);
    if let Some(password) = password {
        stream.write_all(&command(&["AUTH", password])).ok()?;
        reply(&mut replies)?;
    }
    stream.write_all(&command(&["INFO", "server"])).ok()?;
    let info = reply(&mut replies)?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:")?.trim().parse().ok())
}

/// A command in the Redis protocol.
fn command(args: &[&str]) -> Vec<u8> {
    let mut text = format!("*{}\r\n", args.len());
    for arg in args {
        text.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    text.into_bytes()
}

/// A simple or bulk string reply; `None` for an error (such as `-LOADING`) or no answer.
fn reply(replies: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    replies.read_line(&mut line).ok()?;
    if let Some(text) = line.strip_prefix('+') {
        return Some(text.trim_end().to_string());
    }
    let length: usize = line.strip_prefix('$')?.trim_end().parse().ok()?;
    let mut text = vec![0; length + 2];
    replies.read_exact(&mut text).ok()?;
    text.truncate(length);
    String::from_utf8(text).ok()
}

/// Every key on the server at `port` and its PTTL (-1: no expiry), in one script: no key expires
/// between the listing and the look.
pub fn keys_and_ttls(port: u16) -> Vec<(String, i64)> {
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut connection = client.get_connection().unwrap();
    ::redis::cmd("EVAL")
        .arg(
            "local listed = {} \
             for _, key in ipairs(redis.call('KEYS', '*')) do \
                 listed[#listed + 1] = {key, redis.call('PTTL', key)} \
             end \
             return listed",
        )
        .arg(0)
        .query(&mut connection)
        .unwrap()
}
