//! The `ratelimiter` binary: parse the command line, set up logging, run until SIGTERM/SIGINT.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;

use ratelimiter::clock::SystemClock;
use ratelimiter::config;
use ratelimiter::server::{self, Listeners, Telemetry};
use ratelimiter::settings::{Cli, Command, LogFormat, ServeSettings};

fn main() -> ExitCode {
    let cli = Cli::parse_with_go_names(std::env::args_os(), &|name| std::env::var(name).ok())
        .unwrap_or_else(|error| error.exit());
    match cli.command {
        Command::Validate { path } => validate(&path),
        Command::Serve(settings) => serve(*settings),
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(_) => {
            println!("all rate limit configs ok");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in errors {
                eprintln!("{error}");
            }
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: ServeSettings) -> ExitCode {
    if let Err(message) = init_tracing(&settings) {
        eprintln!("ratelimiter: {message}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ratelimiter: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let grpc = tokio::net::TcpListener::bind(settings.grpc_addr)
            .await
            .map_err(|error| {
                format!("cannot listen for gRPC on {}: {error}", settings.grpc_addr)
            })?;
        let http = tokio::net::TcpListener::bind(settings.http_addr)
            .await
            .map_err(|error| {
                format!("cannot listen for HTTP on {}: {error}", settings.http_addr)
            })?;
        let telemetry = Telemetry::new(&settings);
        server::run(
            settings,
            Listeners { grpc, http },
            telemetry,
            Arc::new(SystemClock),
            shutdown_signal(),
        )
        .await
        .map_err(|error| error.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ratelimiter: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(settings: &ServeSettings) -> Result<(), String> {
    let filter = EnvFilter::try_new(&settings.log_level)
        .map_err(|error| format!("bad --log-level {:?}: {error}", settings.log_level))?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match settings.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    Ok(())
}

/// Completes on SIGTERM (what Kubernetes and systemd send) or SIGINT (Ctrl-C). The handlers
/// are installed when this is called, not when the future is first polled, so that a signal
/// that comes while the server is still starting is not met by the default action (exit).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        tokio::select! {
            () = received(terminate) => {}
            () = received(interrupt) => {}
        }
    }
}

/// Waits for a signal; forever when its handler could not be installed.
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
