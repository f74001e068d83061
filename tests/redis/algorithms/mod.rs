//! Limits the Go service cannot express, counted in Redis: exact under racing callers on a
//! single server and a Cluster, across processes and skewed clocks; every key expires no later
//! than needed; a token bucket's rate holds in real time.

mod attacks;
mod concurrency;
mod keys;
mod token_bucket;
