//! Every gRPC call holds a place in the in-flight budget for as long as its response lasts, and
//! is answered RESOURCE_EXHAUSTED at once when the budget is spent. Its request body must end
//! within [`BODY_TIMEOUT`] of the first time it was waited for, right after its headers (a
//! half-open call is ended, DEADLINE_EXCEEDED), its bytes count against the budget, and a health
//! watch ends after [`WATCH_LIFETIME`].
//!
//! This is the only timer on a call, and it is armed only for a body that is late: a call's
//! body nearly always arrives with its headers. Once read, a check waits on its store alone,
//! which answers by the caller's deadline (`rls::deadline`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{Bytes, Service, http};
use tonic::server::NamedService;

use super::incoming::Peer;
use crate::admission::deadlines::OpenStream;
use crate::inflight::{InFlight, PeerShare, Stream};
use crate::store::BoxFuture;
use crate::throttled;

/// From the first wait for a call's request body (right after its headers) to its end. Envoy
/// sends a check's headers and its message together, so this only ever cuts off clients that
/// stall.
const BODY_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one health watch may last before the server ends it (UNAVAILABLE; the client
/// watches again), so that watches cannot pile up forever.
const WATCH_LIFETIME: Duration = Duration::from_secs(30 * 60);

const WATCH_PATH: &str = "/grpc.health.v1.Health/Watch";

/// A gRPC service whose calls are bounded by the in-flight budget.
#[derive(Clone)]
pub struct Bounded<S> {
    inner: S,
    budget: Arc<InFlight>,
    /// The share of calls that come without a peer (none does on an admitted connection).
    unknown_peer: Arc<PeerShare>,
}

impl<S> Bounded<S> {
    pub fn new(inner: S, budget: Arc<InFlight>) -> Bounded<S> {
        Bounded {
            inner,
            budget,
            unknown_peer: Arc::default(),
        }
    }
}

impl<S: NamedService> NamedService for Bounded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Bounded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let peer = request.extensions().get::<Peer>().cloned();
        let share = peer
            .as_ref()
            .map_or_else(|| self.unknown_peer.clone(), |peer| peer.share.clone());
        let watch = request.uri().path() == WATCH_PATH;
        let stream = match self.budget.open(share, watch) {
            Ok(stream) => Arc::new(stream),
            Err(over) => {
                throttled!(WARN, peer = ?peer.and_then(|peer| peer.remote), "refused a gRPC call: {over}");
                let refused = Status::resource_exhausted(over.to_string()).into_http();
                return Box::pin(std::future::ready(Ok(refused)));
            }
        };
        let open = peer.map(|peer| peer.activity.stream());
        let request = request.map(|body| {
            Body::new(RequestBody {
                inner: body,
                stream: stream.clone(),
                due: Due::Unarmed,
            })
        });
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(ResponseBody {
                    inner: body,
                    _held: (stream, open),
                    lifetime: watch.then(|| Box::pin(tokio::time::sleep(WATCH_LIFETIME))),
                    ended: false,
                })
            }))
        })
    }
}

/// A call's request body: its bytes held in the budget, its end due by a deadline.
struct RequestBody {
    inner: Body,
    stream: Arc<Stream>,
    due: Due,
}

/// Where a request body stands against [`BODY_TIMEOUT`].
enum Due {
    /// Never waited for yet: no timer (most bodies come whole with their headers).
    Unarmed,
    /// Waited for: due by this timer.
    Armed(Pin<Box<Sleep>>),
    /// Ended, or cut off: nothing more is due.
    Settled,
}

impl Due {
    /// Whether the body is late, arming the timer the first time it is waited for.
    fn passed(&mut self, cx: &mut Context<'_>) -> bool {
        if let Due::Unarmed = self {
            *self = Due::Armed(Box::pin(tokio::time::sleep(BODY_TIMEOUT)));
        }
        let Due::Armed(timer) = self else {
            return false;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        *self = Due::Settled;
        true
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let bytes = frame.data_ref().map_or(0, Bytes::len);
                if let Err(over) = this.stream.hold(bytes) {
                    throttled!(WARN, "refused a gRPC request body: {over}");
                    return Poll::Ready(Some(Err(Status::resource_exhausted(over.to_string()))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.due = Due::Settled;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !this.due.passed(cx) {
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                    "the request body did not arrive within {BODY_TIMEOUT:?}"
                )))))
            }
            failed => failed,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A call's response body: holds the call's place in the budget until it ends; a watch's
/// ends with UNAVAILABLE at the end of its lifetime.
struct ResponseBody {
    inner: Body,
    _held: (Arc<Stream>, Option<OpenStream>),
    lifetime: Option<Pin<Box<Sleep>>>,
    ended: bool,
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(lifetime) = &mut this.lifetime
            && lifetime.as_mut().poll(cx).is_ready()
        {
            this.ended = true;
            let mut trailers = http::HeaderMap::new();
            let status = Status::unavailable("the watch reached its lifetime; watch again");
            if status.add_header(&mut trailers).is_ok() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            return Poll::Ready(None);
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
