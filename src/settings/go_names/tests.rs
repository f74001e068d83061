//! Tests of the Go names: each group of variables, refusals, and the docs table kept true.

use std::collections::HashMap;

use clap::Parser;

use super::*;
use crate::settings::{OtlpProtocol, RedisType, StatsdProtocol};

/// `ratelimiter serve <flags>` with the Go variables `vars`: the settings and the report.
fn parsed(vars: &[(&str, &str)], flags: &[&str]) -> Result<(ServeSettings, GoReport), GoNameError> {
    let mut args = vec!["ratelimiter", "serve"];
    args.extend_from_slice(flags);
    let Command::Serve(mut settings) = Cli::parse_from(args).command else {
        unreachable!("parsed a serve command")
    };
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let given = |id: &str| flags.iter().any(|flag| flag[2..].replace('-', "_") == id);
    let report = apply(&mut settings, &given, &|name| vars.get(name).cloned())?;
    Ok((*settings, report))
}

fn settings_with(vars: &[(&str, &str)], flags: &[&str]) -> Result<ServeSettings, GoNameError> {
    parsed(vars, flags).map(|(settings, _)| settings)
}

#[test]
fn go_tls_names_fill_the_grpc_listener_tls() {
    let settings = settings_with(
        &[
            ("GRPC_SERVER_USE_TLS", "true"),
            ("GRPC_SERVER_TLS_CERT", "/c/tls.crt"),
            ("GRPC_SERVER_TLS_KEY", "/c/tls.key"),
            ("GRPC_CLIENT_TLS_CACERT", "/c/ca.crt"),
            ("GRPC_CLIENT_TLS_SAN", "envoy.local"),
        ],
        &[],
    )
    .unwrap();
    let tls = settings.tls;
    assert_eq!(tls.grpc_tls_cert.unwrap().to_str(), Some("/c/tls.crt"));
    assert_eq!(tls.grpc_tls_key.unwrap().to_str(), Some("/c/tls.key"));
    assert_eq!(tls.grpc_tls_client_ca.unwrap().to_str(), Some("/c/ca.crt"));
    assert_eq!(tls.grpc_tls_client_san, ["envoy.local"]);
}

#[test]
fn go_tls_files_are_ignored_without_use_tls_and_our_flags_win() {
    let off = settings_with(&[("GRPC_SERVER_TLS_CERT", "/c/tls.crt")], &[]).unwrap();
    assert_eq!(off.tls.grpc_tls_cert, None);
    let vars = [
        ("GRPC_SERVER_USE_TLS", "1"),
        ("GRPC_SERVER_TLS_CERT", "/go.crt"),
        ("GRPC_SERVER_TLS_KEY", "/go.key"),
    ];
    let ours = settings_with(&vars, &["--grpc-tls-cert", "/ours.crt"]).unwrap();
    assert_eq!(ours.tls.grpc_tls_cert.unwrap().to_str(), Some("/ours.crt"));
    let error = settings_with(&[("GRPC_SERVER_USE_TLS", "true")], &[]).unwrap_err();
    assert!(
        error.to_string().contains("GRPC_SERVER_TLS_CERT"),
        "{error}"
    );
    let error = settings_with(&[("GRPC_SERVER_USE_TLS", "yes")], &[]).unwrap_err();
    assert!(
        error.to_string().starts_with("GRPC_SERVER_USE_TLS=\"yes\""),
        "{error}"
    );
}

#[test]
fn go_tracing_names_turn_tracing_on_with_go_defaults() {
    let settings = settings_with(
        &[
            ("TRACING_ENABLED", "true"),
            ("TRACING_SAMPLING_RATE", "0.25"),
            ("TRACING_SERVICE_NAMESPACE", "edge"),
        ],
        &[],
    )
    .unwrap();
    let tracing = settings.tracing;
    assert!(tracing.tracing);
    assert_eq!(tracing.tracing_protocol, Some(OtlpProtocol::Http));
    assert_eq!(tracing.tracing_service_name.as_deref(), Some("RateLimit"));
    assert_eq!(tracing.tracing_sample_ratio, 0.25);
    assert_eq!(
        tracing.tracing_resource,
        [("service.namespace".to_string(), "edge".to_string())]
    );
    let error = settings_with(
        &[
            ("TRACING_ENABLED", "true"),
            ("TRACING_EXPORTER_PROTOCOL", "GRPC"),
        ],
        &[],
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Invalid otlptrace client protocol"),
        "{error}"
    );
}

