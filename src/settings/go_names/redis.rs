//! The Go variables for the counter store: `BACKEND_TYPE` and `REDIS_*` in Go's forms
//! (`host:port`, a socket path, comma lists for Cluster, `master,host:port,...` for Sentinel,
//! `REDIS_AUTH` as `password` or `user:password`), turned into our `--redis-url` and its flags;
//! with `REDIS_PERSECOND=true`, the `REDIS_PERSECOND_*` set in the same forms, turned into
//! `--redis-per-second-url` and its flags.

use std::time::Duration;

use super::env::{GoEnv, GoNameError};
use crate::settings::{RedisType, Secret, ServeSettings};

type Given<'a> = &'a dyn Fn(&str) -> bool;

/// Bytes of Go's local cache per key remembered here (a key and its window, roughly).
const LOCAL_CACHE_BYTES_PER_KEY: i64 = 128;

/// The names of one Redis's variables: the main one's, or the per-second one's.
struct RedisNames {
    url: &'static str,
    kind: &'static str,
    socket_type: &'static str,
    auth: &'static str,
    tls: &'static str,
    sentinel_auth: &'static str,
    timeout: &'static str,
}

const MAIN: RedisNames = RedisNames {
    url: "REDIS_URL",
    kind: "REDIS_TYPE",
    socket_type: "REDIS_SOCKET_TYPE",
    auth: "REDIS_AUTH",
    tls: "REDIS_TLS",
    sentinel_auth: "REDIS_SENTINEL_AUTH",
    timeout: "REDIS_TIMEOUT",
};

const PER_SECOND: RedisNames = RedisNames {
    url: "REDIS_PERSECOND_URL",
    kind: "REDIS_PERSECOND_TYPE",
    socket_type: "REDIS_PERSECOND_SOCKET_TYPE",
    auth: "REDIS_PERSECOND_AUTH",
    tls: "REDIS_PERSECOND_TLS",
    sentinel_auth: "REDIS_PERSECOND_SENTINEL_AUTH",
    timeout: "REDIS_PERSECOND_TIMEOUT",
};

/// Go's `REDIS_PERSECOND_URL` default.
const GO_PER_SECOND_URL: &str = "/var/run/nutcracker/ratelimitpersecond.sock";

