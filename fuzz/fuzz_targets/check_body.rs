//! The `POST /check` body parser on any bytes, against a model of what it must accept: a JSON
//! object with a non-empty `key` of at most the allowed bytes, and optional whole-number
//! `limit` and `window_ms` within their bounds (null for the default). Every refusal is the one
//! the model names first, with its status (400 malformed, 422 out of range) and field; every
//! accepted request's counter key decodes back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimiter::http::CheckDefaults;
use ratelimiter::http::check::{self, MAX_LIMIT, MAX_WINDOW_MS, MIN_WINDOW_MS};
use ratelimiter::key::CheckKey;
use serde_json::{Map, Value};

const DEFAULTS: CheckDefaults = CheckDefaults {
    limit: 100,
    window_ms: 60_000,
    max_key_bytes: 16,
};

/// What the model expects: the accepted request, or the status and field of the refusal.
type Expected = Result<CheckKey, (u16, Option<String>)>;

fuzz_target!(|body: &[u8]| {
    let parsed = check::parse(body, &DEFAULTS);
    let expected = model(body);
    match (&parsed, &expected) {
        (Ok(check), Ok(want)) => {
            assert_eq!(check, want);
            assert_eq!(CheckKey::decode(&check.encode()).as_ref(), Some(check));
        }
        (Err(error), Err((status, field))) => {
            assert_eq!(error.status().as_u16(), *status, "{error}");
            assert_eq!(&error.field(), field, "{error}");
            assert!(!error.message().is_empty());
        }
        _ => panic!("parsed {parsed:?}, expected {expected:?}"),
    }
});

fn model(body: &[u8]) -> Expected {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err((400, None));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|name| !["key", "limit", "window_ms"].contains(&name.as_str()))
    {
        return Err((400, Some(unknown.clone())));
    }
    let key = match fields.get("key") {
        Some(Value::String(key)) if key.is_empty() || key.len() > DEFAULTS.max_key_bytes => {
            return Err((422, Some("key".into())));
        }
        Some(Value::String(key)) => key.clone(),
        _ => return Err((400, Some("key".into()))),
    };
    Ok(CheckKey {
        key,
        limit: whole(&fields, "limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULTS.limit),
        window_ms: whole(&fields, "window_ms", MIN_WINDOW_MS, MAX_WINDOW_MS)?
            .unwrap_or(DEFAULTS.window_ms),
    })
}

/// A whole number within `min..=max`, written as an integer or as a float without a fraction.
fn whole(
    fields: &Map<String, Value>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, (u16, Option<String>)> {
    let refused = |status| Err((status, Some(name.to_string())));
    let value = match fields.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_f64().unwrap_or(f64::NAN),
        Some(_) => return refused(400),
    };
    if value.fract() != 0.0 {
        return refused(400);
    }
    if value < min as f64 || value > max as f64 {
        return refused(422);
    }
    Ok(Some(value as u64))
}
