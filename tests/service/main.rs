//! The service in this process, started on loopback port 0 with a clock the test moves by hand,
//! answering real gRPC and HTTP clients; and the library under it (config, keys, the memory
//! store); `grpc_uds`: gRPC over a Unix socket. `http_api` also runs its scenarios on a real
//! redis-server. `tls`, `rotation` and `tracing`: TLS and mTLS clients, certificate rotation,
//! spans sent to an OTLP receiver.

#[path = "../common/mod.rs"]
mod common;

mod algorithms;
mod grpc_uds;
mod hostile_input;
mod http_api;
mod key_injectivity;
mod layering;
mod reload;
mod rls_answers;
mod rls_bad_input;
mod rls_concurrency;
mod rls_matching;
mod rotation;
mod stats_keys;
mod stop_increment;
mod store_contract;
mod tls;
mod tracing;
