//! The Go variables for TLS on the gRPC listener, tracing, statsd and Prometheus.
//!
//! Where the two differ: statsd is off unless asked for (Go's `USE_STATSD` defaults to true, so
//! here it counts as asked for when set to true, or when `STATSD_HOST`/`STATSD_PORT` is set and
//! `USE_STATSD` is not false); statsd goes over UDP unless `STATSD_PROTOCOL=tcp` (Go: TCP
//! unless `udp`); and the client CA is the only trust anchor for client certificates (Go adds
//! the system roots).

use std::net::SocketAddr;

use super::env::{GoEnv, GoNameError};
use crate::settings::{OtlpProtocol, ServeSettings, StatsdProtocol};

type Given<'a> = &'a dyn Fn(&str) -> bool;

pub fn grpc_tls(settings: &mut ServeSettings, given: Given, go: &GoEnv) -> Result<(), GoNameError> {
    if !go.bool("GRPC_SERVER_USE_TLS")?.unwrap_or(false) || given("grpc_tls_cert") {
        return Ok(());
    }
    let tls = &mut settings.tls;
    tls.grpc_tls_cert = Some(required(go, "GRPC_SERVER_TLS_CERT")?.into());
    tls.grpc_tls_key = Some(required(go, "GRPC_SERVER_TLS_KEY")?.into());
    let ca = go
        .string("GRPC_CLIENT_TLS_CACERT")
        .filter(|ca| !ca.is_empty());
    if let Some(ca) = ca.filter(|_| !given("grpc_tls_client_ca")) {
        tls.grpc_tls_client_ca = Some(ca.into());
        // Go checks the SAN only with a client CA.
        if let Some(san) = go
            .string("GRPC_CLIENT_TLS_SAN")
            .filter(|san| !san.is_empty())
        {
            tls.grpc_tls_client_san = vec![san];
        }
    }
    Ok(())
}

pub fn tracing(settings: &mut ServeSettings, given: Given, go: &GoEnv) -> Result<(), GoNameError> {
    if !go.bool("TRACING_ENABLED")?.unwrap_or(false) || given("tracing") {
        return Ok(());
    }
    let tracing = &mut settings.tracing;
    tracing.tracing = true;
    if !given("tracing_protocol") {
        // Go's default is OTLP/HTTP; its protocol names are case-sensitive.
        tracing.tracing_protocol = match go.string("TRACING_EXPORTER_PROTOCOL").as_deref() {
            None | Some("" | "http") => Some(OtlpProtocol::Http),
            Some("grpc") => Some(OtlpProtocol::Grpc),
            Some(other) => {
                return Err(GoNameError::new(
                    "TRACING_EXPORTER_PROTOCOL",
                    other,
                    "Invalid otlptrace client protocol (http or grpc)",
                ));
            }
        };
    }
    if !given("tracing_service_name") {
        tracing.tracing_service_name = go
            .string("TRACING_SERVICE_NAME")
            .or_else(|| Some("RateLimit".into()));
    }
    if !given("tracing_sample_ratio")
        && let Some(rate) = go.string("TRACING_SAMPLING_RATE")
    {
        let ratio: f64 = rate
            .parse()
            .map_err(|_| GoNameError::new("TRACING_SAMPLING_RATE", &rate, "not a number"))?;
        // Go's sampler treats anything above 1 as always and below 0 as never.
        tracing.tracing_sample_ratio = ratio.clamp(0.0, 1.0);
    }
    for (name, attribute) in [
        ("TRACING_SERVICE_NAMESPACE", "service.namespace"),
        ("TRACING_SERVICE_INSTANCE_ID", "service.instance.id"),
    ] {
        let known = tracing
            .tracing_resource
            .iter()
            .any(|(key, _)| key == attribute);
        if let Some(value) = go.string(name).filter(|value| !value.is_empty() && !known) {
            tracing.tracing_resource.push((attribute.into(), value));
        }
    }
    Ok(())
}

