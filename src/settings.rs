//! Command line and environment: every flag can also be set by a `RATELIMITER_*` variable, which
//! is how containers are usually configured. Secrets are redacted whenever settings are printed.
//!
//! Only `main.rs` and the server's composition root read these types: the layers below take
//! plain option structs, which `server::options` builds from them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::http::check::{MAX_LIMIT, MAX_WINDOW_MS, MIN_WINDOW_MS};
pub use crate::secret::Secret;

mod bounds;
pub mod go_names;
mod layout;
mod redis;
mod telemetry;
mod tls;
pub use bounds::ServiceBounds;
pub use go_names::GoReport;
pub use layout::{ConfigFiles, ConfigLayout};
pub use redis::{PerSecondRedisSettings, RedisSettings, RedisType, RegistrySettings};
pub use telemetry::{
    OtlpProtocol, PrometheusSettings, StatsdProtocol, StatsdSettings, TracingSettings,
};
pub use tls::TlsSettings;

/// Envoy-compatible external rate-limit service.
///
/// Answers envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit from limits written in
/// envoyproxy/ratelimit's YAML format.
#[derive(Debug, Parser)]
#[command(name = "ratelimiter", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: gRPC on --grpc-addr, limits from --config.
    Serve(Box<ServeSettings>),
    /// Check a config directory (or one file) exactly as `serve` would load it, then exit:
    /// 0 and "all rate limit configs ok", or 1 and one line per error.
    Validate {
        /// Directory of limit files (one domain each; which files, see --config-files), or a
        /// single file; `config` by default, as for `serve`.
        #[arg(default_value = "config")]
        path: PathBuf,

        #[command(flatten)]
        layout: ConfigLayout,
    },
}

#[derive(Clone, Debug, Args)]
pub struct ServeSettings {
    /// Directory of envoyproxy/ratelimit YAML files (one domain per file; which files, see
    /// --config-files), or a single file.
    #[arg(long, env = "RATELIMITER_CONFIG", default_value = "config")]
    pub config: PathBuf,

    #[command(flatten)]
    pub layout: ConfigLayout,

    /// Start even when the config is invalid or missing: serve, failing every call with
    /// UNAVAILABLE "no rate limit configuration loaded" (so Envoy's failure_mode_deny decides),
    /// report it in health and metrics, and load the first good edit (the Go service's
    /// FORCE_START_WITHOUT_INITIAL_CONFIG).
    #[arg(long, env = "RATELIMITER_ALLOW_EMPTY_CONFIG")]
    pub allow_empty_config: bool,

    /// Report unhealthy until a config with at least one domain is loaded (the Go service's
    /// HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED).
    #[arg(long, env = "RATELIMITER_HEALTHY_ONLY_WITH_CONFIG")]
    pub healthy_only_with_config: bool,

    /// Address for the gRPC rate-limit and health services (what Envoy calls).
    #[arg(long, env = "RATELIMITER_GRPC_ADDR", default_value = "0.0.0.0:8081", value_parser = parse_listen_addr)]
    pub grpc_addr: SocketAddr,

    /// Also serve the gRPC services on a Unix socket at this path (the Go service's GRPC_UDS).
    /// A stale socket file there is replaced; the file is removed at shutdown.
    #[arg(long, env = "RATELIMITER_GRPC_UDS")]
    pub grpc_uds: Option<PathBuf>,

    /// Address for the HTTP management API and Prometheus metrics.
    #[arg(long, env = "RATELIMITER_HTTP_ADDR", default_value = "0.0.0.0:8080", value_parser = parse_listen_addr)]
    pub http_addr: SocketAddr,

    /// Also serve a debug listener here (plain HTTP, GET only): `/rlconfig` (the loaded rules)
    /// and `/stats` (every metric, as text), as the Go service's DEBUG_HOST:DEBUG_PORT.
    #[arg(long, env = "RATELIMITER_DEBUG_ADDR")]
    pub debug_addr: Option<SocketAddr>,

