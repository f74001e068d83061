//! `--stop-cache-key-increment-when-overlimit` on the memory store: the other descriptors of a
//! request that goes over are not counted; without it they are.

use crate::common::Service;
use crate::common::stop_increment::{FILES, one_over_stops_the_others};

#[tokio::test]
async fn one_descriptor_over_stops_the_others_from_counting() {
    let flags = ["--stop-cache-key-increment-when-overlimit"];
    let service = Service::start(FILES, &flags).await;
    one_over_stops_the_others(&service, true).await;
}

#[tokio::test]
async fn without_the_setting_every_descriptor_counts() {
    let service = Service::start(FILES, &[]).await;
    one_over_stops_the_others(&service, false).await;
}
