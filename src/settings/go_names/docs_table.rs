//! Keeps `docs/go-environment.md` true: it lists exactly the variables of [`GO_VARIABLES`],
//! each with the treatment the code gives it, and every variable it calls honoured or refused
//! changes the settings or is refused by name when set.

use std::collections::HashMap;

use clap::Parser;

use super::table::{GO_VARIABLES, GoVariable, Kind, Treatment};
use super::*;

const DOCS: &str = include_str!("../../../docs/go-environment.md");

/// (name, what the docs say it does here) for each row of the table.
fn documented() -> Vec<(String, String)> {
    DOCS.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let name = cells.first()?.strip_prefix("| `")?.strip_suffix('`')?;
            Some((
                name.to_string(),
                cells.last()?.trim_end_matches(" |").to_string(),
            ))
        })
        .collect()
}

/// Variables that need others set to mean anything (as in the Go service).
const BASE: [(&str, &str); 12] = [
    ("GRPC_SERVER_USE_TLS", "true"),
    ("GRPC_SERVER_TLS_CERT", "/certs/tls.crt"),
    ("GRPC_SERVER_TLS_KEY", "/certs/tls.key"),
    ("GRPC_CLIENT_TLS_CACERT", "/certs/ca.crt"),
    ("TRACING_ENABLED", "true"),
    ("USE_STATSD", "true"),
    ("USE_PROMETHEUS", "true"),
    ("REDIS_SOCKET_TYPE", "tcp"),
    ("REDIS_URL", "redis:6379"),
    ("REDIS_TLS", "true"),
    ("REDIS_TLS_CLIENT_CERT", "/certs/redis.crt"),
    ("REDIS_TLS_CLIENT_KEY", "/certs/redis.key"),
];

/// Values to try for a variable: each must either change the settings or be refused by name.
fn samples(variable: &GoVariable) -> Vec<&'static str> {
    let text = match variable.name {
        "HOST" => "127.0.0.2",
        "GRPC_HOST" => "127.0.0.3",
        "DEBUG_HOST" => "127.0.0.4",
        "LOG_LEVEL" => "debug",
        "LOG_FORMAT" => "json",
        "CONFIG_TYPE" => "GRPC_XDS_SOTW",
        "BACKEND_TYPE" => "memcache",
        "PROMETHEUS_ADDR" => ":9191",
        "TRACING_EXPORTER_PROTOCOL" => "grpc",
        "REDIS_SOCKET_TYPE" | "REDIS_PERSECOND_SOCKET_TYPE" => "udp",
        "REDIS_TYPE" | "REDIS_PERSECOND_TYPE" => "cluster",
        "REDIS_URL" | "REDIS_PERSECOND_URL" => "other:6380",
        "REDIS_AUTH" | "REDIS_PERSECOND_AUTH" => "user:pass",
        "LIMIT_LIMIT_HEADER" | "LIMIT_REMAINING_HEADER" | "LIMIT_RESET_HEADER" => "X-Header",
        _ => "/some/path",
    };
    match variable.kind {
        Kind::Text => vec![text],
        Kind::Bool => vec!["true", "false"],
        Kind::Int => vec!["7"],
        Kind::Float => vec!["0.5"],
        Kind::Duration => vec!["7s"],
        Kind::Map => vec!["team:edge"],
    }
}

/// The settings (secrets shown) from `vars`, or the variable refused.
fn outcome(vars: &HashMap<&str, &str>) -> Result<String, &'static str> {
    let Command::Serve(mut settings) = Cli::parse_from(["ratelimiter", "serve"]).command else {
        unreachable!("parsed a serve command")
    };
    apply(&mut settings, &|_| false, &|name| {
        vars.get(name).map(|v| v.to_string())
    })
    .map_err(|error| error.name())?;
    let secrets = [
        settings.redis_url.as_ref().map(|s| s.expose().to_string()),
        settings
            .redis
            .redis_sentinel_password
            .as_ref()
            .map(|s| s.expose().to_string()),
        settings
            .per_second
            .redis_per_second_url
            .as_ref()
            .map(|s| s.expose().to_string()),
        settings
            .per_second
            .redis_per_second_sentinel_password
            .as_ref()
            .map(|s| s.expose().to_string()),
    ];
    Ok(format!("{settings:?} {secrets:?}"))
}

