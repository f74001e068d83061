//! `GET /api/counters`, `GET /api/blocks`: live counters a page at a time, each with its own
//! limit; `DELETE /api/counters/{key}`: reset one counter (admin token required).
//!
//! Paging is the store's: `?cursor=` is an opaque position the previous page handed out,
//! `?limit=` caps the counters examined per page, and a page may hold fewer (even none) and still
//! have a `next_cursor`; the listing is complete when `next_cursor` is null. `?prefix=` keeps
//! counters whose raw key starts with it (`1|edge|` for domain `edge`, `c1|user:` for `/check`
//! keys starting `user:`).

use std::sync::Arc;

use serde::Serialize;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::api::Api;
use super::counter_view::CounterView;
use super::error::ApiError;
use super::{auth, reply};

/// Counters per page when `?limit=` is not given.
const DEFAULT_PAGE: usize = 100;

/// Most counters per page, whatever `?limit=` asks: bounds one request's work and reply on
/// every store (a larger `?limit=` is served this many).
pub const MAX_PAGE: usize = 1_000;

const PARAMETERS: [&str; 3] = ["limit", "cursor", "prefix"];

/// Which counters a listing shows.
#[derive(Clone, Copy, Debug)]
pub enum Listing {
    All,
    Blocked,
}

#[derive(Serialize)]
struct CountersPage {
    counters: Vec<CounterView>,
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct BlocksPage {
    blocked: Vec<Blocked>,
    next_cursor: Option<String>,
}

/// A blocked counter, with the seed API's `current_count` beside the counter's fields.
#[derive(Serialize)]
struct Blocked {
    current_count: u64,
    #[serde(flatten)]
    counter: CounterView,
}

pub async fn list(
    api: Arc<Api>,
    listing: Listing,
    query: String,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require_to_read(api.options.admin_token.as_ref(), &headers)?;
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    let mut prefix = String::new();
    for (name, value) in reply::query_pairs(&query, &PARAMETERS)? {
        match name.as_str() {
            "limit" => limit = page_size(&value)?,
            "cursor" => cursor = Some(value),
            _ => prefix = value,
        }
    }
    let page = api.limiter.list(&prefix, cursor.as_deref(), limit).await?;
    let limits = api.limiter.limits();
    let counters = page
        .counters
        .into_iter()
        .map(|entry| CounterView::new(entry, limits.config()));
    let next_cursor = page.next_cursor;
    Ok(match listing {
        Listing::All => reply::json(
            StatusCode::OK,
            &CountersPage {
                counters: counters.collect(),
                next_cursor,
            },
        ),
        Listing::Blocked => reply::json(
            StatusCode::OK,
            &BlocksPage {
                blocked: counters
                    .filter(CounterView::is_blocked)
                    .map(|counter| Blocked {
                        current_count: counter.count,
                        counter,
                    })
                    .collect(),
                next_cursor,
            },
        ),
    })
}

/// `?limit=`: text that is not a whole number is malformed (400), a number below 1 is out of
/// range (422), and a large one, however large, is cut to [`MAX_PAGE`].
fn page_size(text: &str) -> Result<usize, ApiError> {
    let rule = format!("limit must be a whole number from 1 (at most {MAX_PAGE} are served)");
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ApiError::malformed("limit", rule));
    }
    if text.starts_with('-') || digits.bytes().all(|byte| byte == b'0') {
        return Err(ApiError::out_of_range("limit", rule));
    }
    Ok(digits
        .parse()
        .map_or(MAX_PAGE, |size: usize| size.min(MAX_PAGE)))
}

#[derive(Serialize)]
struct Reset {
    key: String,
    reset: bool,
}

/// Resets the counter whose raw key is `encoded`, percent-decoded.
pub async fn reset(
    api: Arc<Api>,
    encoded: String,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require_to_change(api.options.admin_token.as_ref(), &headers)?;
    let key = percent_encoding::percent_decode_str(&encoded)
        .decode_utf8()
        .map_err(|_| ApiError::malformed("key", "the key is not UTF-8 once percent-decoded"))?
        .into_owned();
    if !api.limiter.reset(&key).await? {
        return Err(ApiError::NotFound {
            field: Some("key".into()),
            message: format!("no live counter has the key {key:?}"),
        });
    }
    tracing::info!(%key, "counter reset through the HTTP API");
    Ok(reply::json(StatusCode::OK, &Reset { key, reset: true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `?limit=` too large for any integer type is still a whole number from 1: it is served
    /// as the largest page, not refused as unreadable.
    #[test]
    fn any_whole_number_from_one_is_a_page_size() {
        assert_eq!(page_size("7").unwrap(), 7);
        assert_eq!(page_size("+7").unwrap(), 7);
        assert_eq!(page_size("1000000").unwrap(), MAX_PAGE);
        assert_eq!(page_size(&"9".repeat(60)).unwrap(), MAX_PAGE);
        for (text, status) in [
            ("0", 422),
            ("-3", 422),
            (&*format!("-{}", "9".repeat(60)), 422),
            ("", 400),
            ("1.5", 400),
            ("ten", 400),
            ("+", 400),
        ] {
            let error = page_size(text).unwrap_err();
            assert_eq!(error.status().as_u16(), status, "{text:?}");
        }
    }
}