#[test]
fn go_statsd_names_push_to_the_statsd_host() {
    let plain = settings_with(&[], &[]).unwrap();
    assert_eq!(plain.statsd.statsd_addr, None, "off unless asked for");
    let settings = settings_with(
        &[
            ("STATSD_HOST", "statsd.local"),
            ("STATSD_PORT", "9125"),
            ("STATSD_PROTOCOL", "tcp"),
            ("STATS_FLUSH_INTERVAL", "2s"),
            ("EXTRA_TAGS", "team:edge,env:prod"),
        ],
        &[],
    )
    .unwrap();
    let statsd = settings.statsd;
    assert_eq!(statsd.statsd_addr.as_deref(), Some("statsd.local:9125"));
    assert_eq!(statsd.statsd_protocol, StatsdProtocol::Tcp);
    assert_eq!(
        statsd.statsd_flush_interval,
        std::time::Duration::from_secs(2)
    );
    assert_eq!(statsd.stats_tag.len(), 2);
    let dog = settings_with(&[("USE_DOG_STATSD", "true")], &[]).unwrap();
    assert_eq!(dog.statsd.statsd_addr.as_deref(), Some("localhost:8125"));
    assert!(dog.statsd.statsd_dogstatsd);
    let off = settings_with(&[("USE_STATSD", "false"), ("STATSD_HOST", "h")], &[]).unwrap();
    assert_eq!(off.statsd.statsd_addr, None);
    let disabled = settings_with(&[("DISABLE_STATS", "true"), ("USE_STATSD", "true")], &[]);
    assert_eq!(disabled.unwrap().statsd.statsd_addr, None);
}

#[test]
fn go_values_go_would_refuse_are_refused_by_name() {
    let link = settings_with(&[("STATSD_PORT", "tcp://10.0.0.1:8125")], &[]).unwrap_err();
    assert!(link.to_string().contains("enableServiceLinks"), "{link}");
    let tags = settings_with(&[("USE_STATSD", "true"), ("EXTRA_TAGS", "a:b:c")], &[]);
    assert!(tags.unwrap_err().to_string().contains("invalid map item"));
    let mogrifiers = settings_with(&[("USE_DOG_STATSD_MOGRIFIERS", "x")], &[]);
    assert!(mogrifiers.is_err());
}

fn report_with(vars: &[(&str, &str)], flags: &[&str]) -> (ServeSettings, GoReport) {
    parsed(vars, flags).unwrap()
}

fn redis_url(vars: &[(&str, &str)]) -> String {
    let settings = settings_with(vars, &[]).unwrap();
    settings
        .redis_url
        .expect("a Redis URL")
        .expose()
        .to_string()
}

#[test]
fn a_typical_kubernetes_manifest_is_read_whole() {
    let (settings, report) = report_with(
        &[
            ("REDIS_URL", "redis:6379"),
            ("REDIS_SOCKET_TYPE", "tcp"),
            ("RUNTIME_ROOT", "/data"),
            ("RUNTIME_SUBDIRECTORY", "ratelimit"),
            ("PORT", "8080"),
            ("GRPC_PORT", "8081"),
            ("USE_STATSD", "false"),
            ("LOG_LEVEL", "debug"),
            ("REDIS_POOL_SIZE", "20"),
        ],
        &[],
    );
    assert_eq!(settings.redis_url.unwrap().expose(), "redis://redis:6379");
    assert_eq!(settings.config.to_str(), Some("/data/ratelimit/config"));
    assert_eq!(
        settings.layout.config_files,
        crate::settings::ConfigFiles::Tree
    );
    assert!(
        settings.layout.config_dotfiles,
        "Go reads dotfiles by default"
    );
    assert_eq!(settings.log_level, "debug");
    assert_eq!(settings.grpc_addr.to_string(), "0.0.0.0:8081");
    assert_eq!(settings.http_addr.to_string(), "0.0.0.0:8080");
    for name in [
        "REDIS_URL",
        "RUNTIME_ROOT",
        "PORT",
        "GRPC_PORT",
        "LOG_LEVEL",
        "USE_STATSD",
    ] {
        assert!(report.read.contains(&name), "{name} not read: {report:?}");
    }
    assert_eq!(report.not_needed.len(), 1);
    assert_eq!(report.not_needed[0].0, "REDIS_POOL_SIZE");
}

