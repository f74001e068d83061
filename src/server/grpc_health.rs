//! The gRPC health service (`grpc.health.v1`) kept to what [`Health`] knows: SERVING while calls
//! can be answered, NOT_SERVING while no usable config is in force (started with
//! `--allow-empty-config` on a bad config, or `--healthy-only-with-config` with no domain) and
//! from the start of shutdown.

use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{self, HealthServer};
use tonic_health::server::HealthReporter;

use crate::health::Health;

/// gRPC health service names reported: the overall server (""), the name the Go service uses,
/// and the rate-limit service's full name.
const HEALTH_SERVICE_NAMES: [&str; 3] = [
    "",
    "ratelimit",
    "envoy.service.ratelimit.v3.RateLimitService",
];

/// The health service, every name's status already set from `health` (so that no early
/// check finds a name unknown), then kept up to date by a task until `stop`.
pub async fn start(
    health: &Health,
    stop: CancellationToken,
) -> HealthServer<impl health_server::Health> {
    let (reporter, service) = tonic_health::server::health_reporter();
    let mut answering = health.answering();
    let now = *answering.borrow_and_update();
    report(&reporter, now).await;
    tokio::spawn(async move {
        loop {
            // A change first: shutdown's NOT_SERVING is set even when the stop comes with it.
            tokio::select! {
                biased;
                changed = answering.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = stop.cancelled() => return,
            }
            let now = *answering.borrow_and_update();
            report(&reporter, now).await;
        }
    });
    service
}

async fn report(reporter: &HealthReporter, answering: bool) {
    let status = if answering {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for name in HEALTH_SERVICE_NAMES {
        reporter.set_service_status(name, status).await;
    }
}
