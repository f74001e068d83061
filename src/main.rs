//! The `ratelimiter` binary: parse the command line, set up logging, run until SIGTERM/SIGINT;
//! SIGHUP reloads the config, SIGUSR1 and SIGUSR2 are logged and ignored. Freed memory goes
//! back to the system every few seconds, so that RSS falls back after a burst of work.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use ratelimiter::clock::SystemClock;
use ratelimiter::config::{self, ReloadRequests};
use ratelimiter::logs::RepeatFilter;
use ratelimiter::server::{self, Listeners, Telemetry};
use ratelimiter::settings::{Cli, Command, ConfigLayout, LogFormat, ServeSettings};

fn main() -> ExitCode {
    let cli = Cli::parse_with_go_names(std::env::args_os(), &|name| std::env::var(name).ok())
        .unwrap_or_else(|error| error.exit());
    match cli.command {
        Command::Validate { path, layout } => validate(&path, &layout),
        Command::Serve(settings) => serve(*settings),
    }
}

fn validate(path: &std::path::Path, layout: &ConfigLayout) -> ExitCode {
    match config::load(path, server::options::layout_of(layout)) {
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
    settings.go_report.log();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    release_freed_memory_periodically();
    let result = runtime.block_on(async {
        let telemetry = Telemetry::new(&settings);
        let shutdown = shutdown_signal();
        tokio::spawn(other_signals(telemetry.reloads.clone()));
        let grpc = tokio::net::TcpListener::bind(settings.grpc_addr)
            .await
            .map_err(|error| {
                format!("cannot listen for gRPC on {}: {error}", settings.grpc_addr)
            })?;
        let grpc_uds = settings
            .grpc_uds
            .as_deref()
            .map(|path| {
                server::unix_socket::bind(path).map_err(|error| {
                    format!("cannot listen for gRPC on {}: {error}", path.display())
                })
            })
            .transpose()?;
        let http = tokio::net::TcpListener::bind(settings.http_addr)
            .await
            .map_err(|error| {
                format!("cannot listen for HTTP on {}: {error}", settings.http_addr)
            })?;
        let prometheus = bind_side(settings.prometheus.prometheus_addr, "the metrics").await?;
        let debug = bind_side(settings.debug_addr, "the debug endpoints").await?;
        server::run(
            settings,
            Listeners {
                grpc,
                grpc_uds,
                http,
                prometheus,
                debug,
            },
            telemetry,
            Arc::new(SystemClock),
            shutdown,
        )
        .await
        .map_err(|error| error.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Through the log, so that it comes as JSON with --log-format json.
            tracing::error!("cannot serve: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A side listener's socket, when its address is given.
async fn bind_side(
    address: Option<std::net::SocketAddr>,
    what: &str,
) -> Result<Option<tokio::net::TcpListener>, String> {
    let Some(address) = address else {
        return Ok(None);
    };
    tokio::net::TcpListener::bind(address)
        .await
        .map(Some)
        .map_err(|error| format!("cannot listen for {what} on {address}: {error}"))
}

fn init_tracing(settings: &ServeSettings) -> Result<(), String> {
    let filter = EnvFilter::try_new(&settings.log_level)
        .map_err(|error| format!("bad --log-level {:?}: {error}", settings.log_level))?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match settings.log_format {
        LogFormat::Text => logs.finish().with(RepeatFilter::default()).init(),
        LogFormat::Json => logs.json().finish().with(RepeatFilter::default()).init(),
    }
    Ok(())
}

/// Completes on SIGTERM (what Kubernetes and systemd send) or SIGINT (Ctrl-C), and logs which.
/// The handlers are installed when this is called, not when the future is first polled, so
/// that a signal that comes while the server is still starting is not met by the default
/// action (exit).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let mut terminate = signal(SignalKind::terminate()).ok();
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        let name = tokio::select! {
            () = received(&mut terminate) => "SIGTERM",
            () = received(&mut interrupt) => "SIGINT",
        };
        tracing::info!(signal = name, "received {name}: shutting down");
    }
}

/// SIGHUP asks for a config reload; SIGUSR1 and SIGUSR2, whose default action would end the
/// process at once, are logged. Installed when called, like [`shutdown_signal`].
fn other_signals(reloads: ReloadRequests) -> impl std::future::Future<Output = ()> {
    let mut hangup = signal(SignalKind::hangup()).ok();
    let mut user1 = signal(SignalKind::user_defined1()).ok();
    let mut user2 = signal(SignalKind::user_defined2()).ok();
    async move {
        loop {
            tokio::select! {
                () = received(&mut hangup) => {
                    tracing::info!("received SIGHUP: reloading the config");
                    reloads.request();
                }
                () = received(&mut user1) => tracing::info!("received SIGUSR1: ignored"),
                () = received(&mut user2) => tracing::info!("received SIGUSR2: ignored"),
            }
        }
    }
}

/// Waits for a signal; forever when its handler could not be installed.
async fn received(signal: &mut Option<Signal>) {
    let received = match signal {
        Some(signal) => signal.recv().await.is_some(),
        None => false,
    };
    if !received {
        std::future::pending::<()>().await;
    }
}

/// How often the memory release thread looks at the process.
const RELEASE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// CPU the process may have used over the last check and still count as quiet: 10% of a core.
const QUIET_CPU_TICKS: u64 = 10;

/// RSS above the lowest seen after a release worth releasing for.
const RELEASE_ABOVE_BYTES: u64 = 16 << 20;

/// The shortest time between two releases, so that a process busy by fits (and holding memory it
/// still uses, such as counters) is not walked every other second.
const RELEASE_AT_MOST_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// glibc keeps memory freed in its arenas for reuse, so RSS stays at its peak after a burst of
/// connections or calls; `malloc_trim` hands the free pages back. It holds each arena's lock
/// while it walks it, which would stall requests in the middle of a burst, so it runs once the
/// process is quiet again after being busy, when RSS is well above the lowest it fell to after a
/// release. (Measured against that low mark, not the last release: a release in a lull of a
/// burst, while the burst still holds its memory, must not raise the bar for the one after it.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_freed_memory_periodically() {
    let started = std::thread::Builder::new()
        .name("release-memory".into())
        .spawn(|| {
            let mut lowest = rss_bytes();
            let mut cpu = cpu_ticks();
            let mut busy_since_release = false;
            let mut released = std::time::Instant::now();
            loop {
                std::thread::sleep(RELEASE_CHECK);
                let (now, before) = (cpu_ticks(), cpu);
                cpu = now;
                if now.saturating_sub(before) > QUIET_CPU_TICKS {
                    busy_since_release = true;
                    continue;
                }
                if busy_since_release
                    && released.elapsed() >= RELEASE_AT_MOST_EVERY
                    && rss_bytes() > lowest + RELEASE_ABOVE_BYTES
                {
                    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks; it
                    // takes no pointer from us and may be called from any thread at any time.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                    busy_since_release = false;
                    released = std::time::Instant::now();
                    lowest = lowest.min(rss_bytes());
                }
            }
        });
    if let Err(error) = started {
        eprintln!("ratelimiter: cannot start the memory release thread: {error}");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory_periodically() {}

/// This process's resident memory, from `/proc/self/statm` (0 when unreadable).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * 4096
}

/// This process's CPU time so far (user and system), in clock ticks, from `/proc/self/stat`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and
    // 13th.
    let fields = stat.rsplit_once(')').map_or("", |(_, fields)| fields);
    fields
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum()
}
