//! The router: every route, each answering with a `Response` of its own (errors as JSON
//! `{"error", "field"}`), all counted and timed by one wrapper under the route pattern, never the
//! raw path.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::header::{ALLOW, HeaderValue};
use warp::http::{HeaderMap, Method};
use warp::path::FullPath;
use warp::reply::Response;

use super::api::Api;
use super::counters::Listing;
use super::error::ApiError;
use super::reply::{self, Route};
use super::{check, counters, health, json, limits, openapi, scrape, status_page};

/// Hands every route the shared state.
type State = BoxedFilter<(Arc<Api>,)>;

/// The route label of requests no route took (unknown paths, wrong methods).
const UNMATCHED: &str = "unmatched";

/// Every route: its method and path pattern (`{key}` stands for one path segment), as the
/// OpenAPI document (`docs/openapi.json`) lists them. A known path asked with another method is
/// answered 405 with these methods in `Allow`.
pub const ROUTES: [(Method, &str); 13] = [
    (Method::GET, "/"),
    (Method::POST, "/check"),
    (Method::POST, "/json"),
    (Method::GET, "/health"),
    (Method::GET, "/healthcheck"),
    (Method::GET, "/rlconfig"),
    (Method::GET, "/metrics"),
    (Method::GET, "/api/limits"),
    (Method::GET, "/api/counters"),
    (Method::GET, "/api/blocks"),
    (Method::DELETE, "/api/counters/{key}"),
    (Method::GET, "/api/nodes"),
    (Method::GET, "/api/openapi.json"),
];

/// Every route, counted and timed.
pub fn routes(api: Arc<Api>) -> BoxedFilter<(Response,)> {
    let metrics = api.metrics.clone();
    let max_body = api.options.max_body_bytes;
    let budget = api.budget.clone();
    let state: State = warp::any().map(move || api.clone()).boxed();
    let headers = warp::header::headers_cloned;
    type Body = Result<Vec<u8>, ApiError>;

    let check = warp::path!("check")
        .and(warp::post())
        .and(state.clone())
        .and(reply::body(max_body, budget.clone()))
        .then(|api, body: Body| respond("/check", check::handle(api, body)))
        .boxed();
    let json = warp::path!("json")
        .and(warp::post())
        .and(state.clone())
        .and(reply::body(max_body, budget.clone()))
        .then(|api, body: Body| respond("/json", json::handle(api, body)))
        .boxed();
    let health = get(&state, "/health", health::health);
    let healthcheck = get(&state, "/healthcheck", health::healthcheck);
    let rlconfig = get(&state, "/rlconfig", limits::rlconfig);
    let scrape = get(&state, "/metrics", scrape::metrics);
    let limits = get_guarded(&state, "/api/limits", limits::limits);
    let listing = |route: &'static str, listing: Listing| {
        segments(route)
            .and(warp::get())
            .and(state.clone())
            .and(reply::raw_query())
            .and(headers())
            .then(move |api, query: String, headers: HeaderMap| {
                respond(route, counters::list(api, listing, query, headers))
            })
            .boxed()
    };
    let reset = warp::path!("api" / "counters" / String)
        .and(warp::delete())
        .and(state.clone())
        .and(headers())
        .then(|key: String, api, headers: HeaderMap| {
            respond("/api/counters/{key}", counters::reset(api, key, headers))
        })
        .boxed();
    let nodes = get_guarded(&state, "/api/nodes", health::nodes);
    let openapi = get(&state, "/api/openapi.json", openapi::document);
    let status_page = get(&state, "/", status_page::page);

    let routes = check
        .or(json)
        .unify()
        .or(health)
        .unify()
        .or(healthcheck)
        .unify()
        .or(rlconfig)
        .unify()
        .or(scrape)
        .unify()
        .or(limits)
        .unify()
        .or(listing("/api/counters", Listing::All))
        .unify()
        .or(listing("/api/blocks", Listing::Blocked))
        .unify()
        .or(reset)
        .unify()
        .or(nodes)
        .unify()
        .or(openapi)
        .unify()
        .or(status_page)
        .unify()
        .or(warp::method().and(warp::path::full()).map(unmatched))
        .unify();
    warp::any()
        .map(Instant::now)
        .and(routes)
        .map(move |started: Instant, response: Response| {
            let route = response
                .extensions()
                .get::<Route>()
                .map_or(UNMATCHED, |route| route.0);
            metrics.observe_http(route, response.status().as_u16(), started.elapsed());
            response
        })
        .boxed()
}

