//! protojson to `RateLimitRequest`: field names in snake_case or lowerCamelCase, enums as names
//! or numbers, 64-bit integers as numbers or strings, `null` as the default. Unknown fields are
//! refused, naming the field by its path (`descriptors[0].entries[1].key`).

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::google::protobuf::UInt64Value;
use serde_json::{Map, Value};

use crate::clock::Unit;
use crate::http::error::ApiError;

pub fn parse(fields: &Map<String, Value>) -> Result<RateLimitRequest, ApiError> {
    let [domain, descriptors, hits_addend] =
        known(fields, "", ["domain", "descriptors", "hits_addend"])?;
    Ok(RateLimitRequest {
        domain: string(domain, "domain")?,
        descriptors: list(descriptors, "descriptors", descriptor)?,
        hits_addend: integer(hits_addend, "hits_addend")?,
    })
}

fn descriptor(value: &Value, path: &str) -> Result<RateLimitDescriptor, ApiError> {
    let [entries, limit, hits_addend, negative] = known(
        object(value, path)?,
        path,
        ["entries", "limit", "hits_addend", "is_negative_hits"],
    )?;
    let at = |field: &str| format!("{path}.{field}");
    Ok(RateLimitDescriptor {
        entries: list(entries, &at("entries"), entry)?,
        limit: limit
            .map(|limit| limit_override(limit, &at("limit")))
            .transpose()?,
        hits_addend: hits_addend
            .map(|hits| integer(Some(hits), &at("hits_addend")).map(|value| UInt64Value { value }))
            .transpose()?,
        is_negative_hits: boolean(negative, &at("is_negative_hits"))?,
    })
}

fn entry(value: &Value, path: &str) -> Result<Entry, ApiError> {
    let [key, value] = known(object(value, path)?, path, ["key", "value"])?;
    Ok(Entry {
        key: string(key, &format!("{path}.key"))?,
        value: string(value, &format!("{path}.value"))?,
    })
}

fn limit_override(value: &Value, path: &str) -> Result<RateLimitOverride, ApiError> {
    let [requests, unit] = known(object(value, path)?, path, ["requests_per_unit", "unit"])?;
    let unit_path = format!("{path}.unit");
    let unit = match unit {
        None => 0,
        Some(Value::String(name)) if name == "UNKNOWN" => 0,
        Some(Value::String(name)) => Unit::ALL
            .into_iter()
            .find(|unit| unit.name() == name)
            .map(Unit::proto_number)
            .ok_or_else(|| {
                ApiError::malformed(&unit_path, format!("{name:?} is not a rate limit unit"))
            })?,
        Some(number) => integer(Some(number), &unit_path)?,
    };
    Ok(RateLimitOverride {
        requests_per_unit: integer(requests, &format!("{path}.requests_per_unit"))?,
        unit,
    })
}

/// The values of `names` (snake_case; lowerCamelCase is accepted too) in that order, `null`
/// read as absent; any other field is refused.
fn known<'v, const N: usize>(
    fields: &'v Map<String, Value>,
    path: &str,
    names: [&str; N],
) -> Result<[Option<&'v Value>; N], ApiError> {
    let mut found = [None; N];
    for (name, value) in fields {
        let field = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let index = names
            .iter()
            .position(|known| *known == name || camel_case(known) == *name)
            .ok_or_else(|| {
                ApiError::malformed(
                    &field,
                    format!("unknown field {name:?}; known: {}", names.join(", ")),
                )
            })?;
        if found[index].is_some() {
            return Err(ApiError::malformed(field, "field given twice"));
        }
        found[index] = Some(value).filter(|value| !value.is_null());
    }
    Ok(found)
}

fn camel_case(snake: &str) -> String {
    let mut words = snake.split('_');
    let mut camel = words.next().unwrap_or_default().to_string();
    for word in words {
        let mut letters = word.chars();
        camel.extend(letters.next().map(|first| first.to_ascii_uppercase()));
        camel.push_str(letters.as_str());
    }
    camel
}

fn object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::malformed(path, "must be a JSON object"))
}

fn list<T>(
    value: Option<&Value>,
    path: &str,
    item: impl Fn(&Value, &str) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(values)) => values
            .iter()
            .enumerate()
            .map(|(index, value)| item(value, &format!("{path}[{index}]")))
            .collect(),
        Some(_) => Err(ApiError::malformed(path, "must be a JSON array")),
    }
}

fn string(value: Option<&Value>, path: &str) -> Result<String, ApiError> {
    match value {
        None => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(ApiError::malformed(path, "must be a string")),
    }
}

fn boolean(value: Option<&Value>, path: &str) -> Result<bool, ApiError> {
    match value {
        None => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(ApiError::malformed(path, "must be true or false")),
    }
}

