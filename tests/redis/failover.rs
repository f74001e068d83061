//! Redis changing under a running service: a Sentinel failover, planned and after a crash; a
//! Cluster master that crashes and comes back; a Cluster master replaced by its replica. The
//! service follows by itself: it answers UNAVAILABLE (never a wrong OK) while it cannot count,
//! and counts on from what Redis kept.

use std::time::{Duration, Instant};

use crate::common::eventually;
use crate::common::faults::{admitted, call, service, until_ok};
use crate::common::redis::{
    RedisCluster, RedisSentinel, RedisServer, SENTINEL_MASTER, keys_and_ttls,
};
use crate::common::{Client, Code, Service};

/// Sentinel notices a dead master after 0.5 s and promotes the replica; slack for 2 cores.
const FAILOVER: Duration = Duration::from_secs(15);

/// The announced switch reaches the service at once; slack for 2 cores, and far below the 10 s
/// after which Sentinel would demote the old master (and drop its clients) by itself.
const SWITCH: Duration = Duration::from_secs(3);

/// Connections to `redis` other than a replica's, the sentinel's and `redis-cli`'s own: the
/// service's.
fn service_connections(redis: &RedisServer) -> usize {
    redis
        .cli(&["client", "list"])
        .lines()
        .filter(|line| {
            !line.contains("flags=S")
                && !line.contains("name=sentinel-")
                && !line.contains("cmd=client|list")
        })
        .count()
}

/// A number field of `INFO replication`.
fn replication_offset(redis: &RedisServer, field: &str) -> u64 {
    let info = redis.cli(&["info", "replication"]);
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {info}"))
}

/// Waits until `replica` has processed everything `master` wrote so far. (`WAIT` would not do:
/// it waits for the calling connection's own writes, and `redis-cli` has made none.)
async fn replicated(master: &RedisServer, replica: &RedisServer) {
    let written = replication_offset(master, "master_repl_offset");
    eventually(FAILOVER, "the replica catches up", || async {
        replication_offset(replica, "slave_repl_offset") >= written
    })
    .await;
}

/// Thirty users, each hit once (and admitted); their keys spread over every master.
async fn users_hit_once(client: &mut Client) -> Vec<String> {
    let users: Vec<String> = (0..30).map(|index| format!("user-{index}")).collect();
    for user in &users {
        assert_eq!(call(client, user).await, Ok(Code::Ok), "{user}");
    }
    users
}

