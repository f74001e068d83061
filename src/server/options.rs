//! From the command line to the layers: each layer takes a plain option struct, and this is the
//! one place that builds them from [`ServeSettings`], so that nothing below the server knows
//! clap.

use std::path::PathBuf;
use std::time::Duration;

use crate::admission::AdmissionLimits;
use crate::config::Layout;
use crate::http::{ApiOptions, CheckDefaults};
use crate::inflight::InFlightLimits;
use crate::limiter::{LimiterOptions, Modes};
use crate::registry::{RegistryOptions, host_name};
use crate::rls::{HeaderNames, RequestLimits, ResponseOptions};
use crate::secret::urls_without_passwords;
use crate::settings::{
    ConfigFiles, ConfigLayout, OtlpProtocol, RedisType, Secret, ServeSettings, StatsdProtocol,
};
use crate::statsd::StatsdOptions;
use crate::store::redis::{RedisKind, RedisOptions, RedisTls};
use crate::tls::TlsOptions;
use crate::trace::{TracingOptions, Transport};

/// `--node-id`, as [`settle_node_id`] left it.
pub fn node_id(settings: &ServeSettings) -> String {
    settings
        .node_id
        .as_deref()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "ratelimiter".into())
}

/// Gives `--node-id`, when it was left out, its default: `<host name>:<gRPC port>`. Two nodes on
/// one host listen on different ports, so they never share an entry in the registry.
pub fn settle_node_id(settings: &mut ServeSettings, grpc_port: u16) {
    let given = settings.node_id.as_deref().map(str::trim);
    if given.is_none_or(str::is_empty) {
        let host = host_name().unwrap_or_else(|| "ratelimiter".into());
        settings.node_id = Some(format!("{host}:{grpc_port}"));
    }
}

/// How to reach Redis; `None` when counters stay in memory.
pub fn redis(settings: &ServeSettings) -> Option<RedisOptions> {
    let redis = &settings.redis;
    Some(connection(
        settings,
        settings.redis_url.clone()?,
        redis.redis_type,
        redis.redis_sentinel_master.clone(),
        redis.redis_sentinel_password.clone(),
        redis.redis_timeout,
    ))
}

/// How to reach the per-second Redis; `None` without `--redis-per-second-url`.
pub fn per_second_redis(settings: &ServeSettings) -> Option<RedisOptions> {
    let per_second = &settings.per_second;
    Some(connection(
        settings,
        per_second.redis_per_second_url.clone()?,
        per_second.redis_per_second_type,
        per_second.redis_per_second_sentinel_master.clone(),
        per_second.redis_per_second_sentinel_password.clone(),
        per_second
            .redis_per_second_timeout
            .unwrap_or(settings.redis.redis_timeout),
    ))
}

/// One Redis, with the connect timeout and TLS files every Redis shares.
fn connection(
    settings: &ServeSettings,
    urls: Secret,
    kind: RedisType,
    sentinel_master: Option<String>,
    sentinel_password: Option<Secret>,
    timeout: Duration,
) -> RedisOptions {
    let redis = &settings.redis;
    RedisOptions {
        urls,
        kind: match kind {
            RedisType::Single => RedisKind::Single,
            RedisType::Sentinel => RedisKind::Sentinel,
            RedisType::Cluster => RedisKind::Cluster,
        },
        sentinel_master,
        sentinel_password,
        timeout,
        connect_timeout: redis.redis_connect_timeout,
        tls: RedisTls {
            ca: redis.redis_tls_ca.clone(),
            client: redis
                .redis_tls_cert
                .clone()
                .zip(redis.redis_tls_key.clone()),
            skip_hostname_verification: redis.redis_tls_skip_hostname_verification,
        },
    }
}

