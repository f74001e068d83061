//! The Go variables for the counter store: `BACKEND_TYPE` and `REDIS_*` in Go's forms
//! (`host:port`, a socket path, comma lists for Cluster, `master,host:port,...` for Sentinel,
//! `REDIS_AUTH` as `password` or `user:password`), turned into our `--redis-url` and its flags.

use super::env::{GoEnv, GoNameError};
use crate::settings::{RedisType, Secret, ServeSettings};

type Given<'a> = &'a dyn Fn(&str) -> bool;

/// Bytes of Go's local cache per key remembered here (a key and its window, roughly).
const LOCAL_CACHE_BYTES_PER_KEY: i64 = 128;

pub fn store(settings: &mut ServeSettings, given: Given, go: &GoEnv) -> Result<(), GoNameError> {
    let backend = go.string("BACKEND_TYPE");
    match backend.as_deref() {
        None | Some("" | "redis") => {}
        Some(other @ "memcache") => {
            return Err(GoNameError::new(
                "BACKEND_TYPE",
                other,
                "the memcached backend is not supported here; use BACKEND_TYPE=redis",
            ));
        }
        Some(other) => {
            return Err(GoNameError::new(
                "BACKEND_TYPE",
                other,
                "Invalid setting for BackendType (expected redis); the Go service refuses it too",
            ));
        }
    }
    go.refuse_true(
        "REDIS_PERSECOND",
        "a second Redis for per-second limits is not supported here yet; every limit is counted in REDIS_URL",
    )?;
    go.refuse_true(
        "REDIS_TLS_SKIP_HOSTNAME_VERIFICATION",
        "not supported here: the Redis certificate must name the host in REDIS_URL",
    )?;
    if !given("redis_key_prefix")
        && let Some(prefix) = go.string("CACHE_KEY_PREFIX")
    {
        settings.redis.redis_key_prefix = prefix;
    }
    if !given("local_cache_max_keys")
        && let Some(bytes) = go.int("LOCAL_CACHE_SIZE_IN_BYTES")?
    {
        if bytes < 0 {
            return Err(GoNameError::new(
                "LOCAL_CACHE_SIZE_IN_BYTES",
                &bytes.to_string(),
                "must be 0 (off) or a size in bytes",
            ));
        }
        settings.redis.local_cache_max_keys = (bytes / LOCAL_CACHE_BYTES_PER_KEY) as u64;
    }
    if given("redis_url") {
        return Ok(());
    }
    let Some(url) = go.string("REDIS_URL") else {
        return Ok(());
    };
    let kind = match go.string("REDIS_TYPE") {
        None => RedisType::Single,
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "single" => RedisType::Single,
            "sentinel" => RedisType::Sentinel,
            "cluster" => RedisType::Cluster,
            _ => {
                return Err(GoNameError::new(
                    "REDIS_TYPE",
                    &text,
                    "Unrecognized redis type (single, sentinel or cluster); the Go service refuses it too",
                ));
            }
        },
    };
    let auth = go.non_empty("REDIS_AUTH").map(|auth| credentials(&auth));
    let tls = go.bool("REDIS_TLS")?.unwrap_or(false);
    let urls = match kind {
        RedisType::Single => single(go, &url, auth.as_deref(), tls)?,
        RedisType::Cluster => list(&url, auth.as_deref(), tls),
        RedisType::Sentinel => {
            let Some((master, sentinels)) = url.split_once(',') else {
                return Err(GoNameError::new(
                    "REDIS_URL",
                    &url,
                    "Expected master name and a list of urls for the sentinels, in the format: <redis master name>,<sentinel1>,...,<sentineln>",
                ));
            };
            if !given("redis_sentinel_master") {
                settings.redis.redis_sentinel_master = Some(master.to_string());
            }
            if !given("redis_sentinel_password")
                && let Some(auth) = go.non_empty("REDIS_SENTINEL_AUTH")
            {
                let password = match auth.split_once(':') {
                    None => auth.clone(),
                    Some(("", password)) => password.to_string(),
                    Some(_) => {
                        return Err(GoNameError::new(
                            "REDIS_SENTINEL_AUTH",
                            "<user>:<redacted>",
                            "a user name for the sentinels is not supported here; give the sentinels' password alone",
                        ));
                    }
                };
                settings.redis.redis_sentinel_password = Some(Secret::new(password));
            }
            // The master's credentials ride on the first sentinel URL.
            list(sentinels, auth.as_deref(), tls)
        }
    };
    settings.redis_url = Some(Secret::new(urls));
    if !given("redis_type") {
        settings.redis.redis_type = kind;
    }
    if let Some(timeout) = go.duration("REDIS_TIMEOUT")?.filter(|t| !t.is_zero()) {
        // Go bounds connecting with it and each call by the caller's deadline; here the
        // deadline bounds calls too, and this bounds calls that carry none.
        if !given("redis_timeout") {
            settings.redis.redis_timeout = timeout;
        }
        if !given("redis_connect_timeout") {
            settings.redis.redis_connect_timeout = timeout;
        }
    }
    for (name, id, target) in [
        (
            "REDIS_TLS_CACERT",
            "redis_tls_ca",
            &mut settings.redis.redis_tls_ca,
        ),
        (
            "REDIS_TLS_CLIENT_CERT",
            "redis_tls_cert",
            &mut settings.redis.redis_tls_cert,
        ),
        (
            "REDIS_TLS_CLIENT_KEY",
            "redis_tls_key",
            &mut settings.redis.redis_tls_key,
        ),
    ] {
        if tls
            && !given(id)
            && let Some(path) = go.non_empty(name)
        {
            *target = Some(path.into());
        }
    }
    // Go uses a client certificate only when both halves are given.
    let redis = &mut settings.redis;
    if redis.redis_tls_cert.is_some() != redis.redis_tls_key.is_some() {
        redis.redis_tls_cert = None;
        redis.redis_tls_key = None;
    }
    Ok(())
}

