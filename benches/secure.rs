//! What TLS and tracing cost per call: the service on the memory store driven by the raw HTTP/2
//! load generator (`support/rls_raw.rs`, hand-rolled HTTP/2, over rustls for the TLS rows), plain, over TLS, over
//! mutual TLS, with tracing on but nothing sampled, and with every call traced and exported to
//! an OTLP receiver in this process; each row next to the plain one measured in the same run,
//! with the server's and the generator's CPU time per call read from /proc.
//!
//! `cargo bench --bench secure`. Without `--bench` (as `cargo test --all-targets` runs it) every
//! row runs briefly, as a smoke test.

#[path = "support/hpack.rs"]
mod hpack;
#[path = "support/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[path = "support/procfs.rs"]
mod procfs;
#[allow(dead_code)]
#[path = "support/rls_raw.rs"]
mod rls_raw;
#[path = "support/table.rs"]
mod table;
#[allow(dead_code)]
#[path = "../tests/common/tls.rs"]
mod tls_harness;

use std::sync::Arc;

use load::{Load, Watch};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use process::Node;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use table::Table;
use tls_harness::Certificates;
use tokio_rustls::TlsConnector;

/// Rounds of the table in a measuring run; each row reports its median.
const ROUNDS: usize = 3;

const PLAIN: &str = "plain gRPC, 1 descriptor";

/// A row: the server's extra flags, and how the generator connects.
struct Variant {
    name: &'static str,
    flags: Vec<String>,
    tls: Tls,
}

#[derive(Clone, Copy)]
enum Tls {
    Off,
    Server,
    Mutual,
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let load = Load {
        pace: rls_raw::PACE,
        ..Load::for_run(full)
    };
    let rounds = if full { ROUNDS } else { 1 };
    println!(
        "load: one generator thread (sleeping {:?} between looks at its sockets), {} connections, {} calls in flight, memory store, 1 descriptor, {:?} per row, {rounds} round(s)\n",
        load.pace, load.connections, load.in_flight, load.duration
    );
    let config = tempfile::tempdir().expect("a temp dir");
    std::fs::write(config.path().join("bench.yaml"), rls_raw::LIMITS).expect("limits written");
    let certs = Certificates::create();
    let sink = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let receiver = sink.block_on(otlp_sink());
    let variants = variants(&certs, &receiver.to_string());
    let mut table = Table::default();
    for round in 1..=rounds {
        println!("round {round} of {rounds}");
        for variant in &variants {
            let mut args = vec!["--config", config.path().to_str().expect("UTF-8")];
            args.extend(variant.flags.iter().map(String::as_str));
            let server = Node::start(&args);
            let watch = Watch {
                server: Some(server.pid()),
                redis: Vec::new(),
            };
            let address = server.grpc_addr.to_string();
            let tls = connector(&certs, variant.tls);
            let measured = load::generate(load, watch, move || async move {
                rls_raw::workers_over(&address, 1, load, tls).await
            });
            let versus = (variant.name != PLAIN).then_some(PLAIN);
            table.add(variant.name, versus, &measured);
            println!(
                "    RSS {:.1} MiB",
                procfs::rss_kib(server.pid()) as f64 / 1024.0
            );
        }
    }
    table.print();
    if let Some((generator, server)) = table.generator_share() {
        println!(
            "\nthe load generator's own CPU per call: {generator:.1} µs, {:.0}% of the server's {server:.1} µs (medians over the rows)",
            100.0 * generator / server
        );
    }
}

fn variants(certs: &Certificates, receiver: &str) -> Vec<Variant> {
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
    vec![
        Variant {
            name: PLAIN,
            flags: Vec::new(),
            tls: Tls::Off,
        },
        Variant {
            name: "TLS",
            flags: tls,
            tls: Tls::Server,
        },
        Variant {
            name: "mutual TLS",
            flags: mutual,
            tls: Tls::Mutual,
        },
        Variant {
            name: "tracing on, no call sampled",
            flags: tracing("0"),
            tls: Tls::Off,
        },
        Variant {
            name: "tracing on, every call exported",
            flags: tracing("1"),
            tls: Tls::Off,
        },
    ]
}

/// The generator's rustls client: trusting the test CA, presenting the client certificate for
/// mutual TLS, offering `h2`.
fn connector(certs: &Certificates, tls: Tls) -> Option<TlsConnector> {
    if matches!(tls, Tls::Off) {
        return None;
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs.file("ca.crt")).expect("the CA") {
        roots.add(cert.expect("a certificate")).expect("a CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let mut config = match tls {
        Tls::Mutual => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(certs.file("client.crt"))
                    .expect("the client certificate")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("a chain"),
                PrivateKeyDer::from_pem_file(certs.file("client.key")).expect("the client key"),
            )
            .expect("a client identity"),
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Some(TlsConnector::from(Arc::new(config)))
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
