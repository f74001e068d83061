//! Limits the Go service cannot express, in the service on the memory store: windows of
//! several units, sliding windows, token buckets and lists of limits (all or nothing). Redis,
//! Redis Cluster and several processes are in `tests/redis/algorithms`; a real Envoy in
//! `tests/shipped/envoy_algorithms.rs`.

mod answers;
mod attacks;
mod concurrency;
mod lists;
mod sliding_log;
mod token_bucket;

/// A xorshift generator of numbers below its argument, from `seed`: random arrivals that every
/// run replays alike.
fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |below| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    }
}