/// Where counters live, for the startup log: `memory`, or Redis's kind and URLs without their
/// passwords (and the per-second Redis's).
pub fn store_summary(settings: &ServeSettings) -> String {
    let describe = |kind: RedisType, urls: &Secret| {
        let kind = format!("{kind:?}").to_ascii_lowercase();
        format!("redis {kind} {}", urls_without_passwords(urls.expose()))
    };
    let Some(urls) = &settings.redis_url else {
        return "memory".into();
    };
    let main = describe(settings.redis.redis_type, urls);
    let per_second = &settings.per_second;
    match &per_second.redis_per_second_url {
        None => main,
        Some(second) => format!(
            "{main}; per-second limits in {}",
            describe(per_second.redis_per_second_type, second)
        ),
    }
}

pub fn registry(settings: &ServeSettings) -> RegistryOptions {
    RegistryOptions {
        ttl: settings.registry.node_ttl,
        heartbeat: settings.registry.node_heartbeat,
    }
}

pub fn limiter(settings: &ServeSettings) -> LimiterOptions {
    LimiterOptions {
        modes: Modes {
            global_shadow: settings.global_shadow_mode,
            global_quota: settings.global_quota_mode,
            stop_increment_when_over: settings.stop_cache_key_increment_when_overlimit,
        },
        near_limit_ratio: settings.near_limit_ratio,
        max_match_bytes: settings.requests.max_match_bytes,
        // The memory store answers as fast as the cache would; only a remote store gains from it.
        blocked_cache_keys: match settings.redis_url {
            Some(_) => settings.redis.local_cache_max_keys,
            None => 0,
        },
    }
}

pub fn request_limits(settings: &ServeSettings) -> RequestLimits {
    let requests = &settings.requests;
    RequestLimits {
        max_descriptors: requests.max_descriptors,
        max_entries: requests.max_entries,
        max_key_bytes: requests.max_key_bytes,
        max_value_bytes: requests.max_value_bytes,
    }
}

pub fn responses(settings: &ServeSettings) -> ResponseOptions {
    let responses = &settings.responses;
    ResponseOptions {
        headers: responses.response_headers.then(|| HeaderNames {
            limit: responses.header_limit.clone(),
            remaining: responses.header_remaining.clone(),
            reset: responses.header_reset.clone(),
        }),
        dynamic_metadata: responses.response_dynamic_metadata,
    }
}

pub fn api(settings: &ServeSettings) -> ApiOptions {
    ApiOptions {
        node_id: node_id(settings),
        request_limits: request_limits(settings),
        responses: responses(settings),
        check_defaults: CheckDefaults {
            limit: settings.http.default_limit,
            window_ms: settings.http.default_window_ms,
            max_key_bytes: settings.requests.max_value_bytes,
        },
        admin_token: settings.http.admin_token.clone(),
        max_body_bytes: settings.requests.max_message_bytes,
    }
}

/// The gRPC and the HTTP listener's TLS, each `None` when it serves plain TCP.
pub fn tls(settings: &ServeSettings) -> Result<(Option<TlsOptions>, Option<TlsOptions>), String> {
    let tls = &settings.tls;
    let grpc = listener_tls(
        "grpc",
        (tls.grpc_tls_cert.clone(), tls.grpc_tls_key.clone()),
        tls.grpc_tls_client_ca.clone(),
        &tls.grpc_tls_client_san,
        b"h2",
    )?;
    if grpc.is_some() && settings.grpc_uds.is_some() {
        return Err("--grpc-uds (GRPC_UDS) cannot be combined with gRPC TLS: the Unix socket is served without TLS (its file's permissions say who may connect), where the Go service would speak TLS on it".into());
    }
    let http = listener_tls(
        "http",
        (tls.http_tls_cert.clone(), tls.http_tls_key.clone()),
        tls.http_tls_client_ca.clone(),
        &tls.http_tls_client_san,
        b"http/1.1",
    )?;
    Ok((grpc, http))
}

