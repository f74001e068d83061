//! Limits the Go service cannot express, counted in Redis: exact under racing callers on a
//! single server and a Cluster, across processes and skewed clocks; a list is one script call;
//! every key expires no later than needed; a token bucket's rate holds in real time; hostile
//! lists and hits leave every counter sane.

mod attacks;
mod concurrency;
mod keys;
mod one_call;
mod token_bucket;
