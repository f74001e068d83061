//! What the fuzz targets share: YAML written back from what the service parsed (so that a target
//! can check that printing and reading again gives the same thing), and a runtime for the
//! limiter's async API.

pub mod render;

use std::future::Future;

/// Runs a future to completion on a current-thread runtime made once per process.
pub fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}