#[test]
fn the_docs_list_every_go_variable_with_its_treatment() {
    let documented: HashMap<String, String> = documented().into_iter().collect();
    let mut names: Vec<&str> = documented.keys().map(String::as_str).collect();
    let mut known: Vec<&str> = GO_VARIABLES.iter().map(|v| v.name).collect();
    names.sort_unstable();
    known.sort_unstable();
    assert_eq!(names, known, "the docs table and GO_VARIABLES differ");
    assert_eq!(known.len(), 114, "settings.go has 114 variables");
    for variable in GO_VARIABLES {
        let here = &documented[variable.name];
        let not_needed = matches!(variable.treatment, Treatment::NotNeeded(_));
        assert_eq!(
            here.starts_with("not needed"),
            not_needed,
            "{}: the docs say {here:?}",
            variable.name
        );
        assert!(
            not_needed || here.starts_with("honoured") || here.starts_with("refused"),
            "{}: {here:?}",
            variable.name
        );
    }
}

#[test]
fn every_honoured_variable_changes_the_settings_or_is_refused_by_name() {
    for variable in GO_VARIABLES
        .iter()
        .filter(|v| v.treatment == Treatment::Honoured)
    {
        let mut base: HashMap<&str, &str> = BASE.into_iter().collect();
        if variable.name == "REDIS_SENTINEL_AUTH" {
            base.insert("REDIS_TYPE", "sentinel");
            base.insert("REDIS_URL", "mymaster,sentinel:26379");
        }
        if variable.name.starts_with("REDIS_PERSECOND_") {
            base.insert("REDIS_PERSECOND", "true");
            base.insert("REDIS_PERSECOND_SOCKET_TYPE", "tcp");
            base.insert("REDIS_PERSECOND_URL", "second:6379");
        }
        if variable.name == "REDIS_PERSECOND_SENTINEL_AUTH" {
            base.insert("REDIS_PERSECOND_TYPE", "sentinel");
            base.insert("REDIS_PERSECOND_URL", "mymaster,sentinel:26379");
        }
        base.remove(variable.name);
        let before = match outcome(&base) {
            Ok(before) => before,
            // Without it the others are refused (GRPC_SERVER_USE_TLS needs its certificate,
            // REDIS_TLS a TCP socket type): it is read.
            Err(_) => continue,
        };
        let effective = samples(variable).into_iter().any(|sample| {
            let mut vars = base.clone();
            vars.insert(variable.name, sample);
            match outcome(&vars) {
                Ok(after) => after != before,
                Err(name) => name == variable.name,
            }
        });
        assert!(
            effective,
            "{} is documented as honoured but changes nothing",
            variable.name
        );
    }
}

#[test]
fn every_not_needed_variable_is_logged_as_such() {
    for variable in GO_VARIABLES
        .iter()
        .filter(|v| v.treatment != Treatment::Honoured)
    {
        let sample = samples(variable)[0];
        let vars: HashMap<&str, &str> = [(variable.name, sample)].into_iter().collect();
        let Command::Serve(mut settings) = Cli::parse_from(["ratelimiter", "serve"]).command else {
            unreachable!("parsed a serve command")
        };
        let report = apply(&mut settings, &|_| false, &|name| {
            vars.get(name).map(|v| v.to_string())
        })
        .unwrap_or_else(|error| panic!("{}={sample}: {error}", variable.name));
        assert_eq!(report.not_needed.len(), 1, "{}", variable.name);
        assert_eq!(report.not_needed[0].0, variable.name);
    }
}
