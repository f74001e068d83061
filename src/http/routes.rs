//! The router: every route, each answering with a `Response` of its own (errors as JSON
//! `{"error", "field"}`), all counted and timed by one wrapper under the route pattern, never the
//! raw path.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::api::Api;
use super::counters::Listing;
use super::error::ApiError;
use super::reply::{self, Route};
use super::{check, counters, health, json, limits, scrape};

/// Hands every route the shared state.
type State = BoxedFilter<(Arc<Api>,)>;

/// The route label of requests no route took (unknown paths, wrong methods).
const UNMATCHED: &str = "unmatched";

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
        .recover(rejected)
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
fn get_or_head() -> BoxedFilter<()> {
    warp::get().or(warp::head()).unify().boxed()
}

/// Matches exactly the path `route` (`/api/limits`).
fn segments(route: &'static str) -> BoxedFilter<()> {
    route
        .trim_start_matches('/')
        .split('/')
        .fold(warp::any().boxed(), |filter, segment| {
            filter.and(warp::path(segment)).boxed()
        })
        .and(warp::path::end())
        .boxed()
}

/// A route's answer, or its error as JSON, labelled with the route pattern.
async fn respond(
    route: &'static str,
    answer: impl Future<Output = Result<Response, ApiError>>,
) -> Response {
    let mut response = answer.await.unwrap_or_else(|error| reply::error(&error));
    response.extensions_mut().insert(Route(route));
    response
}

/// What no route took: an unknown path (404) or a known path with another method (405).
async fn rejected(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.is_not_found() {
        ApiError::NotFound {
            field: None,
            message: "no such endpoint (see the README's HTTP API section)".into(),
        }
    } else {
        ApiError::Malformed {
            field: None,
            message: format!("the request cannot be read: {rejection:?}"),
        }
    };
    Ok(reply::error(&error))
}