fn listener_tls(
    listener: &str,
    files: (Option<PathBuf>, Option<PathBuf>),
    client_ca: Option<PathBuf>,
    client_sans: &[String],
    alpn: &[u8],
) -> Result<Option<TlsOptions>, String> {
    let flag = |name: &str| format!("--{listener}-tls-{name}");
    if !client_sans.is_empty() && client_ca.is_none() {
        return Err(format!(
            "{} needs {}",
            flag("client-san"),
            flag("client-ca")
        ));
    }
    match files {
        (Some(cert), Some(key)) => Ok(Some(TlsOptions {
            cert,
            key,
            client_ca,
            client_sans: client_sans.to_vec(),
            alpn: vec![alpn.to_vec()],
        })),
        (Some(_), None) => Err(format!("{} needs {}", flag("cert"), flag("key"))),
        (None, Some(_)) => Err(format!("{} needs {}", flag("key"), flag("cert"))),
        (None, None) if client_ca.is_some() => {
            Err(format!("{} needs {}", flag("client-ca"), flag("cert")))
        }
        (None, None) => Ok(None),
    }
}

/// `None` when tracing is off.
pub fn tracing(settings: &ServeSettings) -> Option<TracingOptions> {
    let tracing = &settings.tracing;
    if !tracing.tracing {
        return None;
    }
    let mut resource = tracing.tracing_resource.clone();
    if !resource.iter().any(|(key, _)| key == "service.instance.id") {
        resource.push(("service.instance.id".into(), node_id(settings)));
    }
    Some(TracingOptions {
        transport: tracing.tracing_protocol.map(|protocol| match protocol {
            OtlpProtocol::Grpc => Transport::Grpc,
            OtlpProtocol::Http => Transport::Http,
        }),
        endpoint: tracing.tracing_endpoint.clone(),
        sample_ratio: tracing.tracing_sample_ratio,
        service_name: tracing.tracing_service_name.clone(),
        resource,
    })
}

/// `None` when nothing is pushed to statsd.
pub fn statsd(settings: &ServeSettings) -> Option<StatsdOptions> {
    let statsd = &settings.statsd;
    Some(StatsdOptions {
        addr: statsd.statsd_addr.clone()?,
        tcp: statsd.statsd_protocol == StatsdProtocol::Tcp,
        flush_interval: statsd.statsd_flush_interval,
        dogstatsd: statsd.statsd_dogstatsd,
        tags: statsd.stats_tag.clone(),
    })
}

pub fn grpc_admission(settings: &ServeSettings) -> AdmissionLimits {
    let bounds = &settings.bounds;
    AdmissionLimits::new(bounds.grpc_max_connections, bounds.max_connections_per_peer)
}

pub fn http_admission(settings: &ServeSettings) -> AdmissionLimits {
    let bounds = &settings.bounds;
    AdmissionLimits::new(bounds.http_max_connections, bounds.max_connections_per_peer)
}

/// `--grpc-max-connection-idle`, `None` for `0s` (never).
pub fn grpc_idle(settings: &ServeSettings) -> Option<Duration> {
    let idle = settings.bounds.grpc_max_connection_idle;
    (!idle.is_zero()).then_some(idle)
}

/// The in-flight budget. One peer may hold a quarter of the bytes, and always at least two of
/// the largest messages, so that a single large request is never refused for its own size.
pub fn in_flight(settings: &ServeSettings) -> InFlightLimits {
    let bounds = &settings.bounds;
    let bytes = bounds.max_buffered_mib.saturating_mul(1 << 20);
    let two_messages = settings.requests.max_message_bytes.saturating_mul(2);
    InFlightLimits {
        streams: bounds.max_in_flight,
        streams_per_peer: bounds.max_in_flight_per_peer.min(bounds.max_in_flight),
        watches: bounds.max_health_watches,
        bytes: bytes.max(two_messages),
        bytes_per_peer: (bytes / 4).max(two_messages),
    }
}

pub fn layout(settings: &ServeSettings) -> Layout {
    layout_of(&settings.layout)
}

/// Which config files are read (`serve` and `validate` share it).
pub fn layout_of(layout: &ConfigLayout) -> Layout {
    Layout {
        tree: layout.config_files == ConfigFiles::Tree,
        dotfiles: layout.config_dotfiles,
        merge_domains: layout.merge_domain_config,
    }
}
