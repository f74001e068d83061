//! One service on Redis and the calls that fault tests make to it: every call must be answered
//! (OK/OVER_LIMIT or a gRPC error) well before it could be called hung.

use std::time::{Duration, Instant};

use super::redis_store::TEST_TIMEOUT;
use super::{Client, Code, Service, code, request};

/// Limit 4 per hour on `user`.
pub const LIMITS: &str = "
domain: faults
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 4}
";

/// Far beyond the 200 ms timeout: a call that takes this long has hung.
const HUNG: Duration = Duration::from_secs(5);

/// Redis comes back within 2 s; the rest is slack for a loaded 2-core machine.
pub const RECOVERY: Duration = Duration::from_secs(4);

/// The service with [`LIMITS`] on Redis at `url`, plus `flags` (such as `--redis-type`).
pub async fn service(url: &str, flags: &[&str]) -> Service {
    let args = [
        &["--redis-url", url, "--redis-timeout", TEST_TIMEOUT],
        flags,
    ]
    .concat();
    Service::start(&[("faults.yaml", LIMITS)], &args).await
}

/// One call for `user`: Ok(overall code), or Err(gRPC status code). Fails if it hangs.
pub async fn call(client: &mut Client, user: &str) -> Result<Code, tonic::Code> {
    let started = Instant::now();
    let answer = client
        .should_rate_limit(request("faults", &[&[("user", user)]]))
        .await;
    assert!(
        started.elapsed() < HUNG,
        "a call took {:?}",
        started.elapsed()
    );
    answer
        .map(|response| code(&response.into_inner()))
        .map_err(|status| status.code())
}

/// Polls with calls until one is answered, failing with `what` after [`RECOVERY`].
pub async fn until_ok(client: &mut Client, what: &str) {
    let deadline = Instant::now() + RECOVERY;
    while call(client, "probe").await.is_err() {
        assert!(Instant::now() < deadline, "{what} within {RECOVERY:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many of `calls` hits on `user` are admitted; every one must be answered.
pub async fn admitted(client: &mut Client, user: &str, calls: usize) -> usize {
    let mut admitted = 0;
    for _ in 0..calls {
        match call(client, user).await {
            Ok(Code::Ok) => admitted += 1,
            Ok(_) => {}
            Err(status) => panic!("a call for {user} answered {status:?}"),
        }
    }
    admitted
}

/// Exactly 4 of 6 fresh hits on `user` are admitted.
pub async fn counts_exactly(client: &mut Client, user: &str) {
    assert_eq!(admitted(client, user, 6).await, 4, "for {user}");
}