    /// Keep counters in Redis (redis:// or rediss:// for TLS, with user:password@ when needed;
    /// redis+unix:///path/to/socket for one server on a Unix socket) so that several nodes
    /// share them. Without it, counters live in this process's memory.
    /// See --redis-type for comma-separated sentinel and cluster addresses.
    #[arg(long, env = "RATELIMITER_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,

    #[command(flatten)]
    pub redis: RedisSettings,

    #[command(flatten)]
    pub per_second: PerSecondRedisSettings,

    #[command(flatten)]
    pub registry: RegistrySettings,

    /// This node's name in the node registry (defaults to `<host name>:<gRPC port>`, unique on
    /// a host).
    #[arg(long, env = "RATELIMITER_NODE_ID")]
    pub node_id: Option<String>,

    /// Most counters the in-memory store holds; when full it drops ended windows first, then
    /// the least recently used counters.
    #[arg(
        long,
        env = "RATELIMITER_MEMORY_MAX_COUNTERS",
        default_value_t = 1_000_000,
        value_parser = positive
    )]
    pub memory_max_counters: usize,

    /// Most memory, in MiB, that the in-memory store's counters take (their keys, which requests
    /// can make long, and their slots); reaching it evicts like reaching --memory-max-counters.
    #[arg(
        long,
        env = "RATELIMITER_MEMORY_MAX_MIB",
        default_value_t = 256,
        value_parser = clap::value_parser!(u64).range(1..=1 << 20)
    )]
    pub memory_max_mib: u64,

    #[command(flatten)]
    pub requests: RequestBounds,

    #[command(flatten)]
    pub bounds: ServiceBounds,

    #[command(flatten)]
    pub responses: ResponseSettings,

    /// Share of a limit above which hits are counted as near it in metrics
    /// (`ratelimit_service_rate_limit_near_limit`).
    #[arg(long, env = "RATELIMITER_NEAR_LIMIT_RATIO", default_value_t = 0.8, value_parser = parse_ratio)]
    pub near_limit_ratio: f64,

    /// Most metric series for stats keys built from request values (`detailed_metric`,
    /// `value_to_metric`, request limit overrides); beyond it they share an `_overflow_` series.
    #[arg(long, env = "RATELIMITER_MAX_METRIC_SERIES", default_value_t = 10_000)]
    pub max_metric_series: usize,

    /// Never answer OVER_LIMIT (statuses still show what is over): try limits out safely.
    #[arg(long, env = "RATELIMITER_GLOBAL_SHADOW_MODE")]
    pub global_shadow_mode: bool,

    /// Treat every descriptor as a quota descriptor (over only when all of them are over).
    #[arg(long, env = "RATELIMITER_GLOBAL_QUOTA_MODE")]
    pub global_quota_mode: bool,

    /// When one descriptor of a request goes over its limit, do not count the request's hits on
    /// the others (the ones going over are still counted, as they are without this); the Go
    /// service's STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT. The request's counters are judged
    /// together, atomically (on a Redis Cluster, in two steps: read, then count).
    #[arg(long, env = "RATELIMITER_STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT")]
    pub stop_cache_key_increment_when_overlimit: bool,

    /// After SIGTERM, how long to keep serving while reporting NOT_SERVING, so that load
    /// balancers stop sending before the listeners close.
    #[arg(long, env = "RATELIMITER_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// After the listeners close, how long in-flight calls may take before the process exits.
    #[arg(long, env = "RATELIMITER_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log filter: a level (error, warn, info, debug, trace, off) or a list of
    /// `target=level` directives after an optional level (`info,ratelimiter=debug`).
    #[arg(long, env = "RATELIMITER_LOG_LEVEL", default_value = "info", value_parser = parse_log_filter)]
    pub log_level: String,

    /// Log format.
    #[arg(long, env = "RATELIMITER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub http: HttpSettings,

    #[command(flatten)]
    pub tls: TlsSettings,

    #[command(flatten)]
    pub tracing: TracingSettings,

    #[command(flatten)]
    pub statsd: StatsdSettings,

    #[command(flatten)]
    pub prometheus: PrometheusSettings,

    /// What became of the Go service's environment variables, logged at startup.
    #[arg(skip)]
    pub go_report: GoReport,
}

