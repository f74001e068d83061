//! A Redis store (and its link) built from flags as the service builds it, for tests and
//! benchmarks that talk to the store directly.

use std::sync::Arc;

use clap::Parser;
use ratelimiter::health::Health;
use ratelimiter::server::options;
use ratelimiter::settings::{Cli, Command};
use ratelimiter::store::RedisStore;
use ratelimiter::store::redis::RedisLink;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A store (and its link) on a running Redis, as the service would build it from `flags`.
pub struct Connected {
    pub link: Arc<RedisLink>,
    pub store: Arc<RedisStore>,
    pub health: Arc<Health>,
    _stop: DropGuard,
}

/// Connects to `url` with `flags` (such as `--redis-type cluster`), test timeouts, and counter
/// keys behind `prefix`.
pub async fn connect(url: &str, flags: &[&str], prefix: &str) -> Connected {
    let mut args = vec![
        "ratelimiter",
        "serve",
        "--redis-url",
        url,
        "--redis-key-prefix",
        prefix,
        "--redis-timeout",
        TEST_TIMEOUT,
        "--redis-connect-timeout",
        "1s",
    ];
    args.extend_from_slice(flags);
    let Command::Serve(settings) = Cli::parse_from(args).command else {
        unreachable!("parsed a serve command")
    };
    let health = Arc::new(Health::new());
    let stop = CancellationToken::new();
    let redis = options::redis(&settings).expect("--redis-url given");
    let link = RedisLink::start(&redis, health.store(), stop.clone())
        .await
        .unwrap();
    let store = Arc::new(RedisStore::new(link.clone(), prefix));
    Connected {
        link,
        store,
        health,
        _stop: stop.drop_guard(),
    }
}

/// `--redis-timeout` in tests: short, so that fault tests are answered quickly, yet far above
/// what a healthy call takes on a loaded machine.
pub const TEST_TIMEOUT: &str = "200ms";