pub fn statsd(settings: &mut ServeSettings, given: Given, go: &GoEnv) -> Result<(), GoNameError> {
    if go
        .string("USE_DOG_STATSD_MOGRIFIERS")
        .is_some_and(|m| !m.is_empty())
    {
        return Err(GoNameError::new(
            "USE_DOG_STATSD_MOGRIFIERS",
            &go.string("USE_DOG_STATSD_MOGRIFIERS").unwrap_or_default(),
            "DogStatsD mogrifiers are not supported here",
        ));
    }
    let disabled = go.bool("DISABLE_STATS")?.unwrap_or(false);
    let dogstatsd = go.bool("USE_DOG_STATSD")?.unwrap_or(false);
    let use_statsd = go.bool("USE_STATSD")?;
    let host = go.string("STATSD_HOST");
    let port = go.port("STATSD_PORT")?;
    let wanted = dogstatsd
        || use_statsd == Some(true)
        || (use_statsd.is_none() && (host.is_some() || port.is_some()));
    let statsd = &mut settings.statsd;
    if disabled || !wanted || given("statsd_addr") {
        return Ok(());
    }
    let host = host.unwrap_or_else(|| "localhost".into());
    statsd.statsd_addr = Some(format!("{host}:{}", port.unwrap_or(8125)));
    if !given("statsd_dogstatsd") {
        statsd.statsd_dogstatsd = dogstatsd;
    }
    if !given("statsd_protocol") && !dogstatsd {
        statsd.statsd_protocol = match go.string("STATSD_PROTOCOL").as_deref() {
            Some("tcp") => StatsdProtocol::Tcp,
            None | Some("udp") => StatsdProtocol::Udp,
            Some(other) => {
                return Err(GoNameError::new(
                    "STATSD_PROTOCOL",
                    other,
                    "expected tcp or udp",
                ));
            }
        };
    }
    if !given("statsd_flush_interval")
        && let Some(interval) = go.string("STATS_FLUSH_INTERVAL")
    {
        statsd.statsd_flush_interval = super::env::parse_go_duration(&interval)
            .map_err(|why| GoNameError::new("STATS_FLUSH_INTERVAL", &interval, why))?;
    }
    if !given("stats_tag")
        && let Some(tags) = go.map("EXTRA_TAGS")?
    {
        statsd.stats_tag = tags;
    }
    Ok(())
}

/// Set and not empty, or an error naming it.
fn required(go: &GoEnv, name: &'static str) -> Result<String, GoNameError> {
    go.non_empty(name)
        .ok_or_else(|| GoNameError::new(name, "", "required with GRPC_SERVER_USE_TLS=true"))
}

/// `USE_PROMETHEUS`: the metrics on their own listener at `PROMETHEUS_ADDR` and
/// `PROMETHEUS_PATH`, where the Go service's scrape annotations expect them (they are on
/// `/metrics` of the HTTP listener too).
pub fn prometheus(
    settings: &mut ServeSettings,
    given: Given,
    go: &GoEnv,
) -> Result<(), GoNameError> {
    go.refuse_set(
        "PROMETHEUS_MAPPER_YAML",
        "custom statsd_exporter mapping files are not supported here; metric names follow the Go service's default mapping",
    )?;
    go.refuse_true(
        "PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS",
        "not supported here: ratelimit_service_response_time_seconds is in seconds, as its name says",
    )?;
    let disabled = go.bool("DISABLE_STATS")?.unwrap_or(false);
    if disabled || !go.bool("USE_PROMETHEUS")?.unwrap_or(false) || given("prometheus_addr") {
        return Ok(());
    }
    let addr = go
        .string("PROMETHEUS_ADDR")
        .unwrap_or_else(|| ":9090".into());
    // Go's `host:port`, where an empty host is every interface.
    let with_host = match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.clone(),
    };
    let address: SocketAddr = with_host.parse().map_err(|_| {
        GoNameError::new(
            "PROMETHEUS_ADDR",
            &addr,
            "expected host:port or :port, with an IP address for the host",
        )
    })?;
    settings.prometheus.prometheus_addr = Some(address);
    if !given("prometheus_path")
        && let Some(path) = go.string("PROMETHEUS_PATH")
    {
        if !path.starts_with('/') {
            return Err(GoNameError::new(
                "PROMETHEUS_PATH",
                &path,
                "must start with /",
            ));
        }
        settings.prometheus.prometheus_path = path;
    }
    Ok(())
}
