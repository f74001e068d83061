//! Counting is exact under concurrency: many callers racing on one key are admitted exactly up
//! to the limit, whatever connection they come in on.

use std::sync::Arc;

use crate::common::{Code, Service, code, request};
use tokio::sync::Barrier;

const LIMITS: &str = r#"
domain: race
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 20}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_callers_on_a_limit_of_twenty_get_exactly_twenty_ok() {
    let service = Service::start(&[("race.yaml", LIMITS)], &[]).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(service.client().await);
    }
    let start = Arc::new(Barrier::new(64));
    let calls: Vec<_> = (0..64)
        .map(|caller| {
            let mut client = clients[caller % clients.len()].clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let response = client
                    .should_rate_limit(request("race", &[&[("user", "shared")]]))
                    .await
                    .unwrap();
                code(&response.into_inner())
            })
        })
        .collect();
    let mut ok = 0;
    let mut over = 0;
    for call in calls {
        match call.await.unwrap() {
            Code::Ok => ok += 1,
            Code::OverLimit => over += 1,
            Code::Unknown => panic!("UNKNOWN is never an answer"),
        }
    }
    assert_eq!((ok, over), (20, 44));
}
