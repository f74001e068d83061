//! `RateLimitResponse` to protojson as Go's `protojson.Marshal` writes it: lowerCamelCase names
//! in field-number order, default values left out, enums by name (`"OVER_LIMIT"`), durations as strings (`"58s"`). Only
//! the fields the service fills are mapped (see [`crate::rls::wire`]).

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::google::protobuf::{Duration, Struct, Value as ProtoValue, value::Kind};
use serde_json::{Map, Value};

use crate::clock::Unit;
use crate::rls::wire::{DescriptorStatus, RateLimit, RateLimitResponse};

pub fn render(response: &RateLimitResponse) -> Value {
    let mut fields = Map::new();
    put_code(&mut fields, "overallCode", response.overall_code);
    put_list(
        &mut fields,
        "statuses",
        response.statuses.iter().map(status),
    );
    put_list(
        &mut fields,
        "responseHeadersToAdd",
        response.response_headers_to_add.iter().map(header),
    );
    if let Some(metadata) = &response.dynamic_metadata {
        fields.insert("dynamicMetadata".into(), structure(metadata));
    }
    Value::Object(fields)
}

fn status(status: &DescriptorStatus) -> Value {
    let mut fields = Map::new();
    put_code(&mut fields, "code", status.code);
    if let Some(limit) = &status.current_limit {
        fields.insert("currentLimit".into(), current_limit(limit));
    }
    if status.limit_remaining != 0 {
        fields.insert("limitRemaining".into(), status.limit_remaining.into());
    }
    if let Some(reset) = &status.duration_until_reset {
        fields.insert("durationUntilReset".into(), duration(reset).into());
    }
    Value::Object(fields)
}

fn current_limit(limit: &RateLimit) -> Value {
    let mut fields = Map::new();
    if !limit.name.is_empty() {
        fields.insert("name".into(), limit.name.clone().into());
    }
    if limit.requests_per_unit != 0 {
        fields.insert("requestsPerUnit".into(), limit.requests_per_unit.into());
    }
    if limit.unit != 0 {
        let unit = Unit::from_proto_number(limit.unit)
            .map_or_else(|| limit.unit.into(), |unit| unit.name().into());
        fields.insert("unit".into(), unit);
    }
    if let Some(multiplier) = &limit.unit_multiplier {
        fields.insert("unitMultiplier".into(), multiplier.value.into());
    }
    Value::Object(fields)
}

fn header(header: &HeaderValue) -> Value {
    let mut fields = Map::new();
    if !header.key.is_empty() {
        fields.insert("key".into(), header.key.clone().into());
    }
    if !header.value.is_empty() {
        fields.insert("value".into(), header.value.clone().into());
    }
    Value::Object(fields)
}

/// An enum field by its name; an unnamed number stays a number, as protojson writes it.
fn put_code(fields: &mut Map<String, Value>, name: &str, code: i32) {
    if code != 0 {
        let value =
            Code::try_from(code).map_or_else(|_| code.into(), |code| code.as_str_name().into());
        fields.insert(name.into(), value);
    }
}

fn put_list(fields: &mut Map<String, Value>, name: &str, items: impl Iterator<Item = Value>) {
    let items: Vec<Value> = items.collect();
    if !items.is_empty() {
        fields.insert(name.into(), Value::Array(items));
    }
}

/// `"58s"`, `"1.500s"`: seconds, and nanoseconds in groups of three digits when there are any.
fn duration(duration: &Duration) -> String {
    let negative = duration.seconds < 0 || duration.nanos < 0;
    let sign = if negative { "-" } else { "" };
    let seconds = duration.seconds.unsigned_abs();
    let nanos = duration.nanos.unsigned_abs();
    if nanos == 0 {
        return format!("{sign}{seconds}s");
    }
    let mut fraction = format!("{nanos:09}");
    while fraction.ends_with("000") {
        fraction.truncate(fraction.len() - 3);
    }
    format!("{sign}{seconds}.{fraction}s")
}

/// A `Struct` as an object, keys sorted as protojson sorts map keys.
fn structure(value: &Struct) -> Value {
    let mut fields: Vec<_> = value.fields.iter().collect();
    fields.sort_unstable_by_key(|(key, _)| key.as_str());
    Value::Object(
        fields
            .into_iter()
            .map(|(key, value)| (key.clone(), proto_value(value)))
            .collect(),
    )
}

fn proto_value(value: &ProtoValue) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(flag)) => (*flag).into(),
        Some(Kind::StringValue(text)) => text.clone().into(),
        // protojson writes the numbers JSON cannot hold as strings.
        Some(Kind::NumberValue(number)) => serde_json::Number::from_f64(*number)
            .map_or_else(|| non_finite(*number).into(), Value::Number),
        Some(Kind::StructValue(inner)) => structure(inner),
        Some(Kind::ListValue(list)) => list.values.iter().map(proto_value).collect(),
    }
}

fn non_finite(number: f64) -> &'static str {
    if number.is_nan() {
        "NaN"
    } else if number > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_left_out_and_enums_and_durations_are_named() {
        let response = RateLimitResponse {
            overall_code: Code::OverLimit as i32,
            statuses: vec![
                DescriptorStatus {
                    code: Code::OverLimit as i32,
                    current_limit: Some(RateLimit {
                        name: String::new(),
                        requests_per_unit: 3,
                        unit: Unit::Minute.proto_number(),
                        unit_multiplier: None,
                    }),
                    limit_remaining: 0,
                    duration_until_reset: Some(Duration {
                        seconds: 58,
                        nanos: 0,
                    }),
                },
                DescriptorStatus {
                    code: Code::Ok as i32,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            render(&response).to_string(),
            r#"{"overallCode":"OVER_LIMIT","statuses":[{"code":"OVER_LIMIT","currentLimit":{"requestsPerUnit":3,"unit":"MINUTE"},"durationUntilReset":"58s"},{"code":"OK"}]}"#
        );
        assert_eq!(render(&RateLimitResponse::default()).to_string(), "{}");
    }

    #[test]
    fn a_window_of_several_units_names_its_multiplier() {
        let limit = RateLimit {
            name: String::new(),
            requests_per_unit: 100,
            unit: Unit::Minute.proto_number(),
            unit_multiplier: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 5 }),
        };
        assert_eq!(
            current_limit(&limit).to_string(),
            r#"{"requestsPerUnit":100,"unit":"MINUTE","unitMultiplier":5}"#
        );
    }

    #[test]
    fn fractions_of_a_second_are_written_in_groups_of_three_digits() {
        let at = |seconds, nanos| duration(&Duration { seconds, nanos });
        assert_eq!(at(1, 500_000_000), "1.500s");
        assert_eq!(at(0, 1_000), "0.000001s");
        assert_eq!(at(0, 1), "0.000000001s");
        assert_eq!(at(-2, 0), "-2s");
    }
}
