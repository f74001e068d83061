//! A check waits for Redis until the caller's deadline (the `grpc-timeout` it sent, less a
//! margin to answer in time), and for `--redis-timeout` only when it sent none. Redis is slowed
//! with `DEBUG SLEEP` below and above the caller's deadline; a call whose deadline passes before
//! it is sent is never sent; a service starved of CPU fails no call.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use envoy_types::pb::google::protobuf::UInt64Value;
use futures_util::future::join_all;

use crate::common::http::Http;
use crate::common::process::Node;
use crate::common::redis::RedisServer;
use crate::common::{Client, Code, Service, code, config_dir, connect, request};

const LIMITS: &str = "
domain: deadlines
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 100}
";

/// The limit above.
const LIMIT: u32 = 100;

/// Far more than any wait in these tests: a call that takes this long has hung.
const HUNG: Duration = Duration::from_secs(15);

/// A Redis that obeys `DEBUG SLEEP`, the service on it with `--redis-timeout`, and a client
/// whose first hit, for `user`, was answered.
async fn slowable(redis_timeout: &str, user: &str) -> (RedisServer, Service, Client) {
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let url = redis.url();
    let flags = ["--redis-url", &url, "--redis-timeout", redis_timeout];
    let service = Service::start(&[("deadlines.yaml", LIMITS)], &flags).await;
    let mut client = service.client().await;
    assert_eq!(call(&mut client, user, None).await.0, Ok(Code::Ok));
    (redis, service, client)
}

/// One hit for `user`, with `grpc-timeout` when `timeout` is given: the overall code or the
/// gRPC status code, and how long the answer took.
async fn call(
    client: &mut Client,
    user: &str,
    timeout: Option<Duration>,
) -> (Result<Code, tonic::Code>, Duration) {
    let mut call = tonic::Request::new(request("deadlines", &[&[("user", user)]]));
    if let Some(timeout) = timeout {
        call.set_timeout(timeout);
    }
    let started = Instant::now();
    let answer = tokio::time::timeout(HUNG, client.should_rate_limit(call))
        .await
        .expect("the call is answered");
    let took = started.elapsed();
    let answer = answer
        .map(|response| code(&response.into_inner()))
        .map_err(|status| status.code());
    (answer, took)
}

