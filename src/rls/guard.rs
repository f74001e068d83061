//! What wraps every gRPC call of the rate-limit service before tonic decodes it, at no cost to a
//! call that behaves: a bound on how long its request body may take, and the status of an
//! over-long request message.
//!
//! The body bound replaces a timer around the whole call: a call's body nearly always arrives
//! with its headers, so its timer is only armed when the body is not there at the first look.
//! A client that sends a call's headers and never its body is answered `DEADLINE_EXCEEDED`
//! within [`BODY_TIMEOUT`]. Once the body is in, the call is bounded by its store: memory
//! answers at once, Redis within the caller's deadline or `--redis-timeout`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::Sleep;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;

/// How long a call's request body may take to arrive, from the first time it was not there:
/// long enough for any client that means to send it, short enough that stalled calls cannot
/// pile up.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// The start of tonic's `grpc-message` header for a request message over the decoding limit
/// (percent-encoded, as the header carries it).
const OVERSIZE_MESSAGE: &str = "Error,%20decoded%20message%20length%20too%20large";

/// Named once: looking a header up by a `&str` parses the name on every call.
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The service `S`, its calls guarded.
#[derive(Clone)]
pub struct CallGuard<S>(pub(super) S);

impl<S: NamedService> NamedService for CallGuard<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for CallGuard<S>
where
    S: Service<http::Request<BoundedBody<B>>, Response = http::Response<Body>>,
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Answer(
            self.0
                .call(request.map(|body| BoundedBody { body, timer: None })),
        )
    }
}

/// A request body that fails with `DEADLINE_EXCEEDED` when it takes longer than
/// [`BODY_TIMEOUT`] from the first time it had nothing to give.
pub struct BoundedBody<B> {
    body: B,
    /// Armed the first time the body was not ready.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> http_body::Body for BoundedBody<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(BODY_TIMEOUT)));
        ready!(timer.as_mut().poll(cx));
        let status = Status::deadline_exceeded(format!(
            "the request body did not arrive within {BODY_TIMEOUT:?}"
        ));
        Poll::Ready(Some(Err(status.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A call's answer. tonic answers an over-long request message with `OUT_OF_RANGE`; the gRPC
/// status-code guide (and grpc-go, which Envoy's other services use) says `RESOURCE_EXHAUSTED`,
/// so that one answer is rewritten, recognised by tonic's message text. Only answers that carry
/// their status in the headers (errors) are looked at.
pub struct Answer<F>(F);

impl<F, E> Future for Answer<F>
where
    F: Future<Output = Result<http::Response<Body>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = ready!(Pin::new(&mut self.0).poll(cx))?;
        let headers = response.headers_mut();
        if headers.get(&GRPC_STATUS).is_some_and(|code| code == "11") {
            let oversize = headers
                .get("grpc-message")
                .and_then(|message| message.to_str().ok())
                .is_some_and(|message| message.starts_with(OVERSIZE_MESSAGE));
            if oversize {
                headers.insert(GRPC_STATUS, http::HeaderValue::from_static("8"));
            }
        }
        Poll::Ready(Ok(response))
    }
}