/// One Redis: `host:port` over TCP, a socket path over a Unix socket (Go's default socket
/// type), or a `redis://` URL.
fn single(go: &GoEnv, url: &str, auth: Option<&str>, tls: bool) -> Result<String, GoNameError> {
    let socket = go.string("REDIS_SOCKET_TYPE");
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok(url.to_string());
    }
    match socket.as_deref().unwrap_or("unix") {
        "tcp" | "tcp4" | "tcp6" => Ok(list(url, auth, tls)),
        "unix" => {
            if tls {
                return Err(GoNameError::new(
                    "REDIS_TLS",
                    "true",
                    "TLS over a Unix socket is not supported here; use REDIS_SOCKET_TYPE=tcp",
                ));
            }
            if !url.starts_with('/') {
                return Err(GoNameError::new(
                    "REDIS_URL",
                    url,
                    "with REDIS_SOCKET_TYPE=unix (Go's default) this must be the absolute path of Redis' socket; set REDIS_SOCKET_TYPE=tcp for host:port",
                ));
            }
            // `auth` is already percent-encoded, as `user:password` or `:password`.
            let mut query = Vec::new();
            if let Some((user, password)) = auth.and_then(|auth| auth.split_once(':')) {
                if !user.is_empty() {
                    query.push(format!("user={user}"));
                }
                query.push(format!("pass={password}"));
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            Ok(format!("redis+unix://{}{query}", encode_path(url)))
        }
        other => Err(GoNameError::new(
            "REDIS_SOCKET_TYPE",
            other,
            "expected tcp or unix",
        )),
    }
}

/// `h1:p1,h2:p2` as `redis://[auth@]h1:p1,redis://[auth@]h2:p2`.
fn list(hosts: &str, auth: Option<&str>, tls: bool) -> String {
    let scheme = if tls { "rediss" } else { "redis" };
    let userinfo = auth.map(|auth| format!("{auth}@")).unwrap_or_default();
    hosts
        .split(',')
        .map(|host| {
            if host.contains("://") {
                host.to_string()
            } else {
                format!("{scheme}://{userinfo}{host}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `password` or `user:password` (split at the first `:`, as Go does), percent-encoded as URL
/// user information.
fn credentials(auth: &str) -> String {
    match auth.split_once(':') {
        Some((user, password)) => format!("{}:{}", encode(user), encode(password)),
        None => format!(":{}", encode(auth)),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A socket path in a URL: each segment encoded, the slashes kept.
fn encode_path(path: &str) -> String {
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}