#[test]
fn skipping_the_redis_host_name_check_needs_tls_and_serves_both_redis() {
    let skip = |vars: &[(&str, &str)], flags: &[&str]| {
        let mut all = vec![
            ("REDIS_SOCKET_TYPE", "tcp"),
            ("REDIS_URL", "h:1"),
            ("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION", "true"),
        ];
        all.extend_from_slice(vars);
        settings_with(&all, flags)
            .unwrap()
            .redis
            .redis_tls_skip_hostname_verification
    };
    assert!(skip(&[("REDIS_TLS", "true")], &[]));
    assert!(!skip(&[], &[]), "Go reads it only with TLS");
    assert!(
        skip(
            &[
                ("REDIS_PERSECOND", "true"),
                ("REDIS_PERSECOND_SOCKET_TYPE", "tcp"),
                ("REDIS_PERSECOND_URL", "s:1"),
                ("REDIS_PERSECOND_TLS", "true"),
            ],
            &[]
        ),
        "the per-second Redis's TLS reads it too, for both, as in Go"
    );
    assert!(
        skip(
            &[
                ("REDIS_URL", "m,h:1"),
                ("REDIS_TYPE", "sentinel"),
                ("REDIS_PERSECOND", "true"),
                ("REDIS_PERSECOND_SOCKET_TYPE", "tcp"),
                ("REDIS_PERSECOND_URL", "s:1"),
                ("REDIS_PERSECOND_TLS", "true"),
            ],
            &[]
        ),
        "a sentinel Redis without TLS has no certificate to check"
    );
    let given = ["--redis-tls-skip-hostname-verification"];
    let ours = settings_with(
        &[
            ("REDIS_URL", "m,h:1"),
            ("REDIS_TYPE", "sentinel"),
            ("REDIS_TLS", "true"),
            ("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION", "false"),
        ],
        &given,
    )
    .unwrap();
    assert!(
        ours.redis.redis_tls_skip_hostname_verification,
        "our flag wins"
    );
}

