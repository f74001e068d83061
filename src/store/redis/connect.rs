//! From options to connections: parse the URLs for the kind of deployment, load TLS files, and
//! dial one [`Connection`] (a single node, the master the sentinels name, or a cluster).
//!
//! Error texts never carry the URL: it may hold a password.

use std::path::Path;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};

use super::options::{RedisKind, RedisOptions, RedisTls};
use super::switch::MasterSwitches;
use crate::secret::without_password;

/// Cluster connections never retry: a script retried after a lost reply, or a pipeline retried
/// whole after one MOVED reply, would count twice. A failed call answers UNAVAILABLE instead, and
/// the connection still refreshes its slots and reconnects by itself.
const CLUSTER_RETRIES: u32 = 0;

/// Why the Redis flags cannot be used; the service refuses to start with one of these.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error(
        "--redis-url entry {index} is not a valid redis://, rediss:// or redis+unix:// URL{detail}"
    )]
    BadUrl { index: usize, detail: String },
    #[error("--redis-type single takes one URL, --redis-url has {0}")]
    TooManyUrls(usize),
    #[error("--redis-type sentinel needs --redis-sentinel-master (the monitored master's name)")]
    NoSentinelMaster,
    #[error(
        "--redis-url entry {index} ends in #insecure, which would skip every certificate check; trust the server's CA with --redis-tls-ca instead"
    )]
    InsecureUrl { index: usize },
    #[error(
        "--redis-tls-skip-hostname-verification cannot be used with a sentinel Redis (--redis-type or --redis-per-second-type sentinel): the redis crate can only skip every certificate check of the master the sentinels name, not just its host name; name the host in the certificate instead"
    )]
    SkipHostnameWithSentinel,
    #[error("cannot read {path}: {error}")]
    TlsFile { path: String, error: std::io::Error },
    #[error("cannot set up the Redis client: {0}")]
    Client(String),
}

/// One live connection; cloning it is cheap (both kinds are handles to a background task).
#[derive(Clone)]
pub enum Connection {
    /// A single node, or the master that the sentinels named.
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(node) => node.req_packed_command(cmd),
            Connection::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(node) => node.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(node) => node.get_db(),
            Connection::Cluster(cluster) => cluster.get_db(),
        }
    }
}

/// Where connections come from.
#[allow(clippy::large_enum_variant)] // One per store, made once: its size does not matter.
pub enum Target {
    Single(Client),
    Sentinel(SentinelClient, MasterSwitches),
    Cluster(ClusterClient),
}