/// `GET <route>` (fixed segments), answered from the state alone.
fn get<H, F>(state: &State, route: &'static str, handler: H) -> BoxedFilter<(Response,)>
where
    H: Fn(Arc<Api>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    segments(route)
        .and(get_or_head())
        .and(state.clone())
        .then(move |api| respond(route, handler(api)))
        .boxed()
}

/// `GET <route>` (fixed segments), answered from the state and the headers (for the token).
fn get_guarded<H, F>(state: &State, route: &'static str, handler: H) -> BoxedFilter<(Response,)>
where
    H: Fn(Arc<Api>, HeaderMap) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    segments(route)
        .and(get_or_head())
        .and(state.clone())
        .and(warp::header::headers_cloned())
        .then(move |api, headers| respond(route, handler(api, headers)))
        .boxed()
}

/// `GET`, or `HEAD` (answered like `GET`, without the body: probes and `curl -I` use it).
pub(super) fn get_or_head() -> BoxedFilter<()> {
    warp::get().or(warp::head()).unify().boxed()
}

/// Matches exactly the path `route` (`/api/limits`, or `/`).
fn segments(route: &'static str) -> BoxedFilter<()> {
    route
        .split('/')
        .filter(|segment| !segment.is_empty())
        .fold(warp::any().boxed(), |filter, segment| {
            filter.and(warp::path(segment)).boxed()
        })
        .and(warp::path::end())
        .boxed()
}

/// A route's answer, or its error as JSON, labelled with the route pattern.
pub(super) async fn respond(
    route: &'static str,
    answer: impl Future<Output = Result<Response, ApiError>>,
) -> Response {
    let mut response = answer.await.unwrap_or_else(|error| reply::error(&error));
    response.extensions_mut().insert(Route(route));
    response
}

/// What no route took: a known path with another method (405, with `Allow`) or an unknown
/// path (404).
fn unmatched(method: Method, path: FullPath) -> Response {
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, pattern)| path_matches(pattern, path.as_str()))
        .map(|(method, _)| method.as_str())
        .collect();
    let error = if allowed.is_empty() {
        ApiError::NotFound {
            field: None,
            message: "no such endpoint (see docs/http-api.md, or GET /api/openapi.json)".into(),
        }
    } else if allowed.contains(&method.as_str()) {
        ApiError::Malformed {
            field: None,
            message: "the request cannot be read".into(),
        }
    } else {
        ApiError::MethodNotAllowed
    };
    let mut response = reply::error(&error);
    if !allowed.is_empty()
        && let Ok(allow) = HeaderValue::from_str(&allowed.join(", "))
    {
        response.headers_mut().insert(ALLOW, allow);
    }
    response
}

/// Whether `path` is one of the paths `pattern` stands for (a trailing `/` is ignored, as the
/// routes ignore it).
fn path_matches(pattern: &str, path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    let mut segments = path.trim_start_matches('/').split('/');
    pattern.trim_start_matches('/').split('/').all(|expected| {
        segments.next().is_some_and(|segment| {
            if expected.starts_with('{') {
                !segment.is_empty()
            } else {
                segment == expected
            }
        })
    }) && segments.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_patterns_segment_by_segment() {
        assert!(path_matches("/api/counters", "/api/counters"));
        assert!(path_matches("/api/counters", "/api/counters/"));
        assert!(path_matches("/api/counters/{key}", "/api/counters/1%7Cd"));
        assert!(!path_matches("/api/counters/{key}", "/api/counters//"));
        assert!(!path_matches("/api/counters/{key}", "/api/counters/a/b"));
        assert!(!path_matches("/api/counters", "/api/countersx"));
        assert!(!path_matches("/check", "/"));
    }
}
