//! The Go service's (envoyproxy/ratelimit) environment variables for TLS, tracing and statsd,
//! read with Go's meaning and parsing, onto our settings where our own flag or `RATELIMITER_*`
//! variable left a setting unset. A value Go would refuse is refused with the variable's name.
//!
//! Where the two differ: statsd is off unless asked for (Go's `USE_STATSD` defaults to true, so
//! here it counts as asked for when set to true, or when `STATSD_HOST`/`STATSD_PORT` is set and
//! `USE_STATSD` is not false); statsd goes over UDP unless `STATSD_PROTOCOL=tcp` (Go: TCP
//! unless `udp`); and the client CA is the only trust anchor for client certificates (Go adds
//! the system roots).

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use super::{Cli, Command, OtlpProtocol, ServeSettings, StatsdProtocol};

impl Cli {
    /// Parses `args` and the environment read through `env`; for `serve`, the Go service's
    /// variable names (this module) fill what our own flags and variables left unset.
    pub fn parse_with_go_names<T: Into<std::ffi::OsString> + Clone>(
        args: impl IntoIterator<Item = T>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Cli, clap::Error> {
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        if let (Command::Serve(settings), Some(("serve", serve))) =
            (&mut cli.command, matches.subcommand())
        {
            let given = |id: &str| {
                matches!(
                    serve.value_source(id),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            };
            apply(settings, &given, env).map_err(|error| {
                clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    format!("{error}\n"),
                )
            })?;
        }
        Ok(cli)
    }
}

/// A Go variable whose value the Go service would refuse (it panics at startup on those).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: {why} (the Go service refuses it too)")]
pub struct GoNameError {
    name: &'static str,
    value: String,
    why: String,
}

/// Reads the Go variables through `env` into `settings`; `given(id)` tells whether our own flag
/// or variable for the setting with that clap id was given.
pub fn apply(
    settings: &mut ServeSettings,
    given: &dyn Fn(&str) -> bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), GoNameError> {
    let go = GoEnv { env };
    grpc_tls(settings, given, &go)?;
    tracing(settings, given, &go)?;
    statsd(settings, given, &go)
}

fn grpc_tls(
    settings: &mut ServeSettings,
    given: &dyn Fn(&str) -> bool,
    go: &GoEnv,
) -> Result<(), GoNameError> {
    if !go.bool("GRPC_SERVER_USE_TLS")?.unwrap_or(false) || given("grpc_tls_cert") {
        return Ok(());
    }
    let tls = &mut settings.tls;
    tls.grpc_tls_cert = Some(go.required("GRPC_SERVER_TLS_CERT")?.into());
    tls.grpc_tls_key = Some(go.required("GRPC_SERVER_TLS_KEY")?.into());
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

fn tracing(
    settings: &mut ServeSettings,
    given: &dyn Fn(&str) -> bool,
    go: &GoEnv,
) -> Result<(), GoNameError> {
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

fn statsd(
    settings: &mut ServeSettings,
    given: &dyn Fn(&str) -> bool,
    go: &GoEnv,
) -> Result<(), GoNameError> {
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
        statsd.statsd_flush_interval = super::parse_duration(&interval)
            .map_err(|why| GoNameError::new("STATS_FLUSH_INTERVAL", &interval, &why))?;
    }
    if !given("stats_tag")
        && let Some(tags) = go.string("EXTRA_TAGS")
    {
        statsd.stats_tag = extra_tags(&tags)?;
    }
    Ok(())
}

/// `k1:v1,k2:v2` as envconfig splits a map: no trimming, exactly one `:` per item.
fn extra_tags(text: &str) -> Result<Vec<(String, String)>, GoNameError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|item| match item.split(':').collect::<Vec<_>>()[..] {
            [key, value] => Ok((key.to_string(), value.to_string())),
            _ => Err(GoNameError::new(
                "EXTRA_TAGS",
                text,
                &format!("invalid map item: {item:?}"),
            )),
        })
        .collect()
}

impl GoNameError {
    fn new(name: &'static str, value: &str, why: &str) -> GoNameError {
        GoNameError {
            name,
            value: value.to_string(),
            why: why.to_string(),
        }
    }
}

/// The environment, read with Go's (envconfig's) parsing.
struct GoEnv<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
}

impl GoEnv<'_> {
    /// Set, even to the empty string.
    fn string(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// Set and not empty, or an error naming it.
    fn required(&self, name: &'static str) -> Result<String, GoNameError> {
        self.string(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| GoNameError::new(name, "", "required with GRPC_SERVER_USE_TLS=true"))
    }

    /// Go's `strconv.ParseBool`.
    fn bool(&self, name: &'static str) -> Result<Option<bool>, GoNameError> {
        match self.string(name).as_deref() {
            None => Ok(None),
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(Some(true)),
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(Some(false)),
            Some(other) => Err(GoNameError::new(name, other, "expected true or false")),
        }
    }

    /// A port number; Kubernetes' service links (`tcp://10.0.0.1:8125`) get a hint.
    fn port(&self, name: &'static str) -> Result<Option<u16>, GoNameError> {
        let Some(text) = self.string(name) else {
            return Ok(None);
        };
        text.parse().map(Some).map_err(|_| {
            let why = if text.contains("://") {
                "not a port number; this looks like a Kubernetes service link (set enableServiceLinks: false on the pod)"
            } else {
                "not a port number"
            };
            GoNameError::new(name, &text, why)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::Parser;

    use super::*;

    fn settings_with(vars: &[(&str, &str)], flags: &[&str]) -> Result<ServeSettings, GoNameError> {
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
        apply(&mut settings, &given, &|name| vars.get(name).cloned())?;
        Ok(*settings)
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
}
