//! What TLS and tracing cost per call: the service on the memory store driven by the same tonic
//! client, plain, over TLS, over mutual TLS, with tracing on but nothing sampled, and with every
//! call traced and exported to an OTLP receiver in this process; each row next to the plain
//! one measured in the same run, with the server's CPU time per call read from /proc.
//!
//! `cargo bench --bench secure`. Without `--bench` (as `cargo test --all-targets` runs it) every
//! row runs briefly, as a smoke test. The tonic client costs about as much per call as the
//! server, so throughput ratios understate the server's own differences; CPU per call does not.

#[allow(dead_code)]
#[path = "support/load.rs"]
mod load;
#[path = "support/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_harness;
#[allow(dead_code)]
#[path = "../tests/common/tls.rs"]
mod tls_harness;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use load::Load;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use process::Server;
use tls_harness::Certificates;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Rounds of the table in a measuring run; each row reports its median.
const ROUNDS: usize = 3;

/// Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let load = Load::for_run(full);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(load, if full { ROUNDS } else { 1 }));
}

/// A row: how the server runs, and how the client connects.
struct Variant {
    name: &'static str,
    flags: Vec<String>,
    tls: Option<Option<&'static str>>,
}

async fn run(load: Load, rounds: usize) {
    let config = tempfile::tempdir().expect("a temp dir");
    std::fs::write(config.path().join("bench.yaml"), load::LIMITS).expect("limits written");
    let certs = Certificates::create();
    let receiver = otlp_sink().await;
    let file = |name: &str| certs.file(name).to_str().expect("UTF-8").to_string();
    let tls = vec![
        "--grpc-tls-cert".to_string(),
        file("server.crt"),
        "--grpc-tls-key".into(),
        file("server.key"),
    ];
    let mut mutual = tls.clone();
    mutual.extend(["--grpc-tls-client-ca".into(), file("ca.crt")]);
    let tracing = |ratio: &str| {
        [
            "--tracing",
            "--tracing-protocol",
            "grpc",
            "--tracing-endpoint",
            &format!("http://{receiver}"),
            "--tracing-sample-ratio",
            ratio,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let variants = [
        Variant {
            name: "plain gRPC",
            flags: Vec::new(),
            tls: None,
        },
        Variant {
            name: "TLS",
            flags: tls,
            tls: Some(None),
        },
        Variant {
            name: "mutual TLS",
            flags: mutual,
            tls: Some(Some("client")),
        },
        Variant {
            name: "tracing on, no call sampled",
            flags: tracing("0"),
            tls: None,
        },
        Variant {
            name: "tracing on, every call exported",
            flags: tracing("1"),
            tls: None,
        },
    ];
    println!(
        "load: {} connections, {} calls in flight, memory store, 1 descriptor, {:?} per row, {rounds} round(s)\n",
        load.connections, load.in_flight, load.duration
    );
    let mut samples: Vec<Vec<(f64, u64, f64)>> = vec![Vec::new(); variants.len()];
    let mut rss = vec![0u64; variants.len()];
    for round in 1..=rounds {
        println!("round {round} of {rounds}");
        for (index, variant) in variants.iter().enumerate() {
            let mut args = vec!["--config", config.path().to_str().expect("UTF-8")];
            args.extend(variant.flags.iter().map(String::as_str));
            let server = Server::ratelimiter(&args);
            let clients = clients(&server, &certs, variant.tls, load.connections).await;
            let before = server.cpu_ticks();
            let measured = load::grpc_over(clients, 1, load).await;
            // The ticks cover the warm-up too: spread them over the calls of the whole run,
            // estimated from the measured rate.
            let all_calls = measured.calls as f64
                * (1.0 + load.warmup.as_secs_f64() / load.duration.as_secs_f64());
            let cpu_micros =
                (server.cpu_ticks() - before) as f64 / TICKS_PER_SECOND * 1e6 / all_calls;
            assert_eq!(measured.errors, 0, "{}: calls failed", variant.name);
            println!(
                "  {}: {:.0}/s, p99 {} µs, server CPU {cpu_micros:.1} µs/call",
                variant.name,
                measured.per_second(),
                measured.micros(0.99)
            );
            samples[index].push((measured.per_second(), measured.micros(0.99), cpu_micros));
            rss[index] = rss[index].max(server.rss_kib());
        }
    }
    let median = |values: &[(f64, u64, f64)], pick: fn(&(f64, u64, f64)) -> f64| {
        let mut picked: Vec<f64> = values.iter().map(pick).collect();
        picked.sort_by(f64::total_cmp);
        picked[picked.len() / 2]
    };
    let base = (median(&samples[0], |s| s.0), median(&samples[0], |s| s.2));
    println!(
        "\n| row | requests/s | p99 µs | server CPU µs/call | RSS MiB | requests/s vs plain | CPU/call vs plain |"
    );
    println!("|---|---|---|---|---|---|---|");
    for ((variant, values), rss) in variants.iter().zip(&samples).zip(&rss) {
        let (rate, p99, cpu) = (
            median(values, |s| s.0),
            median(values, |s| s.1 as f64),
            median(values, |s| s.2),
        );
        println!(
            "| {} | {rate:.0} | {p99:.0} | {cpu:.1} | {:.1} | {:.0}% | {:.2}x |",
            variant.name,
            *rss as f64 / 1024.0,
            100.0 * rate / base.0,
            cpu / base.1
        );
    }
}

/// `count` clients on connections of their own, over TLS (presenting `identity`) when asked.
async fn clients(
    server: &Server,
    certs: &Certificates,
    tls: Option<Option<&str>>,
    count: usize,
) -> Vec<RateLimitServiceClient<Channel>> {
    let mut clients = Vec::new();
    for _ in 0..count {
        let channel = match tls {
            None => Channel::from_shared(format!("http://{}", server.grpc)),
            Some(_) => Channel::from_shared(format!("https://{}", server.grpc)),
        }
        .expect("a URL");
        let channel = match tls {
            None => channel,
            Some(identity) => {
                let read = |name: &str| std::fs::read(certs.file(name)).expect("a certificate");
                let mut config = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read("ca.crt")))
                    .domain_name("localhost");
                if let Some(name) = identity {
                    config = config.identity(Identity::from_pem(
                        read(&format!("{name}.crt")),
                        read(&format!("{name}.key")),
                    ));
                }
                channel.tls_config(config).expect("a TLS config")
            }
        };
        clients.push(RateLimitServiceClient::new(
            channel.connect().await.expect("connected"),
        ));
    }
    clients
}

/// An OTLP/gRPC receiver that drops what it is sent, on a free loopback port.
async fn otlp_sink() -> std::net::SocketAddr {
    struct Sink;
    #[tonic::async_trait]
    impl TraceService for Sink {
        async fn export(
            &self,
            _: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Sink))
            .serve_with_incoming(incoming),
    );
    addr
}
