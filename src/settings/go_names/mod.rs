//! The Go service's (envoyproxy/ratelimit) environment, read as it is: every variable of its
//! `settings.go` (listed in [`table`]) is honoured with the Go meaning and parsing onto our
//! settings, refused with an error naming it and why, or accepted and logged once as not
//! needed. Our own flags and `RATELIMITER_*` variables win over the Go names.
//!
//! `ratelimiter` with no arguments serves, as the Go binary (which takes none) does.

mod env;
mod redis;
mod service;
pub mod table;
mod telemetry;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use super::{Cli, Command, ServeSettings};
use env::GoEnv;
pub use env::GoNameError;
use table::{GO_VARIABLES, Treatment};

impl Cli {
    /// Parses `args` and the environment read through `env`; for `serve`, the Go service's
    /// variable names (this module) fill what our own flags and variables left unset. No
    /// arguments at all means `serve`.
    pub fn parse_with_go_names<T: Into<std::ffi::OsString> + Clone>(
        args: impl IntoIterator<Item = T>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Cli, clap::Error> {
        let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        if args.len() <= 1 {
            args.push("serve".into());
        }
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
            settings.go_report = apply(settings, &given, env).map_err(|error| {
                clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    format!("{error}\n"),
                )
            })?;
        }
        Ok(cli)
    }
}

/// Which Go variables were set, and what became of them; logged once at startup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoReport {
    /// Read with the Go meaning.
    pub read: Vec<&'static str>,
    /// Accepted, not needed here: (name, why).
    pub not_needed: Vec<(&'static str, &'static str)>,
    /// Honoured variables that the other settings made moot (as they would in the Go service),
    /// or that our own flag overrode.
    pub no_effect: Vec<&'static str>,
}

impl GoReport {
    pub fn log(&self) {
        if !self.read.is_empty() {
            tracing::info!(variables = %self.read.join(" "), "read the Go service's environment variables");
        }
        for (name, why) in &self.not_needed {
            tracing::info!("{name} is set: not needed here ({why})");
        }
        if !self.no_effect.is_empty() {
            tracing::warn!(
                variables = %self.no_effect.join(" "),
                "these Go service variables are set but have no effect: a flag or RATELIMITER_* variable overrides them, or they only matter with another variable (as in the Go service)"
            );
        }
    }
}

/// Reads the Go variables through `env` into `settings`; `given(id)` tells whether our own flag
/// or variable for the setting with that clap id was given.
pub fn apply(
    settings: &mut ServeSettings,
    given: &dyn Fn(&str) -> bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GoReport, GoNameError> {
    let go = GoEnv::new(env);
    service::listeners(settings, given, &go)?;
    service::logs(settings, given, &go)?;
    service::config(settings, given, &go)?;
    service::answers(settings, given, &go)?;
    redis::store(settings, given, &go)?;
    telemetry::grpc_tls(settings, given, &go)?;
    telemetry::tracing(settings, given, &go)?;
    telemetry::statsd(settings, given, &go)?;
    telemetry::prometheus(settings, given, &go)?;
    let honoured = go.read();
    let mut report = GoReport::default();
    for variable in GO_VARIABLES.iter().filter(|v| go.is_set(v.name)) {
        variable.check(&go)?;
        match variable.treatment {
            Treatment::NotNeeded(why) => report.not_needed.push((variable.name, why)),
            Treatment::Honoured if honoured.contains(variable.name) => {
                report.read.push(variable.name);
            }
            Treatment::Honoured => report.no_effect.push(variable.name),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod docs_table;
#[cfg(test)]
mod tests;
