//! Flags for what the service reports beyond its Prometheus `/metrics`: OpenTelemetry traces
//! (OTLP) and statsd pushes with the Go service's stat names.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::parse_duration;

/// How spans are sent to the OTLP collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317 by default).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, path `/v1/traces`, by default).
    Http,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatsdProtocol {
    Udp,
    Tcp,
}

#[derive(Clone, Debug, Args)]
pub struct TracingSettings {
    /// Export OpenTelemetry traces: a span per ShouldRateLimit call (domain, descriptors,
    /// outcome, store) with a child span for the store call, continuing the caller's trace
    /// (W3C `traceparent` or B3 headers). Off, it costs nothing.
    #[arg(long, env = "RATELIMITER_TRACING")]
    pub tracing: bool,

    /// OTLP protocol [default: `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or `http/protobuf`), else
    /// grpc].
    #[arg(long, env = "RATELIMITER_TRACING_PROTOCOL", value_enum)]
    pub tracing_protocol: Option<OtlpProtocol>,

    /// OTLP collector URL [default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, else http://localhost:4317 for gRPC and
    /// http://localhost:4318/v1/traces for HTTP].
    #[arg(long, env = "RATELIMITER_TRACING_ENDPOINT")]
    pub tracing_endpoint: Option<String>,

    /// Share of new traces sampled, from 0 to 1; a trace the caller started keeps the caller's
    /// decision.
    #[arg(long, env = "RATELIMITER_TRACING_SAMPLE_RATIO", default_value_t = 1.0, value_parser = super::parse_ratio)]
    pub tracing_sample_ratio: f64,

    /// `service.name` of the spans [default: `OTEL_SERVICE_NAME`, else ratelimiter].
    #[arg(long, env = "RATELIMITER_TRACING_SERVICE_NAME")]
    pub tracing_service_name: Option<String>,

    /// More resource attributes, `key=value`, repeatable or comma-separated (added to
    /// `OTEL_RESOURCE_ATTRIBUTES`); `service.instance.id` defaults to the node id.
    #[arg(long, env = "RATELIMITER_TRACING_RESOURCE", value_delimiter = ',', value_parser = parse_pair)]
    pub tracing_resource: Vec<(String, String)>,
}

#[derive(Clone, Debug, Args)]
pub struct StatsdSettings {
    /// Push stats to this statsd `host:port` every `--statsd-flush-interval`, with the Go
    /// service's names (`ratelimit.service.rate_limit.<domain>.<key>.total_hits`, ...).
    #[arg(long, env = "RATELIMITER_STATSD_ADDR")]
    pub statsd_addr: Option<String>,

    /// Transport to the statsd server.
    #[arg(long, env = "RATELIMITER_STATSD_PROTOCOL", value_enum, default_value_t = StatsdProtocol::Udp)]
    pub statsd_protocol: StatsdProtocol,

    /// How often counters (as deltas) and gauges are pushed.
    #[arg(long, env = "RATELIMITER_STATSD_FLUSH_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub statsd_flush_interval: Duration,

    /// Speak DogStatsD: `--stats-tag`s become `|#key:value` tags instead of name suffixes.
    #[arg(long, env = "RATELIMITER_STATSD_DOGSTATSD")]
    pub statsd_dogstatsd: bool,

    /// A tag on every stat pushed, `key=value`, repeatable or comma-separated (the Go service's
    /// EXTRA_TAGS): `.__key=value` after each statsd name, or a DogStatsD tag.
    #[arg(long, env = "RATELIMITER_STATS_TAG", value_delimiter = ',', value_parser = parse_pair)]
    pub stats_tag: Vec<(String, String)>,
}

/// `key=value`, both non-empty.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !value.is_empty() => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(format!("expected key=value, got {text:?}")),
    }
}

/// A listener of its own for the Prometheus metrics, where the Go service's scrape annotations
/// look for them (`USE_PROMETHEUS`); they are on `/metrics` of `--http-addr` in any case.
#[derive(Clone, Debug, Args)]
pub struct PrometheusSettings {
    /// Also serve the metrics on this address (plain HTTP, GET only).
    #[arg(long, env = "RATELIMITER_PROMETHEUS_ADDR")]
    pub prometheus_addr: Option<std::net::SocketAddr>,

    /// The path of the metrics on `--prometheus-addr`.
    #[arg(long, env = "RATELIMITER_PROMETHEUS_PATH", default_value = "/metrics")]
    pub prometheus_path: String,
}