/// A non-negative whole number that fits `T`, written as a number (`5` or, as protojson reads
/// it, `5.0`) or a string of digits.
fn integer<T: Bounded>(value: Option<&Value>, path: &str) -> Result<T, ApiError> {
    let number = match value {
        None => return Ok(T::default()),
        Some(Value::Number(number)) => number.as_u64().or_else(|| {
            // Below 2^64, every whole f64 converts exactly.
            let value = number.as_f64()?;
            (value.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&value))
                .then_some(value as u64)
        }),
        Some(Value::String(digits)) => digits.parse().ok(),
        Some(_) => None,
    };
    number
        .and_then(|number| T::try_from(number).ok())
        .ok_or_else(|| {
            ApiError::malformed(
                path,
                format!(
                    "must be a whole number from 0 to {} (a number or a string of digits)",
                    T::MAX
                ),
            )
        })
}

/// The unsigned protobuf integer types read here, and their largest values.
trait Bounded: TryFrom<u64> + Default {
    const MAX: u64;
}

impl Bounded for u32 {
    const MAX: u64 = u32::MAX as u64;
}

impl Bounded for u64 {
    const MAX: u64 = u64::MAX;
}

impl Bounded for i32 {
    const MAX: u64 = i32::MAX as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<RateLimitRequest, ApiError> {
        parse(
            serde_json::from_str::<Value>(text)
                .unwrap()
                .as_object()
                .unwrap(),
        )
    }

    #[test]
    fn camel_and_snake_case_read_the_same() {
        let camel = parsed(
            r#"{"domain": "d", "hitsAddend": 2, "descriptors": [{"entries": [{"key": "k", "value": "v"}],
                "limit": {"requestsPerUnit": "5", "unit": "MINUTE"}, "hitsAddend": "0", "isNegativeHits": true}]}"#,
        )
        .unwrap();
        let snake = parsed(
            r#"{"domain": "d", "hits_addend": 2, "descriptors": [{"entries": [{"key": "k", "value": "v"}],
                "limit": {"requests_per_unit": 5, "unit": 2}, "hits_addend": 0, "is_negative_hits": true}]}"#,
        )
        .unwrap();
        assert_eq!(camel, snake);
        assert_eq!(
            camel.descriptors[0].hits_addend,
            Some(UInt64Value { value: 0 })
        );
        assert_eq!(camel_case("requests_per_unit"), "requestsPerUnit");
    }

    /// Found by schemathesis: `{"requestsPerUnit": 1139.0}` was refused, where protojson reads
    /// any whole number.
    #[test]
    fn whole_numbers_written_as_floats_are_read() {
        let request = parsed(
            r#"{"domain": "d", "hits_addend": 2.0, "descriptors": [{"entries": [],
                "limit": {"requests_per_unit": 1139.0, "unit": 2.0}, "hits_addend": 1e3}]}"#,
        )
        .unwrap();
        assert_eq!(request.hits_addend, 2);
        let limit = request.descriptors[0].limit.unwrap();
        assert_eq!((limit.requests_per_unit, limit.unit), (1139, 2));
        assert_eq!(
            request.descriptors[0].hits_addend,
            Some(UInt64Value { value: 1_000 })
        );
        for text in [
            r#"{"hits_addend": 2.5}"#,
            r#"{"hits_addend": -1.0}"#,
            r#"{"hits_addend": 4294967296.0}"#,
            r#"{"descriptors": [{"hits_addend": 1.8446744073709552e19}]}"#,
        ] {
            assert_eq!(parsed(text).unwrap_err().status().as_u16(), 400, "{text}");
        }
    }

    #[test]
    fn refusals_name_the_field_by_its_path() {
        for (text, field) in [
            (r#"{"domian": "d"}"#, "domian"),
            (r#"{"domain": 1}"#, "domain"),
            (r#"{"domain": "d", "hits_addend": -1}"#, "hits_addend"),
            (
                r#"{"domain": "d", "hitsAddend": 1, "hits_addend": 1}"#,
                "hits_addend",
            ),
            (
                r#"{"descriptors": [{"entries": [{"key": "k", "valu": "v"}]}]}"#,
                "descriptors[0].entries[0].valu",
            ),
            (
                r#"{"descriptors": [{"limit": {"unit": "FORTNIGHT"}}]}"#,
                "descriptors[0].limit.unit",
            ),
            (
                r#"{"descriptors": [{"limit": {"requestsPerUnit": 4294967296}}]}"#,
                "descriptors[0].limit.requests_per_unit",
            ),
            (r#"{"descriptors": {}}"#, "descriptors"),
        ] {
            let error = parsed(text).unwrap_err();
            assert_eq!(error.field().as_deref(), Some(field), "{text}: {error}");
            assert_eq!(error.status().as_u16(), 400);
        }
    }

    /// Found by the json_request fuzz target: `{"": null}` was refused naming the field `""`
    /// with a message that did not say which field it was.
    #[test]
    fn an_unknown_field_is_named_in_the_message_even_when_empty() {
        let error = parsed(r#"{"": null}"#).unwrap_err();
        assert_eq!(error.field().as_deref(), Some(""));
        assert!(
            error.message().starts_with(r#"unknown field """#),
            "{error}"
        );
        let error = parsed(r#"{"descriptors": [{"entries": [{"kye": "k"}]}]}"#).unwrap_err();
        assert!(
            error.message().starts_with(r#"unknown field "kye""#),
            "{error}"
        );
    }
}