impl Target {
    /// Builds the client for `options`; connects to nothing yet.
    pub fn new(options: &RedisOptions) -> Result<Target, RedisSetupError> {
        let urls = options.urls.expose();
        let infos = parse_urls(urls)?;
        let tls = infos.iter().any(|info| is_tls(info.addr()));
        if tls {
            // redis-rs's rustls needs a process-wide crypto provider; a second install (another
            // store in the same process) fails harmlessly.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let certificates = certificates(&options.tls)?;
        let client_error =
            |error: redis::RedisError| RedisSetupError::Client(redact(&error.to_string(), urls));
        match options.kind {
            RedisKind::Single => {
                let [info] = <[ConnectionInfo; 1]>::try_from(infos)
                    .map_err(|infos| RedisSetupError::TooManyUrls(infos.len()))?;
                let client = match certificates {
                    Some(certificates) => Client::build_with_tls(info, certificates),
                    None => Client::open(info),
                };
                client
                    .and_then(|client| {
                        skip_hostname(client, options.tls.skip_hostname_verification)
                    })
                    .map(Target::Single)
                    .map_err(client_error)
            }
            RedisKind::Cluster => {
                let mut builder = ClusterClientBuilder::new(infos)
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(response_timeout(options))
                    .retries(CLUSTER_RETRIES)
                    .danger_accept_invalid_hostnames(options.tls.skip_hostname_verification);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                builder.build().map(Target::Cluster).map_err(client_error)
            }
            RedisKind::Sentinel => {
                if options.tls.skip_hostname_verification && tls {
                    return Err(RedisSetupError::SkipHostnameWithSentinel);
                }
                let master = options
                    .sentinel_master
                    .as_deref()
                    .ok_or(RedisSetupError::NoSentinelMaster)?;
                let sentinel_password = options.sentinel_password.as_ref().map(|p| p.expose());
                let switches = MasterSwitches::new(
                    &infos,
                    master,
                    sentinel_password,
                    certificates.as_ref(),
                    options.connect_timeout,
                )
                .map_err(client_error)?;
                let client = sentinel(infos, master, sentinel_password, certificates)
                    .map_err(client_error)?;
                Ok(Target::Sentinel(client, switches))
            }
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// For a sentinel setup: where to hear that the master moved.
    pub fn master_switches(&self) -> Option<MasterSwitches> {
        match self {
            Target::Sentinel(_, switches) => Some(switches.clone()),
            Target::Single(_) | Target::Cluster(_) => None,
        }
    }

    /// One connection attempt (for a sentinel setup: ask the sentinels, then connect to the
    /// master they name).
    pub async fn dial(&mut self, options: &RedisOptions) -> RedisResult<Connection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(response_timeout(options)));
        match self {
            Target::Single(client) => client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(Connection::Node),
            Target::Sentinel(client, _) => client
                .get_async_connection_with_config(&config)
                .await
                .map(Connection::Node),
            Target::Cluster(client) => client.get_async_connection().await.map(Connection::Cluster),
        }
    }
}

/// redis-rs's own bound on a reply: a backstop only. Requests are bounded by their timeout
/// around the call, which always fires first, so that a slow reply fails one request and does
/// not count as a broken connection.
fn response_timeout(options: &RedisOptions) -> Duration {
    options
        .connect_timeout
        .max(options.timeout)
        .saturating_mul(2)
}

/// Splits the comma-separated URL list and parses each entry.
fn parse_urls(text: &str) -> Result<Vec<ConnectionInfo>, RedisSetupError> {
    text.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(index, url)| {
            let index = index + 1;
            let schemes = ["redis://", "rediss://", "redis+unix://"];
            if !schemes.iter().any(|scheme| url.starts_with(scheme)) {
                return Err(RedisSetupError::BadUrl {
                    index,
                    detail: String::new(),
                });
            }
            url.into_connection_info()
                .map_err(|error| RedisSetupError::BadUrl {
                    index,
                    // redis-rs names what is wrong without repeating the URL; the password is
                    // removed anyway in case a future version does.
                    detail: format!(": {}", redact(&error.to_string(), url)),
                })
                .and_then(|info| match info.addr() {
                    ConnectionAddr::TcpTls { insecure: true, .. } => {
                        Err(RedisSetupError::InsecureUrl { index })
                    }
                    _ => Ok(info),
                })
        })
        .collect()
}

/// `client` again, not checking the host name when `skip`. `Client::build_with_tls` always
/// checks it, so the flag is set on the address it built.
fn skip_hostname(client: Client, skip: bool) -> RedisResult<Client> {
    if !skip {
        return Ok(client);
    }
    let info = client.get_connection_info().clone();
    let mut addr = info.addr().clone();
    addr.set_danger_accept_invalid_hostnames(true);
    Client::open(info.set_addr(addr))
}

fn is_tls(addr: &ConnectionAddr) -> bool {
    matches!(addr, ConnectionAddr::TcpTls { .. })
}

/// Removes the passwords of a (comma-separated) `--redis-url` from `text`: each URL is shown
/// without its password, and its user information (`user:password`) and password are redacted.
pub fn redact(text: &str, urls: &str) -> String {
    let mut clean = text.to_string();
    for url in urls.split(',').map(str::trim).filter(|url| !url.is_empty()) {
        clean = clean.replace(url, &without_password(url));
        let userinfo = url
            .split_once("://")
            .and_then(|(_, rest)| rest.rsplit_once('@'))
            .map(|(userinfo, _)| userinfo);
        // A user name alone is no secret; "user:password" and the password are.
        if let Some(userinfo) = userinfo
            && let Some((_, password)) = userinfo.split_once(':')
            && !password.is_empty()
        {
            clean = clean
                .replace(userinfo, "<redacted>")
                .replace(password, "<redacted>");
        }
    }
    clean
}

