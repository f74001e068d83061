//! OpenTelemetry tracing, off by default: a server span per ShouldRateLimit call that continues
//! the caller's trace (W3C `traceparent`, else B3), a child span for the counter store call,
//! sampled by ratio (a caller's decision wins), exported over OTLP/gRPC or OTLP/HTTP by a
//! batch processor on the runtime. When off, no [`Tracer`] exists and callers skip every step.

mod b3;

use std::time::Duration;

use crate::secret::without_password;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

pub use opentelemetry::KeyValue;
pub use opentelemetry::propagation::Extractor;
pub use opentelemetry::trace::FutureExt;

/// Name of the server span, as gRPC instrumentation names it (the Go service's too).
const SERVER_SPAN: &str = "envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// How long shutdown waits for the last spans to be sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

#[derive(Clone, Debug)]
pub struct TracingOptions {
    /// `None`: `OTEL_EXPORTER_OTLP_PROTOCOL`, else gRPC.
    pub transport: Option<Transport>,
    /// `None`: the `OTEL_EXPORTER_OTLP_*ENDPOINT` variables, else the OTLP default.
    pub endpoint: Option<String>,
    pub sample_ratio: f64,
    /// `None`: `OTEL_SERVICE_NAME`, else `ratelimiter`.
    pub service_name: Option<String>,
    /// Resource attributes beyond `OTEL_RESOURCE_ATTRIBUTES` (they win over it).
    pub resource: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot export traces: {0}")]
pub struct TraceError(#[from] opentelemetry_otlp::ExporterBuildError);

/// The exporting pipeline; [`Tracing::shutdown`] sends what is left.
pub struct Tracing {
    provider: SdkTracerProvider,
    pub tracer: Tracer,
}

impl Tracing {
    /// Builds the exporter and the pipeline; must run on the Tokio runtime.
    pub fn start(options: &TracingOptions) -> Result<Tracing, TraceError> {
        let transport = options.transport.unwrap_or_else(transport_from_env);
        let exporter = match transport {
            Transport::Grpc => {
                let builder = SpanExporter::builder().with_tonic();
                match &options.endpoint {
                    Some(endpoint) => builder.with_endpoint(endpoint).build()?,
                    None => builder.build()?,
                }
            }
            Transport::Http => {
                let builder = SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary);
                match &options.endpoint {
                    Some(endpoint) => builder.with_endpoint(endpoint).build()?,
                    None => builder.build()?,
                }
            }
        };
        let service_name = options
            .service_name
            .clone()
            .or_else(|| std::env::var("OTEL_SERVICE_NAME").ok())
            .unwrap_or_else(|| "ratelimiter".into());
        let resource = Resource::builder()
            .with_service_name(service_name)
            .with_attributes(
                options
                    .resource
                    .iter()
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build())
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                options.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = Tracer {
            inner: provider.tracer("ratelimiter"),
        };
        tracing::info!(
            ?transport,
            endpoint = ?options.endpoint.as_deref().map(without_password),
            "exporting traces over OTLP"
        );
        Ok(Tracing { provider, tracer })
    }

    /// Sends the spans still queued, waiting at most a few seconds.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            tracing::warn!(%error, "the last spans could not be sent");
        }
    }
}

fn transport_from_env() -> Transport {
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    match protocol.as_deref() {
        Ok(protocol) if protocol.starts_with("http") => Transport::Http,
        _ => Transport::Grpc,
    }
}

/// Starts spans; cheap to clone.
#[derive(Clone, Debug)]
pub struct Tracer {
    inner: SdkTracer,
}

impl Tracer {
    /// The context of a new server span for a ShouldRateLimit call, child of the caller's span
    /// named in `headers`.
    pub fn server_span(
        &self,
        headers: &dyn Extractor,
        domain: &str,
        descriptors: usize,
    ) -> Context {
        let parent = caller(headers);
        let span = self
            .inner
            .span_builder(SERVER_SPAN)
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", "envoy.service.ratelimit.v3.RateLimitService"),
                KeyValue::new("rpc.method", "ShouldRateLimit"),
                KeyValue::new("ratelimit.domain", domain.to_string()),
                KeyValue::new("ratelimit.descriptor_count", descriptors as i64),
            ])
            .start_with_context(&self.inner, &parent);
        parent.with_span(span)
    }

    /// The context of a span for one counter-store call, child of the current context's span
    /// (the server span, when the call runs inside it); `None` when that span is not recorded
    /// (not sampled, or a call from outside any span such as `/json`).
    pub fn store_span(&self, store: &'static str, operations: usize) -> Option<Context> {
        let parent = Context::current();
        if !is_recording(&parent) {
            return None;
        }
        let span = self
            .inner
            .span_builder("ratelimit.store")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("ratelimit.store", store),
                KeyValue::new("ratelimit.operations", operations as i64),
            ])
            .start_with_context(&self.inner, &parent);
        Some(parent.with_span(span))
    }
}

/// Whether the span of `context` is recorded (sampled): an unrecorded one needs no attributes,
/// no children and no end.
pub fn is_recording(context: &Context) -> bool {
    context.span().is_recording()
}

/// Ends the span of `context` with `attributes` and, for a failure, an error status.
pub fn end(context: &Context, attributes: Vec<KeyValue>, error: Option<String>) {
    let span = context.span();
    span.set_attributes(attributes);
    if let Some(message) = error {
        span.set_status(Status::error(message));
    }
    span.end();
}

/// The caller's span: from `traceparent` when it has a valid one, else from B3 headers.
fn caller(headers: &dyn Extractor) -> Context {
    let w3c = TraceContextPropagator::new().extract(headers);
    if w3c.span().span_context().is_valid() {
        return w3c;
    }
    match b3::extract(headers) {
        Some(span) => Context::new().with_remote_span_context(span),
        None => Context::new(),
    }
}