/// Waits until calls on 30 probe keys, spread over every master of a Cluster, all succeed.
async fn every_master_serves(service: &Service) {
    let probes: Vec<String> = (0..30).map(|index| format!("probe-{index}")).collect();
    eventually(
        FAILOVER,
        "keys on every master are served again",
        || async {
            let mut client = service.client().await;
            for probe in &probes {
                if call(&mut client, probe).await.is_err() {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_follows_a_sentinel_failover() {
    let mut redis = RedisSentinel::start();
    let flags = [
        "--redis-type",
        "sentinel",
        "--redis-sentinel-master",
        SENTINEL_MASTER,
    ];
    let service = service(&redis.url(), &flags).await;
    let mut client = service.client().await;
    assert_eq!(admitted(&mut client, "alice", 2).await, 2);
    replicated(&redis.master, &redis.replica).await;

    // Planned: the sentinel promotes the replica. The old master still takes writes until
    // Sentinel next looks at it (up to 10 s); the service leaves it as soon as the switch is
    // announced, so that nothing it counts is lost there.
    assert!(
        service_connections(&redis.master) > 0,
        "the service is not on the master"
    );
    let promoted = redis.replica.port;
    // Refused (NOGOODSLAVE) while the sentinel has not yet connected to the replica.
    eventually(FAILOVER, "the sentinel starts a failover", || async {
        let answer = redis
            .sentinel
            .cli(&["sentinel", "failover", SENTINEL_MASTER]);
        answer.trim() == "OK"
    })
    .await;
    eventually(FAILOVER, "the sentinel names the replica", || async {
        redis.master_port() == Some(promoted)
    })
    .await;
    let promoted_at = Instant::now();
    eventually(SWITCH, "the service leaves the old master", || async {
        service_connections(&redis.master) == 0
    })
    .await;
    until_ok(&mut client, "requests work on the new master").await;
    eprintln!(
        "planned failover: served {:?} after the promotion",
        promoted_at.elapsed()
    );
    assert_eq!(admitted(&mut client, "alice", 1).await, 1);

    // Crash: the new master dies; the old one, its replica now, takes over again.
    eventually(
        FAILOVER,
        "the old master replicates the new one",
        || async {
            redis
                .master
                .cli(&["info", "replication"])
                .contains("master_link_status:up")
        },
    )
    .await;
    replicated(&redis.replica, &redis.master).await;
    redis.replica.kill();
    assert_eq!(
        call(&mut client, "during").await,
        Err(tonic::Code::Unavailable)
    );
    let old_master = redis.master.port;
    eventually(FAILOVER, "the old master is promoted back", || async {
        redis.master_port() == Some(old_master)
    })
    .await;
    let promoted_at = Instant::now();
    until_ok(&mut client, "requests work after the crash failover").await;
    eprintln!(
        "crash failover: served {:?} after the promotion",
        promoted_at.elapsed()
    );
    // 3 of 4 were spent before the failovers: exactly one more is admitted.
    assert_eq!(admitted(&mut client, "alice", 3).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_cluster_master_fails_only_its_keys_and_heals_when_back() {
    let mut cluster = RedisCluster::start();
    let service = service(&cluster.url(), &["--redis-type", "cluster"]).await;
    let mut client = service.client().await;
    let users = users_hit_once(&mut client).await;

    // Within the cluster's 5 s node timeout the other masters still serve their keys.
    cluster.nodes[1].kill();
    let mut answered = 0;
    let mut unavailable = 0;
    for user in &users {
        match call(&mut client, user).await {
            Ok(Code::Ok) => answered += 1,
            Err(tonic::Code::Unavailable) => unavailable += 1,
            other => panic!("{user} got {other:?}"),
        }
    }
    assert!(answered > 0, "the live masters answered nothing");
    assert!(unavailable > 0, "no key lived on the dead master");

    cluster.nodes[1].restart();
    let restarted_at = Instant::now();
    every_master_serves(&service).await;
    eprintln!(
        "cluster: every master served {:?} after the restart",
        restarted_at.elapsed()
    );
    // Users answered while the master was down have spent 2 of 4. The restarted master lost
    // its data (no persistence): its users start over with 4. A user refused by a live master
    // (once the cluster's node timeout marks it down) has spent 1.
    let mut left = Vec::new();
    for user in &users {
        left.push(admitted(&mut client, user, 5).await);
    }
    let count = |wanted: usize| left.iter().filter(|&&each| each == wanted).count();
    assert_eq!(count(2), answered, "{left:?}");
    assert_eq!(count(3) + count(4), unavailable, "{left:?}");
    assert!(count(4) > 0, "{left:?}");
}

/// The first line of `ROLE`, and for a replica its master's port.
fn role(redis: &RedisServer) -> (String, Option<u16>) {
    let answer = redis.cli(&["role"]);
    let mut lines = answer.lines();
    let role = lines.next().unwrap_or_default().to_string();
    let master_port = (role == "slave")
        .then(|| lines.nth(1)?.trim().parse().ok())
        .flatten();
    (role, master_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_master_replaced_by_its_replica_keeps_its_counts() {
    let mut cluster = RedisCluster::start_with_replicas();
    let service = service(&cluster.url(), &["--redis-type", "cluster"]).await;
    let mut client = service.client().await;
    let users = users_hit_once(&mut client).await;

    let victim = (0..cluster.nodes.len())
        .find(|&index| {
            role(&cluster.nodes[index]).0 == "master"
                && !keys_and_ttls(cluster.nodes[index].port).is_empty()
        })
        .expect("a master holds some of the counters");
    let victim_port = cluster.nodes[victim].port;
    let heir = (0..cluster.nodes.len())
        .find(|&index| role(&cluster.nodes[index]).1 == Some(victim_port))
        .expect("the master has a replica");
    replicated(&cluster.nodes[victim], &cluster.nodes[heir]).await;

    cluster.nodes[victim].kill();
    eventually(FAILOVER, "the replica takes over", || async {
        role(&cluster.nodes[heir]).0 == "master"
    })
    .await;
    let promoted_at = Instant::now();
    every_master_serves(&service).await;
    eprintln!(
        "cluster failover: every key served {:?} after the promotion",
        promoted_at.elapsed()
    );
    // Every user spent 1 of 4 before the failover, on the replica too: 3 are left.
    for user in &users {
        assert_eq!(admitted(&mut client, user, 5).await, 3, "{user}");
    }
}