#[test]
fn a_per_second_redis_is_read_in_the_same_forms() {
    let (settings, report) = report_with(
        &[
            ("REDIS_URL", "/run/main.sock"),
            ("REDIS_PERSECOND", "true"),
            ("REDIS_PERSECOND_SOCKET_TYPE", "tcp"),
            ("REDIS_PERSECOND_URL", "mymaster,s1:26379"),
            ("REDIS_PERSECOND_TYPE", "SENTINEL"),
            ("REDIS_PERSECOND_AUTH", "u:p"),
            ("REDIS_PERSECOND_TLS", "true"),
            ("REDIS_PERSECOND_SENTINEL_AUTH", "spass"),
            ("REDIS_PERSECOND_TIMEOUT", "250ms"),
            ("REDIS_TLS_CACERT", "/c/ca.crt"),
            ("REDIS_PERSECOND_POOL_SIZE", "5"),
        ],
        &[],
    );
    let second = &settings.per_second;
    assert_eq!(
        second.redis_per_second_url.as_ref().unwrap().expose(),
        "rediss://u:p@s1:26379"
    );
    assert_eq!(second.redis_per_second_type, RedisType::Sentinel);
    assert_eq!(
        second.redis_per_second_sentinel_master.as_deref(),
        Some("mymaster")
    );
    assert_eq!(
        second
            .redis_per_second_sentinel_password
            .as_ref()
            .unwrap()
            .expose(),
        "spass"
    );
    assert_eq!(
        second.redis_per_second_timeout,
        Some(std::time::Duration::from_millis(250))
    );
    assert_eq!(
        settings.redis.redis_tls_ca.unwrap().to_str(),
        Some("/c/ca.crt"),
        "REDIS_PERSECOND_TLS reads the shared certificates, as in Go"
    );
    assert_eq!(
        settings.redis_url.unwrap().expose(),
        "redis+unix:///run/main.sock"
    );
    assert_eq!(report.not_needed[0].0, "REDIS_PERSECOND_POOL_SIZE");
    let default_url = settings_with(
        &[("REDIS_URL", "/run/main.sock"), ("REDIS_PERSECOND", "true")],
        &[],
    )
    .unwrap();
    assert_eq!(
        default_url
            .per_second
            .redis_per_second_url
            .unwrap()
            .expose(),
        "redis+unix:///var/run/nutcracker/ratelimitpersecond.sock",
        "Go's default"
    );
    let off = settings_with(
        &[
            ("REDIS_URL", "/run/main.sock"),
            ("REDIS_PERSECOND_URL", "h:1"),
        ],
        &[],
    )
    .unwrap();
    assert!(
        off.per_second.redis_per_second_url.is_none(),
        "only with REDIS_PERSECOND=true"
    );
}