/// The HTTP API: what `/check` assumes when a request leaves it out, and who may administer.
#[derive(Clone, Debug, Args)]
pub struct HttpSettings {
    /// Hits per window that `POST /check` allows when the request has no `limit`.
    #[arg(long, env = "RATELIMITER_DEFAULT_LIMIT", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=MAX_LIMIT))]
    pub default_limit: u64,

    /// Sliding window of `POST /check`, in milliseconds, when the request has no `window_ms`.
    #[arg(long, env = "RATELIMITER_DEFAULT_WINDOW_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(MIN_WINDOW_MS..=MAX_WINDOW_MS))]
    pub default_window_ms: u64,

    /// Bearer token for `DELETE /api/counters/{key}`; once set, the read-only `/api/*`
    /// endpoints need it too (they show user identifiers). Without it, resets are refused.
    #[arg(long, env = "RATELIMITER_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_token)]
    pub admin_token: Option<Secret>,
}

/// Bounds on a single request; anything beyond them is refused before any work is done.
#[derive(Clone, Debug, Args)]
pub struct RequestBounds {
    /// Most descriptors in one request.
    #[arg(long, env = "RATELIMITER_MAX_DESCRIPTORS", default_value_t = 64, value_parser = positive)]
    pub max_descriptors: usize,

    /// Most entries in one descriptor (a rule can be up to 64 levels deep).
    #[arg(long, env = "RATELIMITER_MAX_ENTRIES", default_value_t = 32, value_parser = positive)]
    pub max_entries: usize,

    /// Longest descriptor entry key, in bytes.
    #[arg(long, env = "RATELIMITER_MAX_KEY_BYTES", default_value_t = 256, value_parser = positive)]
    pub max_key_bytes: usize,

    /// Longest descriptor entry value, in bytes (paths and header values can be long); also the
    /// longest `POST /check` key.
    #[arg(long, env = "RATELIMITER_MAX_VALUE_BYTES", default_value_t = 4096, value_parser = positive)]
    pub max_value_bytes: usize,

    /// Largest request message, in bytes; larger ones get RESOURCE_EXHAUSTED (over HTTP, 413 for
    /// a larger body, refused before it is sent when its Content-Length says so).
    #[arg(long, env = "RATELIMITER_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024, value_parser = positive)]
    pub max_message_bytes: usize,

    /// Most bytes of descriptor values that wildcard rules (`value: "foo*"`) may scan for one
    /// request, all descriptors together; a request that needs more is refused
    /// (RESOURCE_EXHAUSTED, HTTP 429) rather than served late. About 1 ms of CPU per 256 KiB.
    #[arg(long, env = "RATELIMITER_MAX_MATCH_BYTES", default_value_t = 1024 * 1024, value_parser = positive)]
    pub max_match_bytes: usize,
}

/// What responses carry beyond the statuses.
#[derive(Clone, Debug, Args)]
pub struct ResponseSettings {
    /// Add RateLimit-Limit/-Remaining/-Reset headers for the tightest descriptor to responses
    /// (the Go service's LIMIT_RESPONSE_HEADERS_ENABLED).
    #[arg(long, env = "RATELIMITER_RESPONSE_HEADERS")]
    pub response_headers: bool,

    /// Name of the limit header.
    #[arg(
        long,
        env = "RATELIMITER_HEADER_LIMIT",
        default_value = "RateLimit-Limit",
        value_parser = parse_header_name
    )]
    pub header_limit: String,

    /// Name of the remaining header.
    #[arg(
        long,
        env = "RATELIMITER_HEADER_REMAINING",
        default_value = "RateLimit-Remaining",
        value_parser = parse_header_name
    )]
    pub header_remaining: String,

    /// Name of the reset header (seconds until the window ends, or for the other algorithms
    /// until one more request would be admitted).
    #[arg(
        long,
        env = "RATELIMITER_HEADER_RESET",
        default_value = "RateLimit-Reset",
        value_parser = parse_header_name
    )]
    pub header_reset: String,

    /// Return matched rules' `metadata` as dynamic metadata (RESPONSE_DYNAMIC_METADATA).
    #[arg(long, env = "RATELIMITER_RESPONSE_DYNAMIC_METADATA")]
    pub response_dynamic_metadata: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_token(text: &str) -> Result<Secret, String> {
    if text.is_empty() {
        return Err("the admin token must not be empty".into());
    }
    Ok(Secret::new(text))
}

