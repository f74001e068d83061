//! The Go variables for listeners, logs, the config directory and what answers carry.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use super::env::{GoEnv, GoNameError};
use crate::settings::{ConfigFiles, LogFormat, ServeSettings, parse_header_name};

/// What Go's `0` (no limit) for a connection age becomes: ten years.
const NEVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Go's `RUNTIME_ROOT` default.
const GO_RUNTIME_ROOT: &str = "/srv/runtime_data/current";

type Given<'a> = &'a dyn Fn(&str) -> bool;

pub fn listeners(
    settings: &mut ServeSettings,
    given: Given,
    go: &GoEnv,
) -> Result<(), GoNameError> {
    if !given("grpc_uds")
        && let Some(path) = go.non_empty("GRPC_UDS")
    {
        settings.grpc_uds = Some(PathBuf::from(path));
    }
    if !given("http_addr")
        && let Some(address) = address(go, "HOST", "PORT", 8080)?
    {
        settings.http_addr = address;
    }
    if !given("grpc_addr")
        && let Some(address) = address(go, "GRPC_HOST", "GRPC_PORT", 8081)?
    {
        settings.grpc_addr = address;
    }
    // Go always opens its debug listener; here only when one of these is set.
    if !given("debug_addr")
        && let Some(address) = address(go, "DEBUG_HOST", "DEBUG_PORT", 6070)?
    {
        settings.debug_addr = Some(address);
    }
    let bounds = &mut settings.bounds;
    for (name, id, target) in [
        (
            "GRPC_MAX_CONNECTION_AGE",
            "grpc_max_connection_age",
            &mut bounds.grpc_max_connection_age,
        ),
        (
            "GRPC_MAX_CONNECTION_AGE_GRACE",
            "grpc_max_connection_age_grace",
            &mut bounds.grpc_max_connection_age_grace,
        ),
    ] {
        if !given(id)
            && let Some(age) = go.duration(name)?
        {
            // Go (grpc-go) reads 0 as no limit.
            *target = if age.is_zero() { NEVER } else { age };
        }
    }
    Ok(())
}

/// `HOST`/`PORT` as Go joins them: an empty or unset host is every interface.
fn address(
    go: &GoEnv,
    host_name: &'static str,
    port_name: &'static str,
    default_port: u16,
) -> Result<Option<SocketAddr>, GoNameError> {
    let host = go.string(host_name);
    let port = go.port(port_name)?;
    if host.is_none() && port.is_none() {
        return Ok(None);
    }
    let port = port.unwrap_or(default_port);
    let host = host
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "0.0.0.0".into());
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Some(SocketAddr::new(ip, port)));
    }
    (bare, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .map(Some)
        .ok_or_else(|| GoNameError::new(host_name, &host, "not an address this host can listen on"))
}

pub fn logs(settings: &mut ServeSettings, given: Given, go: &GoEnv) -> Result<(), GoNameError> {
    if !given("log_level")
        && let Some(level) = go.string("LOG_LEVEL")
    {
        // logrus' names, in any case; panic and fatal log as error here.
        settings.log_level = match level.to_ascii_lowercase().as_str() {
            "panic" | "fatal" | "error" => "error",
            "warn" | "warning" => "warn",
            "info" => "info",
            "debug" => "debug",
            "trace" => "trace",
            _ => {
                return Err(GoNameError::new(
                    "LOG_LEVEL",
                    &level,
                    "not a valid logrus Level (panic, fatal, error, warn, info, debug, trace); the Go service refuses it too",
                ));
            }
        }
        .into();
    }
    if !given("log_format")
        && let Some(format) = go.string("LOG_FORMAT")
    {
        // As in Go: `json` in any case, anything else is text.
        settings.log_format = if format.eq_ignore_ascii_case("json") {
            LogFormat::Json
        } else {
            LogFormat::Text
        };
    }
    Ok(())
}