/// `user`'s count, read without adding to it, once the service reaches Redis again (it may be
/// reconnecting after Redis slept through its pings).
async fn count(client: &mut Client, user: &str) -> u32 {
    let deadline = Instant::now() + HUNG;
    loop {
        let mut check = request("deadlines", &[&[("user", user)]]);
        check.descriptors[0].hits_addend = Some(UInt64Value { value: 0 });
        match client.should_rate_limit(check).await {
            Ok(response) => return LIMIT - response.into_inner().statuses[0].limit_remaining,
            Err(status) => assert!(Instant::now() < deadline, "no count: {status:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Puts Redis to sleep for `seconds` (`DEBUG SLEEP`, which blocks every client), returning once
/// Redis has stopped answering; join the handle to wait for it to wake.
fn put_to_sleep(redis: &RedisServer, seconds: &str) -> JoinHandle<()> {
    let port = redis.port;
    let sleeper = {
        let command = ["debug", "sleep", seconds].map(str::to_string);
        let cli = move || {
            let output = std::process::Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(&command)
                .output()
                .expect("redis-cli runs");
            assert!(
                String::from_utf8_lossy(&output.stdout).contains("OK"),
                "DEBUG SLEEP was refused: {output:?}"
            );
        };
        std::thread::spawn(cli)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while answers_ping_quickly(port) {
        assert!(Instant::now() < deadline, "Redis never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    sleeper
}

/// Whether Redis answers a PING within 50 ms.
fn answers_ping_quickly(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut reply = [0; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_redis_is_waited_for_until_the_callers_deadline() {
    // --redis-timeout alone would cut every call after 100 ms.
    let (redis, service, mut client) = slowable("100ms", "patient").await;

    let asleep = put_to_sleep(&redis, "0.8");
    let (answer, took) = call(&mut client, "patient", Some(Duration::from_secs(5))).await;
    asleep.join().unwrap();
    assert_eq!(answer, Ok(Code::Ok), "after {took:?}");
    assert!(
        took > Duration::from_millis(300),
        "Redis was asleep, yet the call took only {took:?}"
    );
    assert_eq!(service.metrics.store_deadlines_passed.get(), 0);
    assert_eq!(count(&mut client, "patient").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_slower_than_the_callers_deadline_is_unavailable_by_then() {
    // Only the caller's deadline can cut the call short.
    let (redis, service, mut client) = slowable("10s", "hurried").await;

    let asleep = put_to_sleep(&redis, "2");
    let (answer, took) = call(&mut client, "hurried", Some(Duration::from_millis(300))).await;
    // UNAVAILABLE from the service, before tonic's own CANCELLED at the deadline itself.
    assert_eq!(answer, Err(tonic::Code::Unavailable), "after {took:?}");
    assert!(
        took < Duration::from_millis(1_500),
        "answered after {took:?}"
    );
    assert_eq!(service.metrics.store_deadlines_passed.get(), 1);
    asleep.join().unwrap();

    // The call had been sent: Redis ran it once when it woke, and never again.
    let counted = count(&mut client, "hurried").await;
    assert!(counted <= 2, "counted {counted} times for 2 calls");
    crate::common::eventually(HUNG, "the late call is counted", || {
        let mut client = client.clone();
        async move { count(&mut client, "hurried").await == 2 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_whose_deadline_passes_before_it_is_sent_is_never_sent() {
    let (redis, service, mut first) = slowable("10s", "warm-up").await;
    let mut second = service.client().await;

    let asleep = put_to_sleep(&redis, "2.5");
    // The first call goes out and waits for Redis; the second waits behind it...
    let waiting = tokio::spawn(async move {
        let answer = call(&mut first, "sent", Some(Duration::from_secs(10))).await;
        (answer, first)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... until its deadline passes, and it is answered without being sent.
    let (answer, took) = call(&mut second, "given-up", Some(Duration::from_millis(200))).await;
    assert_eq!(answer, Err(tonic::Code::Unavailable), "after {took:?}");
    assert!(
        took < Duration::from_millis(1_500),
        "answered after {took:?}"
    );

    let ((answer, _), mut first) = waiting.await.unwrap();
    asleep.join().unwrap();
    assert_eq!(answer, Ok(Code::Ok));
    assert_eq!(count(&mut first, "sent").await, 1);
    assert_eq!(count(&mut first, "given-up").await, 0, "it reached Redis");
}

/// Busy loops sharing one CPU with a process, taking most of that CPU from it, until dropped.
struct CpuHogs {
    hogs: Vec<Child>,
}

impl CpuHogs {
    /// Pins `pid` (every thread) to the first CPU and starts three busy loops on it: the
    /// process gets about a quarter of one CPU, and tests running beside this one keep the
    /// others.
    fn starve(pid: u32) -> CpuHogs {
        let pinned = Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .expect("taskset runs (util-linux)");
        assert!(pinned.success(), "taskset could not pin {pid}");
        let hogs = (0..3)
            .map(|_| {
                Command::new("taskset")
                    .args(["-c", "0", "sh", "-c", "while :; do :; done"])
                    .spawn()
                    .expect("a busy loop starts")
            })
            .collect();
        CpuHogs { hogs }
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        for hog in &mut self.hogs {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

/// The value of an unlabelled metric in a Prometheus scrape.
fn metric(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in the scrape"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_starved_of_cpu_fails_no_call() {
    let redis = RedisServer::start();
    let config = config_dir(&[("deadlines.yaml", LIMITS)]);
    // The defaults: --redis-timeout for callers without a deadline, theirs for the others.
    let node = Node::start(&[
        "--config",
        config.path().to_str().unwrap(),
        "--redis-url",
        &redis.url(),
    ]);
    let clients = join_all((0..8).map(|_| connect(node.grpc_addr))).await;
    let hogs = CpuHogs::starve(node.pid());
    let answers = join_all(clients.into_iter().enumerate().map(|(index, mut client)| {
        async move {
            let mut answers = Vec::new();
            for turn in 0..40 {
                // Envoy's default 20 ms could be cut on a CPU this busy; a deadline of a few
                // seconds, or none, must not be.
                let timeout = (turn % 2 == 0).then_some(Duration::from_secs(5));
                let user = format!("starved-{}", (index + turn) % 8);
                answers.push(call(&mut client, &user, timeout).await);
            }
            answers
        }
    }))
    .await;
    drop(hogs);
    let answers: Vec<_> = answers.into_iter().flatten().collect();
    let failed: Vec<_> = answers
        .iter()
        .filter(|(answer, _)| *answer != Ok(Code::Ok))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    let slowest = answers.iter().map(|(_, took)| *took).max().unwrap();
    eprintln!(
        "{} calls on a starved CPU, the slowest took {slowest:?}",
        answers.len()
    );
    let scrape = Http::new(node.http_addr).get("/metrics").await.body;
    assert_eq!(
        metric(&scrape, "ratelimiter_store_deadline_exceeded_total"),
        0.0
    );
    assert_eq!(metric(&scrape, "ratelimiter_store_errors_total"), 0.0);
}