/// An address to listen on: `ip:port`, or `host:port` with a host name resolved now
/// (`localhost:8081`), its first address taken.
fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let mut resolved = text.to_socket_addrs().map_err(|error| {
        format!("{error} (expected host:port, such as 0.0.0.0:8081 or localhost:8081)")
    })?;
    resolved
        .next()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err("expected a number from 0 to 1, such as 0.8".into()),
    }
}

/// A count that must be at least 1: 0 would refuse everything (or serve nothing).
fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(value) => Ok(value),
        Err(error) => Err(format!("{error} (expected a whole number, at least 1)")),
    }
}

const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// A level, or directives `target=level` (after an optional bare level), checked here rather
/// than at startup: a bare word that is not a level is a typo, not a target to trace.
fn parse_log_filter(text: &str) -> Result<String, String> {
    let is_level = |word: &str| LEVELS.contains(&word.trim().to_ascii_lowercase().as_str());
    for directive in text.split(',').filter(|part| !part.trim().is_empty()) {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level,
            _ => directive,
        };
        if !is_level(level) {
            return Err(format!(
                "{directive:?} is not a level ({}) nor target=level",
                LEVELS.join(", ")
            ));
        }
    }
    if text.trim().is_empty() {
        return Err(format!("expected a level ({})", LEVELS.join(", ")));
    }
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_string())
        .map_err(|error| error.to_string())
}

/// An HTTP header name: letters, digits and ``!#$%&'*+-.^_`|~`` (RFC 9110 tokens).
pub(crate) fn parse_header_name(text: &str) -> Result<String, String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if text.is_empty() || !text.chars().all(token) {
        return Err("not an HTTP header name (letters, digits and -, no spaces)".into());
    }
    Ok(text.to_string())
}

/// Durations as `500ms`, `10s`, `2m`, `1h 30m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{error} (examples: 500ms, 10s, 2m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_types_are_read_in_any_case() {
        for (text, expected) in [
            ("SENTINEL", RedisType::Sentinel),
            ("Cluster", RedisType::Cluster),
            ("single", RedisType::Single),
        ] {
            let cli = Cli::parse_from(["ratelimiter", "serve", "--redis-type", text]);
            let Command::Serve(settings) = cli.command else {
                unreachable!("parsed a serve command")
            };
            assert_eq!(settings.redis.redis_type, expected, "{text}");
        }
    }

    #[test]
    fn zero_bounds_unknown_levels_and_bad_header_names_are_refused() {
        for args in [
            &["--max-message-bytes", "0"][..],
            &["--max-descriptors", "0"],
            &["--max-in-flight", "0"],
            &["--log-level", "nonsense"],
            &["--log-level", "info,ratelimiter=loud"],
            &["--header-limit", "bad header"],
        ] {
            let parsed = Cli::try_parse_from([&["ratelimiter", "serve"], args].concat());
            assert!(parsed.is_err(), "{args:?} was accepted");
        }
        for level in ["info", "WARN", "info,ratelimiter=debug", "h2=off"] {
            let parsed = Cli::try_parse_from(["ratelimiter", "serve", "--log-level", level]);
            assert!(parsed.is_ok(), "{level}: {:?}", parsed.err());
        }
    }

    #[test]
    fn listen_addresses_may_name_a_host() {
        let cli = Cli::parse_from(["ratelimiter", "serve", "--grpc-addr", "localhost:8081"]);
        let Command::Serve(settings) = cli.command else {
            unreachable!("parsed a serve command")
        };
        assert!(
            settings.grpc_addr.ip().is_loopback(),
            "{}",
            settings.grpc_addr
        );
        assert_eq!(settings.grpc_addr.port(), 8081);
        let refused = Cli::try_parse_from(["ratelimiter", "serve", "--http-addr", "localhost"]);
        assert!(refused.is_err(), "a port is needed");
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
