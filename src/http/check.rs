//! `POST /check {"key", "limit"?, "window_ms"?}`: one hit against a sliding window, for callers
//! that are not behind Envoy. The store decides atomically (see [`crate::store::sliding`]): no
//! span of `window_ms` ever admits more than `limit`, and a denied caller may be told to wait up
//! to one bucket (`window_ms / 20`) longer than an exact sliding log would say. The limiter
//! counts and times the check like any other.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use warp::http::StatusCode;
use warp::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use warp::reply::Response;

use super::api::{Api, CheckDefaults};
use super::error::ApiError;
use super::reply;
use crate::clock::whole_seconds_up;
use crate::key::CheckKey;

/// Largest `limit`: a billion hits per window is beyond any real limit, and the bound keeps
/// every count far from overflow.
pub const MAX_LIMIT: u64 = 1_000_000_000;

/// Shortest window: at one second a bucket is 50 ms; shorter windows are better served by
/// Envoy's local rate limit filter than by a network call.
pub const MIN_WINDOW_MS: u64 = 1_000;

/// Longest window: one year, the longest unit a config rule can have.
pub const MAX_WINDOW_MS: u64 = 31_536_000_000;

const FIELDS: [&str; 3] = ["key", "limit", "window_ms"];

#[derive(Serialize)]
struct CheckAnswer {
    allowed: bool,
    current_count: u64,
    remaining: u64,
    retry_after_seconds: u64,
}

pub async fn handle(api: Arc<Api>, body: Result<Vec<u8>, ApiError>) -> Result<Response, ApiError> {
    let check = parse(&body?, &api.options.check_defaults)?;
    let slide = api.limiter.slide(&check).await?;
    let answer = CheckAnswer {
        allowed: slide.allowed,
        current_count: slide.count,
        remaining: check.limit.saturating_sub(slide.count),
        retry_after_seconds: whole_seconds_up(slide.retry_after),
    };
    let status = if slide.allowed {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    let mut response = reply::json(status, &answer);
    let headers = response.headers_mut();
    headers.insert(header("x-ratelimit-limit"), HeaderValue::from(check.limit));
    headers.insert(
        header("x-ratelimit-remaining"),
        HeaderValue::from(answer.remaining),
    );
    if !slide.allowed {
        let wait = HeaderValue::from(answer.retry_after_seconds);
        headers.insert(header("x-ratelimit-reset"), wait.clone());
        headers.insert(RETRY_AFTER, wait);
    }
    Ok(response)
}

fn header(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

/// Reads a check request; every refusal names its field.
pub fn parse(body: &[u8], defaults: &CheckDefaults) -> Result<CheckKey, ApiError> {
    let fields = reply::json_object(
        body,
        r#"{"key": "user:42", "limit": 10, "window_ms": 60000}"#,
    )?;
    if let Some(unknown) = fields.keys().find(|name| !FIELDS.contains(&name.as_str())) {
        return Err(ApiError::malformed(
            unknown.clone(),
            format!("unknown field {unknown:?}; known: {}", FIELDS.join(", ")),
        ));
    }
    let key = match fields.get("key") {
        None | Some(Value::Null) => return Err(ApiError::malformed("key", "key is required")),
        Some(Value::String(key)) => key,
        Some(_) => return Err(ApiError::malformed("key", "key must be a string")),
    };
    if key.is_empty() {
        return Err(ApiError::out_of_range("key", "key must not be empty"));
    }
    if key.len() > defaults.max_key_bytes {
        return Err(ApiError::out_of_range(
            "key",
            format!(
                "key is {} bytes, more than the {} allowed",
                key.len(),
                defaults.max_key_bytes
            ),
        ));
    }
    Ok(CheckKey {
        key: key.clone(),
        limit: bounded(&fields, "limit", 1, MAX_LIMIT)?.unwrap_or(defaults.limit),
        window_ms: bounded(&fields, "window_ms", MIN_WINDOW_MS, MAX_WINDOW_MS)?
            .unwrap_or(defaults.window_ms),
    })
}

/// An optional whole-number field within `min..=max`. JSON does not tell integers from floats,
/// so `5.0` is the whole number 5.
fn bounded(
    fields: &Map<String, Value>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ApiError> {
    let value = match fields.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_f64().unwrap_or(f64::NAN),
        Some(_) => {
            return Err(ApiError::malformed(
                name,
                format!("{name} must be a number"),
            ));
        }
    };
    if value.fract() != 0.0 {
        return Err(ApiError::malformed(
            name,
            format!("{name} must be a whole number"),
        ));
    }
    // Both bounds are far below 2^53, so the comparison and the conversion are exact.
    if value < min as f64 || value > max as f64 {
        return Err(ApiError::out_of_range(
            name,
            format!("{name} must be from {min} to {max}"),
        ));
    }
    Ok(Some(value as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: CheckDefaults = CheckDefaults {
        limit: 100,
        window_ms: 60_000,
        max_key_bytes: 8,
    };

    #[test]
    fn defaults_fill_what_the_request_leaves_out() {
        let check = parse(br#"{"key": "k", "limit": null}"#, &DEFAULTS).unwrap();
        assert_eq!((check.limit, check.window_ms), (100, 60_000));
        let check = parse(br#"{"key": "k", "limit": 2, "window_ms": 1000}"#, &DEFAULTS).unwrap();
        assert_eq!((check.limit, check.window_ms), (2, 1_000));
    }

    /// Found by schemathesis (`{"window_ms": 37398.0}` was refused as out of range) and by the
    /// check_body fuzz target: a whole number written as a float is that number.
    #[test]
    fn whole_numbers_written_as_floats_are_whole_numbers() {
        let check = parse(
            br#"{"key": "k", "limit": 5.0, "window_ms": 37398.0}"#,
            &DEFAULTS,
        );
        let check = check.unwrap();
        assert_eq!((check.limit, check.window_ms), (5, 37_398));
        let check = parse(br#"{"key": "k", "limit": 1e3}"#, &DEFAULTS).unwrap();
        assert_eq!(check.limit, 1_000);
        for (body, status) in [
            (r#"{"key": "k", "limit": 5.5}"#, 400),
            (r#"{"key": "k", "limit": 0.0}"#, 422),
            (r#"{"key": "k", "limit": -1}"#, 422),
            (r#"{"key": "k", "limit": 1e300}"#, 422),
            (r#"{"key": "k", "window_ms": 999.0}"#, 422),
        ] {
            let error = parse(body.as_bytes(), &DEFAULTS).unwrap_err();
            assert_eq!(error.status().as_u16(), status, "{body}: {error}");
        }
    }
}