pub fn config(settings: &mut ServeSettings, given: Given, go: &GoEnv) -> Result<(), GoNameError> {
    match go.string("CONFIG_TYPE").as_deref() {
        None | Some("FILE") => {}
        Some(other @ "GRPC_XDS_SOTW") => {
            return Err(GoNameError::new(
                "CONFIG_TYPE",
                other,
                "loading limits from an xDS management server is not supported here; use CONFIG_TYPE=FILE with the limits under RUNTIME_ROOT",
            ));
        }
        Some(other) => {
            return Err(GoNameError::new(
                "CONFIG_TYPE",
                other,
                "Invalid setting for ConfigType (expected FILE); the Go service refuses it too",
            ));
        }
    }
    if !given("allow_empty_config")
        && let Some(force) = go.bool("FORCE_START_WITHOUT_INITIAL_CONFIG")?
    {
        settings.allow_empty_config = force;
    }
    let root = go.string("RUNTIME_ROOT");
    let subdirectory = go.string("RUNTIME_SUBDIRECTORY");
    let app = go.string("RUNTIME_APPDIRECTORY");
    let runtime = root.is_some() || subdirectory.is_some() || app.is_some();
    if runtime && !given("config") {
        let mut path = PathBuf::from(root.as_deref().unwrap_or(GO_RUNTIME_ROOT));
        path.push(subdirectory.unwrap_or_default());
        path.push(app.unwrap_or_else(|| "config".into()));
        settings.config = path;
        if !given("config_files") {
            settings.layout.config_files = ConfigFiles::Tree;
        }
    }
    let layout = &mut settings.layout;
    if !given("config_dotfiles") {
        match go.bool("RUNTIME_IGNOREDOTFILES")? {
            Some(ignore) => layout.config_dotfiles = !ignore,
            // Go's default loads dotfiles (not the `..` entries of a ConfigMap, skipped always).
            None if runtime => layout.config_dotfiles = true,
            None => {}
        }
    }
    if !given("merge_domain_config")
        && let Some(merge) = go.bool("MERGE_DOMAIN_CONFIG")?
    {
        layout.merge_domain_config = merge;
    }
    if !given("healthy_only_with_config")
        && let Some(healthy) = go.bool("HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED")?
    {
        settings.healthy_only_with_config = healthy;
    }
    Ok(())
}

pub fn answers(settings: &mut ServeSettings, given: Given, go: &GoEnv) -> Result<(), GoNameError> {
    let responses = &mut settings.responses;
    for (name, id, target) in [
        (
            "SHADOW_MODE",
            "global_shadow_mode",
            &mut settings.global_shadow_mode,
        ),
        (
            "QUOTA_MODE",
            "global_quota_mode",
            &mut settings.global_quota_mode,
        ),
        (
            "STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT",
            "stop_cache_key_increment_when_overlimit",
            &mut settings.stop_cache_key_increment_when_overlimit,
        ),
        (
            "RESPONSE_DYNAMIC_METADATA",
            "response_dynamic_metadata",
            &mut responses.response_dynamic_metadata,
        ),
        (
            "LIMIT_RESPONSE_HEADERS_ENABLED",
            "response_headers",
            &mut responses.response_headers,
        ),
    ] {
        if !given(id)
            && let Some(on) = go.bool(name)?
        {
            *target = on;
        }
    }
    for (name, id, target) in [
        (
            "LIMIT_LIMIT_HEADER",
            "header_limit",
            &mut responses.header_limit,
        ),
        (
            "LIMIT_REMAINING_HEADER",
            "header_remaining",
            &mut responses.header_remaining,
        ),
        (
            "LIMIT_RESET_HEADER",
            "header_reset",
            &mut responses.header_reset,
        ),
    ] {
        if !given(id)
            && let Some(header) = go.string(name)
        {
            *target =
                parse_header_name(&header).map_err(|why| GoNameError::new(name, &header, &why))?;
        }
    }
    if !given("near_limit_ratio")
        && let Some(ratio) = go.float("NEAR_LIMIT_RATIO")?
    {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(GoNameError::new(
                "NEAR_LIMIT_RATIO",
                &ratio.to_string(),
                "must be a share of the limit from 0 to 1 (the Go service accepts it, but then counts every hit or none as near the limit)",
            ));
        }
        settings.near_limit_ratio = ratio;
    }
    Ok(())
}
