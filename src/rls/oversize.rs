//! The status of an over-long request message. tonic answers it with `OUT_OF_RANGE`; the gRPC
//! status-code guide (and grpc-go, which Envoy's other services use) says `RESOURCE_EXHAUSTED`,
//! so that one answer is rewritten, recognised by tonic's message text. Nothing is allocated
//! per call, and only answers that carry their status in the headers (errors) are looked at.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;

/// The start of tonic's `grpc-message` header for a request message over the decoding limit
/// (percent-encoded, as the header carries it).
const OVERSIZE_MESSAGE: &str = "Error,%20decoded%20message%20length%20too%20large";

/// Named once: looking a header up by a `&str` parses the name on every call.
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The service `S`, its over-long request messages answered `RESOURCE_EXHAUSTED`.
#[derive(Clone)]
pub struct OversizeIsResourceExhausted<S>(pub(super) S);

impl<S: NamedService> NamedService for OversizeIsResourceExhausted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for OversizeIsResourceExhausted<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Answer(self.0.call(request))
    }
}

/// A call's answer, its status rewritten when it is tonic's answer to an over-long message.
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
