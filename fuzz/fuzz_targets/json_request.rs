//! The protojson `POST /json` parser on any bytes. Every refusal is a 400 naming the field at
//! fault (whenever the body is a JSON object; an unknown field by name in the message too); every accepted request, written back as protojson
//! (snake_case, then lowerCamelCase with nulls for the defaults, numbers as strings and units by
//! name), reads
//! again as the same request; validation of an accepted request never panics.
#![no_main]

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use libfuzzer_sys::fuzz_target;
use ratelimiter::clock::Unit;
use ratelimiter::http::json;
use ratelimiter::rls::request::{self, RequestLimits};
use serde_json::{Map, Value, json};

const LIMITS: RequestLimits = RequestLimits {
    max_descriptors: 64,
    max_entries: 32,
    max_key_bytes: 256,
    max_value_bytes: 4096,
};

fuzz_target!(|body: &[u8]| {
    match json::parse(body) {
        Err(error) => {
            assert_eq!(error.status().as_u16(), 400, "{error}");
            let is_object = matches!(serde_json::from_slice(body), Ok(Value::Object(_)));
            if is_object {
                let field = error
                    .field()
                    .unwrap_or_else(|| panic!("no field named: {error}"));
                // An unknown top-level field is named in the message too.
                if error.message().starts_with("unknown field") && !field.contains('[') {
                    assert!(error.message().contains(&format!("{field:?}")), "{error}");
                }
            }
        }
        Ok(parsed) => {
            for style in [Style::Snake, Style::Camel] {
                let written = write(&parsed, style).to_string();
                let again = json::parse(written.as_bytes())
                    .unwrap_or_else(|error| panic!("{written} is refused: {error}"));
                assert_eq!(again, parsed, "{written}");
            }
            if let Ok(check) = request::validate(&parsed, &LIMITS) {
                assert_eq!(check.descriptors.len(), parsed.descriptors.len());
            }
        }
    }
});

#[derive(Clone, Copy)]
enum Style {
    /// snake_case names, numbers as numbers, defaults left out.
    Snake,
    /// lowerCamelCase names, numbers as strings, defaults as null.
    Camel,
}

impl Style {
    fn name(self, snake: &str, camel: &str) -> String {
        match self {
            Style::Snake => snake.into(),
            Style::Camel => camel.into(),
        }
    }

    fn number(self, value: u64) -> Value {
        match self {
            Style::Snake => value.into(),
            Style::Camel => value.to_string().into(),
        }
    }

    /// An enum as protojson reads it: a number, or (lowerCamelCase style) the unit's name.
    fn unit(self, number: i32) -> Value {
        match (self, Unit::from_proto_number(number)) {
            (Style::Camel, Some(unit)) => unit.name().into(),
            _ => number.into(),
        }
    }

    /// Puts a field holding a default value: left out, or null.
    fn default(self, fields: &mut Map<String, Value>, name: String) {
        if let Style::Camel = self {
            fields.insert(name, Value::Null);
        }
    }
}

fn write(request: &RateLimitRequest, style: Style) -> Value {
    let mut fields = Map::new();
    fields.insert("domain".into(), request.domain.clone().into());
    let descriptors: Vec<Value> = request
        .descriptors
        .iter()
        .map(|descriptor| {
            let mut fields = Map::new();
            let entries: Vec<Value> = descriptor
                .entries
                .iter()
                .map(|entry| json!({"key": entry.key, "value": entry.value}))
                .collect();
            fields.insert("entries".into(), entries.into());
            if let Some(limit) = &descriptor.limit {
                let mut limit_fields = Map::new();
                limit_fields.insert(
                    style.name("requests_per_unit", "requestsPerUnit"),
                    style.number(limit.requests_per_unit.into()),
                );
                limit_fields.insert("unit".into(), style.unit(limit.unit));
                fields.insert("limit".into(), limit_fields.into());
            }
            match &descriptor.hits_addend {
                Some(hits) => {
                    fields.insert(
                        style.name("hits_addend", "hitsAddend"),
                        style.number(hits.value),
                    );
                }
                None => style.default(&mut fields, style.name("hits_addend", "hitsAddend")),
            }
            let negative = style.name("is_negative_hits", "isNegativeHits");
            if descriptor.is_negative_hits {
                fields.insert(negative, true.into());
            } else {
                style.default(&mut fields, negative);
            }
            Value::Object(fields)
        })
        .collect();
    fields.insert("descriptors".into(), descriptors.into());
    let hits = style.name("hits_addend", "hitsAddend");
    if request.hits_addend == 0 {
        style.default(&mut fields, hits);
    } else {
        fields.insert(hits, style.number(request.hits_addend.into()));
    }
    Value::Object(fields)
}
