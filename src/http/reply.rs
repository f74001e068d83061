//! What every route shares: JSON and text replies, the JSON error body, the route pattern a
//! reply is counted under, and reading bodies and query strings within bounds.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use warp::http::StatusCode;
use warp::http::header::{CONTENT_TYPE, HeaderValue};
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply, Stream};

use super::error::ApiError;
use crate::inflight::{InFlight, PeerShare, Stream as Held};

/// The route pattern a response is counted under in `ratelimiter_http_requests_total`, carried
/// in the response's extensions from the route to the instrumentation around all of them.
#[derive(Clone, Copy, Debug)]
pub struct Route(pub &'static str);

/// A JSON reply.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => typed(status, bytes, "application/json"),
        Err(error) => {
            // Only maps with non-string keys fail to serialize, and no reply has one.
            tracing::error!(%error, "cannot serialize a reply");
            typed(
                StatusCode::INTERNAL_SERVER_ERROR,
                Vec::new(),
                "application/json",
            )
        }
    }
}

/// A plain-text reply.
pub fn text(status: StatusCode, body: String) -> Response {
    typed(status, body.into_bytes(), "text/plain; charset=utf-8")
}

pub fn typed(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// `{"error": "...", "field": "..."}` with the error's status.
pub fn error(error: &ApiError) -> Response {
    let mut response = json(
        error.status(),
        &ErrorBody {
            error: error.message(),
            field: error.field(),
        },
    );
    if matches!(error, ApiError::Unauthorized) {
        response.headers_mut().insert(
            warp::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// How long a request body may take to arrive, so that a client sending it slowly cannot hold
/// a connection slot forever.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The request body, read up to `max` bytes (whatever the Content-Length says, and for chunked
/// bodies too) within [`BODY_READ_TIMEOUT`]; a longer body is refused without being read further.
/// Its bytes count in the in-flight `budget` (the client's share, which the listener tags each
/// request with) while it is read; a body over budget is refused (503).
pub fn body(
    max: usize,
    budget: Arc<InFlight>,
) -> impl Filter<Extract = (Result<Vec<u8>, ApiError>,), Error = Rejection> + Clone {
    warp::ext::optional::<Arc<PeerShare>>()
        .and(warp::body::stream())
        .then(move |peer: Option<Arc<PeerShare>>, stream| {
            let budget = budget.clone();
            async move {
                let held = budget.open(peer.unwrap_or_default(), false)?;
                tokio::time::timeout(BODY_READ_TIMEOUT, read_bounded(stream, max, &held))
                    .await
                    .unwrap_or(Err(ApiError::BodyTimeout(BODY_READ_TIMEOUT)))
            }
        })
}

async fn read_bounded<B: Buf>(
    stream: impl Stream<Item = Result<B, warp::Error>>,
    max: usize,
    held: &Held,
) -> Result<Vec<u8>, ApiError> {
    let mut stream = pin!(stream);
    let mut body = Vec::new();
    while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        let mut chunk = chunk.map_err(|error| ApiError::Malformed {
            field: None,
            message: format!("cannot read the request body: {error}"),
        })?;
        if body.len() + chunk.remaining() > max {
            return Err(ApiError::BodyTooLarge { max });
        }
        held.hold(chunk.remaining())?;
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            body.extend_from_slice(piece);
            let read = piece.len();
            chunk.advance(read);
        }
    }
    Ok(body)
}

/// A body that must be one JSON object; `example` shows what is expected.
pub fn json_object(body: &[u8], example: &str) -> Result<Map<String, Value>, ApiError> {
    let malformed = |message: String| ApiError::Malformed {
        field: None,
        message,
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed(format!(
            "the request body is empty; expected a JSON object such as {example}"
        )));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(malformed(format!(
            "expected a JSON object such as {example}"
        ))),
        Err(error) => Err(malformed(format!(
            "the request body is not valid JSON: {error}"
        ))),
    }
}

/// The raw query string, empty when there is none.
pub fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The query string's parameters, each decoded; only `known` names are accepted.
pub fn query_pairs(raw: &str, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw).map_err(|error| ApiError::Malformed {
            field: None,
            message: format!("cannot read the query string: {error}"),
        })?;
    if let Some((name, _)) = pairs
        .iter()
        .find(|(name, _)| !known.contains(&name.as_str()))
    {
        return Err(ApiError::malformed(
            name.clone(),
            format!(
                "unknown query parameter {name:?}; known: {}",
                known.join(", ")
            ),
        ));
    }
    Ok(pairs)
}
