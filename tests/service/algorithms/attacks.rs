//! Hostile inputs against the algorithms on the memory store (see
//! `common::algorithm_attacks`): the longest lists on the largest request, the largest hits and
//! refunds, the largest limits.

use crate::common::Service;
use crate::common::algorithm_attacks::{
    LIMITS, the_largest_hits_and_refunds_leave_every_counter_sane,
    the_longest_lists_on_the_largest_request_count_all_or_nothing,
};

#[tokio::test]
async fn on_memory_the_longest_lists_count_all_or_nothing() {
    let service = Service::start(&[("attack.yaml", LIMITS.as_str())], &[]).await;
    let mut client = service.client().await;
    the_longest_lists_on_the_largest_request_count_all_or_nothing(&mut client, &service.http())
        .await;
}

#[tokio::test]
async fn on_memory_the_largest_hits_leave_every_counter_sane() {
    let service = Service::start(&[("attack.yaml", LIMITS.as_str())], &[]).await;
    let mut client = service.client().await;
    the_largest_hits_and_refunds_leave_every_counter_sane(&mut client).await;
}