/// One Redis, as its Go variables describe it.
struct GoRedis {
    urls: String,
    kind: RedisType,
    /// Sentinel: the master's name, and the sentinels' own password.
    sentinel: Option<(String, Option<Secret>)>,
    /// Go's timeout, when set and not 0.
    timeout: Option<Duration>,
}

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
    let per_second_tls = per_second(settings, given, go)?;
    let main_tls = go.bool(MAIN.tls)?.unwrap_or(false);
    if given("redis_url") {
        return Ok(());
    }
    let Some(url) = go.string(MAIN.url) else {
        return Ok(());
    };
    let main = redis(go, &MAIN, &url)?;
    let redis = &mut settings.redis;
    settings.redis_url = Some(Secret::new(main.urls));
    if !given("redis_type") {
        redis.redis_type = main.kind;
    }
    if let Some((master, password)) = main.sentinel {
        if !given("redis_sentinel_master") {
            redis.redis_sentinel_master = Some(master);
        }
        if !given("redis_sentinel_password") && password.is_some() {
            redis.redis_sentinel_password = password;
        }
    }
    if let Some(timeout) = main.timeout {
        // Go bounds connecting with it and each call by the caller's deadline; here the
        // deadline bounds calls too, and this bounds calls that carry none.
        if !given("redis_timeout") {
            redis.redis_timeout = timeout;
        }
        if !given("redis_connect_timeout") {
            redis.redis_connect_timeout = timeout;
        }
    }
    // Go reads the certificates when either Redis asks for TLS, for both.
    let tls = main_tls || per_second_tls;
    for (name, id, target) in [
        ("REDIS_TLS_CACERT", "redis_tls_ca", &mut redis.redis_tls_ca),
        (
            "REDIS_TLS_CLIENT_CERT",
            "redis_tls_cert",
            &mut redis.redis_tls_cert,
        ),
        (
            "REDIS_TLS_CLIENT_KEY",
            "redis_tls_key",
            &mut redis.redis_tls_key,
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
    if redis.redis_tls_cert.is_some() != redis.redis_tls_key.is_some() {
        redis.redis_tls_cert = None;
        redis.redis_tls_key = None;
    }
    if tls && !given("redis_tls_skip_hostname_verification") {
        skip_hostname_verification(settings, main_tls, per_second_tls, go)?;
    }
    Ok(())
}

/// `REDIS_TLS_SKIP_HOSTNAME_VERIFICATION=true` as `--redis-tls-skip-hostname-verification`, for
/// both Redis as in Go; refused for a sentinel Redis over TLS, where only every check can be
/// skipped.
fn skip_hostname_verification(
    settings: &mut ServeSettings,
    main_tls: bool,
    per_second_tls: bool,
    go: &GoEnv,
) -> Result<(), GoNameError> {
    const NAME: &str = "REDIS_TLS_SKIP_HOSTNAME_VERIFICATION";
    if go.bool(NAME)? != Some(true) {
        return Ok(());
    }
    let per_second = &settings.per_second;
    let sentinel = if main_tls && settings.redis.redis_type == RedisType::Sentinel {
        Some(MAIN.kind)
    } else if per_second_tls
        && per_second.redis_per_second_url.is_some()
        && per_second.redis_per_second_type == RedisType::Sentinel
    {
        Some(PER_SECOND.kind)
    } else {
        None
    };
    if let Some(kind) = sentinel {
        return Err(GoNameError::new(
            NAME,
            "true",
            &format!(
                "with {kind}=sentinel the redis crate can only skip every certificate check of the master, not just the host name; name the host in the certificate"
            ),
        ));
    }
    settings.redis.redis_tls_skip_hostname_verification = true;
    Ok(())
}

/// `REDIS_PERSECOND=true` and its variables, as `--redis-per-second-url` and its flags;
/// whether the per-second Redis asks for TLS.
fn per_second(settings: &mut ServeSettings, given: Given, go: &GoEnv) -> Result<bool, GoNameError> {
    if go.bool("REDIS_PERSECOND")? != Some(true) || given("redis_per_second_url") {
        return Ok(false);
    }
    if !given("redis_url") && go.string(MAIN.url).is_none() {
        return Err(GoNameError::new(
            "REDIS_PERSECOND",
            "true",
            "needs REDIS_URL: without it counters are kept in memory here, not in Redis",
        ));
    }
    let url = go
        .string(PER_SECOND.url)
        .unwrap_or_else(|| GO_PER_SECOND_URL.into());
    let second = redis(go, &PER_SECOND, &url)?;
    let target = &mut settings.per_second;
    target.redis_per_second_url = Some(Secret::new(second.urls));
    if !given("redis_per_second_type") {
        target.redis_per_second_type = second.kind;
    }
    if let Some((master, password)) = second.sentinel {
        if !given("redis_per_second_sentinel_master") {
            target.redis_per_second_sentinel_master = Some(master);
        }
        if !given("redis_per_second_sentinel_password") && password.is_some() {
            target.redis_per_second_sentinel_password = password;
        }
    }
    if !given("redis_per_second_timeout") && second.timeout.is_some() {
        target.redis_per_second_timeout = second.timeout;
    }
    Ok(go.bool(PER_SECOND.tls)?.unwrap_or(false))
}

/// One Redis from the variables `names` gives, its URL being `url`.
fn redis(go: &GoEnv, names: &RedisNames, url: &str) -> Result<GoRedis, GoNameError> {
    let kind = match go.string(names.kind) {
        None => RedisType::Single,
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "single" => RedisType::Single,
            "sentinel" => RedisType::Sentinel,
            "cluster" => RedisType::Cluster,
            _ => {
                return Err(GoNameError::new(
                    names.kind,
                    &text,
                    "Unrecognized redis type (single, sentinel or cluster); the Go service refuses it too",
                ));
            }
        },
    };
    let auth = go.non_empty(names.auth).map(|auth| credentials(&auth));
    let tls = go.bool(names.tls)?.unwrap_or(false);
    let mut sentinel = None;
    let urls = match kind {
        RedisType::Single => single(go, names, url, auth.as_deref(), tls)?,
        RedisType::Cluster => list(url, auth.as_deref(), tls),
        RedisType::Sentinel => {
            let Some((master, sentinels)) = url.split_once(',') else {
                return Err(GoNameError::new(
                    names.url,
                    url,
                    "Expected master name and a list of urls for the sentinels, in the format: <redis master name>,<sentinel1>,...,<sentineln>",
                ));
            };
            sentinel = Some((master.to_string(), sentinel_password(go, names)?));
            // The master's credentials ride on the first sentinel URL.
            list(sentinels, auth.as_deref(), tls)
        }
    };
    let timeout = go.duration(names.timeout)?.filter(|t| !t.is_zero());
    Ok(GoRedis {
        urls,
        kind,
        sentinel,
        timeout,
    })
}

/// The sentinels' own password: `password` or `:password` (a user is not supported).
fn sentinel_password(go: &GoEnv, names: &RedisNames) -> Result<Option<Secret>, GoNameError> {
    let Some(auth) = go.non_empty(names.sentinel_auth) else {
        return Ok(None);
    };
    match auth.split_once(':') {
        None => Ok(Some(Secret::new(auth))),
        Some(("", password)) => Ok(Some(Secret::new(password))),
        Some(_) => Err(GoNameError::new(
            names.sentinel_auth,
            "<user>:<redacted>",
            "a user name for the sentinels is not supported here; give the sentinels' password alone",
        )),
    }
}

/// One Redis: `host:port` over TCP, a socket path over a Unix socket (Go's default socket
/// type), or a `redis://` URL.
fn single(
    go: &GoEnv,
    names: &RedisNames,
    url: &str,
    auth: Option<&str>,
    tls: bool,
) -> Result<String, GoNameError> {
    let socket = go.string(names.socket_type);
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok(url.to_string());
    }
    match socket.as_deref().unwrap_or("unix") {
        "tcp" | "tcp4" | "tcp6" => Ok(list(url, auth, tls)),
        "unix" => {
            if tls {
                return Err(GoNameError::new(
                    names.tls,
                    "true",
                    "TLS over a Unix socket is not supported here; set the socket type to tcp",
                ));
            }
            if !url.starts_with('/') {
                return Err(GoNameError::new(
                    names.url,
                    url,
                    "with the socket type unix (Go's default) this must be the absolute path of Redis' socket; set the socket type to tcp for host:port",
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
            names.socket_type,
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
