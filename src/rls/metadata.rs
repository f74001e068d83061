//! The response's dynamic metadata, shaped as envoyproxy/ratelimit's `RESPONSE_DYNAMIC_METADATA`:
//! the domain, each descriptor's entries, and the merged `metadata` of the rules that passed, so
//! that Envoy can route on `%DYNAMIC_METADATA(envoy.filters.http.ratelimit:metadata:...)%`.

use std::collections::HashMap;

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};

use crate::clock::Unit;
use crate::limiter::{Decision, Outcome};

pub fn build(request: &RateLimitRequest, decision: &Decision) -> Struct {
    let mut fields = HashMap::new();
    fields.insert("domain".to_string(), text(request.domain.clone()));
    let descriptors = request
        .descriptors
        .iter()
        .map(|descriptor| {
            let mut fields = HashMap::new();
            let entries = descriptor
                .entries
                .iter()
                .map(|entry| text(format!("{}={}", entry.key, entry.value)))
                .collect();
            fields.insert("entries".to_string(), list(entries));
            if let Some(limit) = &descriptor.limit {
                let unit = Unit::from_proto_number(limit.unit).map_or("UNKNOWN", Unit::name);
                fields.insert(
                    "limit".to_string(),
                    text(format!(
                        "requests_per_unit:{} unit:{unit}",
                        limit.requests_per_unit
                    )),
                );
            }
            if let Some(hits) = &descriptor.hits_addend {
                fields.insert("hitsAddend".to_string(), number(hits.value as f64));
            }
            structure(Struct { fields })
        })
        .collect();
    fields.insert("descriptors".to_string(), list(descriptors));
    if request.hits_addend != 0 {
        fields.insert(
            "hitsAddend".to_string(),
            number(f64::from(request.hits_addend)),
        );
    }
    let mut merged = Struct::default();
    for outcome in &decision.outcomes {
        if let Outcome::Counted(counted) = outcome
            && let (false, Some(metadata)) = (counted.over_limit, &counted.metadata)
        {
            merge_missing(&mut merged, metadata);
        }
    }
    if !merged.fields.is_empty() {
        fields.insert("metadata".to_string(), structure(merged));
    }
    Struct { fields }
}

/// Adds to `into` what it lacks from `from`, recursing into structs present in both: the first
/// descriptor's value wins on conflicting keys.
fn merge_missing(into: &mut Struct, from: &Struct) {
    for (key, value) in &from.fields {
        match into.fields.get_mut(key) {
            None => {
                into.fields.insert(key.clone(), value.clone());
            }
            Some(Value {
                kind: Some(Kind::StructValue(existing)),
            }) => {
                if let Some(Kind::StructValue(incoming)) = &value.kind {
                    merge_missing(existing, incoming);
                }
            }
            Some(_) => {}
        }
    }
}

fn text(value: String) -> Value {
    Value {
        kind: Some(Kind::StringValue(value)),
    }
}

fn number(value: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(value)),
    }
}

fn list(values: Vec<Value>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue { values })),
    }
}

fn structure(value: Struct) -> Value {
    Value {
        kind: Some(Kind::StructValue(value)),
    }
}