#[test]
fn redis_urls_in_every_go_form() {
    assert_eq!(
        redis_url(&[("REDIS_URL", "/var/run/redis.sock")]),
        "redis+unix:///var/run/redis.sock",
        "unix is Go's default socket type"
    );
    assert_eq!(
        redis_url(&[("REDIS_URL", "/run/r.sock"), ("REDIS_AUTH", "u:p@ss")]),
        "redis+unix:///run/r.sock?user=u&pass=p%40ss"
    );
    assert_eq!(
        redis_url(&[
            ("REDIS_URL", "r:6379"),
            ("REDIS_SOCKET_TYPE", "tcp"),
            ("REDIS_AUTH", "secret"),
            ("REDIS_TLS", "true")
        ]),
        "rediss://:secret@r:6379"
    );
    let cluster = [("REDIS_URL", "a:7000,b:7001"), ("REDIS_TYPE", "CLUSTER")];
    assert_eq!(redis_url(&cluster), "redis://a:7000,redis://b:7001");
    assert_eq!(
        settings_with(&cluster, &[]).unwrap().redis.redis_type,
        RedisType::Cluster
    );
    let sentinel = settings_with(
        &[
            ("REDIS_URL", "mymaster,s1:26379,s2:26379"),
            ("REDIS_TYPE", "sentinel"),
            ("REDIS_SENTINEL_AUTH", "spass"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        sentinel.redis.redis_sentinel_master.as_deref(),
        Some("mymaster")
    );
    assert_eq!(
        sentinel.redis_url.unwrap().expose(),
        "redis://s1:26379,redis://s2:26379"
    );
    assert_eq!(
        sentinel.redis.redis_sentinel_password.unwrap().expose(),
        "spass"
    );
    assert_eq!(
        redis_url(&[("REDIS_URL", "redis://h:1/2")]),
        "redis://h:1/2"
    );
    let none = settings_with(&[("REDIS_SOCKET_TYPE", "tcp")], &[]).unwrap();
    assert!(none.redis_url.is_none(), "no REDIS_URL: counters in memory");
}

#[test]
fn our_flags_win_and_leave_the_go_names_without_effect() {
    let (settings, report) = report_with(
        &[
            ("GRPC_PORT", "9000"),
            ("LOG_LEVEL", "trace"),
            ("SHADOW_MODE", "false"),
        ],
        &["--grpc-addr", "127.0.0.1:7000", "--global-shadow-mode"],
    );
    assert_eq!(settings.grpc_addr.to_string(), "127.0.0.1:7000");
    assert!(settings.global_shadow_mode);
    assert_eq!(settings.log_level, "trace");
    assert!(report.no_effect.contains(&"GRPC_PORT"), "{report:?}");
    assert!(report.no_effect.contains(&"SHADOW_MODE"), "{report:?}");
}

#[test]
fn grpc_uds_serves_grpc_on_its_socket_unless_our_flag_names_another() {
    let settings = settings_with(&[("GRPC_UDS", "/run/rl/grpc.sock")], &[]).unwrap();
    assert_eq!(
        settings.grpc_uds.as_deref(),
        Some(std::path::Path::new("/run/rl/grpc.sock"))
    );
    let empty = settings_with(&[("GRPC_UDS", "")], &[]).unwrap();
    assert!(
        empty.grpc_uds.is_none(),
        "Go reads an empty GRPC_UDS as TCP"
    );
    let (ours, report) = report_with(
        &[("GRPC_UDS", "/run/rl/grpc.sock")],
        &["--grpc-uds", "/tmp/ours.sock"],
    );
    assert_eq!(
        ours.grpc_uds.as_deref(),
        Some(std::path::Path::new("/tmp/ours.sock"))
    );
    assert!(report.no_effect.contains(&"GRPC_UDS"), "{report:?}");
}

#[test]
fn answers_modes_and_listener_details_have_the_go_meaning() {
    let settings = settings_with(
        &[
            ("HOST", "127.0.0.1"),
            ("GRPC_HOST", ""),
            ("GRPC_PORT", "0x1F90"),
            ("GRPC_MAX_CONNECTION_AGE", "0"),
            ("GRPC_MAX_CONNECTION_AGE_GRACE", "1h30m"),
            ("LOG_LEVEL", "WARNING"),
            ("LOG_FORMAT", "JSON"),
            ("SHADOW_MODE", "true"),
            ("QUOTA_MODE", "1"),
            ("LIMIT_RESPONSE_HEADERS_ENABLED", "T"),
            ("LIMIT_LIMIT_HEADER", "X-Limit"),
            ("NEAR_LIMIT_RATIO", "0.9"),
            ("LOCAL_CACHE_SIZE_IN_BYTES", "0"),
            ("CACHE_KEY_PREFIX", "edge_"),
            ("FORCE_START_WITHOUT_INITIAL_CONFIG", "true"),
            ("HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED", "true"),
            ("MERGE_DOMAIN_CONFIG", "true"),
            ("RUNTIME_IGNOREDOTFILES", "true"),
            ("USE_PROMETHEUS", "true"),
            ("PROMETHEUS_PATH", "/stats/prometheus"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(settings.http_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.grpc_addr.to_string(), "0.0.0.0:8080");
    assert!(settings.bounds.grpc_max_connection_age.as_secs() > 365 * 24 * 3600);
    assert_eq!(
        settings.bounds.grpc_max_connection_age_grace.as_secs(),
        5400
    );
    assert_eq!(settings.log_level, "warn");
    assert_eq!(settings.log_format, crate::settings::LogFormat::Json);
    assert!(settings.global_shadow_mode && settings.global_quota_mode);
    assert!(settings.responses.response_headers);
    assert_eq!(settings.responses.header_limit, "X-Limit");
    assert_eq!(settings.near_limit_ratio, 0.9);
    assert_eq!(settings.redis.local_cache_max_keys, 0);
    assert_eq!(settings.redis.redis_key_prefix, "edge_");
    assert!(settings.allow_empty_config && settings.healthy_only_with_config);
    assert!(settings.layout.merge_domain_config);
    assert!(!settings.layout.config_dotfiles);
    assert_eq!(
        settings
            .prometheus
            .prometheus_addr
            .map(|a| a.to_string())
            .as_deref(),
        Some("0.0.0.0:9090")
    );
    assert_eq!(settings.prometheus.prometheus_path, "/stats/prometheus");
}

/// A variable, a value refused for it, and the other variables it needs to mean anything.
type Refusal = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[test]
fn each_value_that_cannot_be_honoured_is_refused_by_name() {
    let sentinel_tls: &[(&str, &str)] = &[
        ("REDIS_URL", "m,h:1"),
        ("REDIS_TYPE", "sentinel"),
        ("REDIS_TLS", "true"),
    ];
    let per_second_sentinel_tls: &[(&str, &str)] = &[
        ("REDIS_SOCKET_TYPE", "tcp"),
        ("REDIS_URL", "h:1"),
        ("REDIS_PERSECOND", "true"),
        ("REDIS_PERSECOND_URL", "m,s:1"),
        ("REDIS_PERSECOND_TYPE", "sentinel"),
        ("REDIS_PERSECOND_TLS", "true"),
    ];
    let cases: [Refusal; 29] = [
        ("CONFIG_TYPE", "GRPC_XDS_SOTW", &[]),
        ("CONFIG_TYPE", "file", &[]),
        ("BACKEND_TYPE", "memcache", &[]),
        ("BACKEND_TYPE", "Redis", &[]),
        ("REDIS_TYPE", "replica", &[("REDIS_URL", "h:1")]),
        ("REDIS_SOCKET_TYPE", "udp", &[("REDIS_URL", "h:1")]),
        ("REDIS_URL", "h:1", &[("REDIS_TYPE", "sentinel")]),
        ("REDIS_URL", "redis.sock", &[]),
        (
            "REDIS_SENTINEL_AUTH",
            "user:pass",
            &[("REDIS_URL", "m,h:1"), ("REDIS_TYPE", "sentinel")],
        ),
        ("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION", "true", sentinel_tls),
        (
            "REDIS_TLS_SKIP_HOSTNAME_VERIFICATION",
            "true",
            per_second_sentinel_tls,
        ),
        ("REDIS_PERSECOND", "true", &[]),
        (
            "REDIS_PERSECOND_TYPE",
            "replica",
            &[("REDIS_URL", "h:1"), ("REDIS_PERSECOND", "true")],
        ),
        ("LOG_LEVEL", "verbose", &[]),
        ("PORT", "08080", &[]),
        ("GRPC_PORT", "tcp://10.0.0.1:8081", &[]),
        ("GRPC_PORT", "70000", &[]),
        ("HOST", "no such host.invalid", &[]),
        ("GRPC_MAX_CONNECTION_AGE", "10", &[]),
        ("PROMETHEUS_MAPPER_YAML", "/etc/mapper.yaml", &[]),
        ("PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS", "true", &[]),
        (
            "PROMETHEUS_ADDR",
            "metrics:9090",
            &[("USE_PROMETHEUS", "true")],
        ),
        ("NEAR_LIMIT_RATIO", "1.5", &[]),
        ("LOCAL_CACHE_SIZE_IN_BYTES", "-1", &[]),
        ("LIMIT_LIMIT_HEADER", "Rate Limit", &[]),
        ("REDIS_POOL_SIZE", "ten", &[]),
        ("XDS_CLIENT_BACKOFF_JITTER", "yes", &[]),
        ("CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS", "a:b:c", &[]),
        ("MEMCACHE_SRV_REFRESH", "1d", &[]),
    ];
    for (name, value, extra) in cases {
        let mut vars = vec![(name, value)];
        vars.extend_from_slice(extra);
        let error = settings_with(&vars, &[]).expect_err(&format!("{name}={value} was accepted"));
        assert_eq!(error.name(), name, "{name}={value}: {error}");
        assert!(
            error.to_string().starts_with(&format!("{name}=")),
            "{error}"
        );
    }
}

#[test]
fn no_arguments_at_all_serve() {
    let cli = Cli::parse_with_go_names(["ratelimiter"], &|name| {
        (name == "GRPC_PORT").then(|| "9999".to_string())
    })
    .unwrap();
    let Command::Serve(settings) = cli.command else {
        panic!("no arguments did not mean serve")
    };
    assert_eq!(settings.grpc_addr.port(), 9999);
    assert_eq!(settings.go_report.read, ["GRPC_PORT"]);
}
