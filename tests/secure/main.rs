//! Secure and observable, through real clients: gRPC and HTTP over TLS and mutual TLS,
//! certificate rotation, OpenTelemetry traces received by an OTLP receiver the test runs, statsd
//! lines received on UDP and TCP, and a real Envoy calling over mutual TLS and tracing.

#[path = "../common/mod.rs"]
mod common;

mod envoy;
mod otlp;
mod rotation;
mod statsd;
mod tls;
mod tracing;