fn sentinel(
    infos: Vec<ConnectionInfo>,
    master: &str,
    sentinel_password: Option<&str>,
    certificates: Option<TlsCertificates>,
) -> RedisResult<SentinelClient> {
    // The first URL's user and password authenticate to the master; sentinels have their own.
    let credentials = infos[0].redis_settings().clone();
    let tls = infos.iter().any(|info| is_tls(info.addr()));
    let addresses = infos.into_iter().map(|info| info.addr().clone());
    let mut builder = SentinelClientBuilder::new(addresses, master, SentinelServerType::Master)?;
    if let Some(user) = credentials.username() {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = credentials.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(password) = sentinel_password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if tls {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
    }
    if let Some(certificates) = certificates {
        builder = builder
            .set_client_to_redis_certificates(certificates.clone())
            .set_client_to_sentinel_certificates(certificates);
    }
    builder.build()
}

/// The CA and client certificate files, when any is given.
fn certificates(files: &RedisTls) -> Result<Option<TlsCertificates>, RedisSetupError> {
    let root_cert = files.ca.as_deref().map(read).transpose()?;
    let client_tls = match &files.client {
        Some((cert, key)) => Some(ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        None => None,
    };
    Ok(
        (root_cert.is_some() || client_tls.is_some()).then_some(TlsCertificates {
            client_tls,
            root_cert,
        }),
    )
}

fn read(path: &Path) -> Result<Vec<u8>, RedisSetupError> {
    std::fs::read(path).map_err(|error| RedisSetupError::TlsFile {
        path: path.display().to_string(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn options(urls: &str, kind: RedisKind) -> RedisOptions {
        RedisOptions {
            urls: Secret::new(urls),
            kind,
            sentinel_master: None,
            sentinel_password: None,
            timeout: Duration::from_millis(15),
            connect_timeout: Duration::from_millis(500),
            tls: RedisTls::default(),
        }
    }

    #[test]
    fn the_url_list_must_fit_the_redis_kind() {
        let two = "redis://a:1,redis://b:2";
        assert!(matches!(
            Target::new(&options(two, RedisKind::Single)),
            Err(RedisSetupError::TooManyUrls(2))
        ));
        assert!(matches!(
            Target::new(&options(two, RedisKind::Sentinel)),
            Err(RedisSetupError::NoSentinelMaster)
        ));
        assert!(Target::new(&options(two, RedisKind::Cluster)).is_ok_and(|t| t.is_cluster()));
        let mut missing_ca = options("redis://a:1", RedisKind::Single);
        missing_ca.tls.ca = Some("/no/such/ca.pem".into());
        assert!(matches!(
            Target::new(&missing_ca),
            Err(RedisSetupError::TlsFile { .. })
        ));
    }

    #[test]
    fn only_the_host_name_check_can_be_skipped_and_never_with_sentinel_tls() {
        let skipping = |urls: &str, kind: RedisKind| {
            let mut options = options(urls, kind);
            options.sentinel_master = Some("m".into());
            options.tls.skip_hostname_verification = true;
            Target::new(&options)
        };
        assert!(skipping("rediss://a:1", RedisKind::Single).is_ok());
        assert!(skipping("rediss://a:1,rediss://b:2", RedisKind::Cluster).is_ok());
        assert!(
            skipping("redis://a:1", RedisKind::Sentinel).is_ok(),
            "no certificate to check"
        );
        assert!(matches!(
            skipping("rediss://a:1", RedisKind::Sentinel),
            Err(RedisSetupError::SkipHostnameWithSentinel)
        ));
        let insecure = parse_urls("rediss://a:1,rediss://b:2/#insecure").unwrap_err();
        assert!(
            matches!(insecure, RedisSetupError::InsecureUrl { index: 2 }),
            "{insecure}"
        );
    }

    #[test]
    fn redaction_removes_user_and_password() {
        let url = "redis://admin:hunter2@db:6379";
        let text = format!("failed on {url}; auth hunter2 for admin:hunter2");
        let clean = redact(&text, url);
        assert!(!clean.contains("hunter2"), "{clean}");
        assert_eq!(
            clean,
            "failed on redis://admin@db:6379; auth <redacted> for <redacted>"
        );
    }

    #[test]
    fn bad_urls_are_named_by_position_never_by_text() {
        let error = parse_urls("redis://a:1, http://user:hunter2@b").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("entry 2"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
