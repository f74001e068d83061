//! Validation of a `RateLimitRequest` at the edge: everything the limiter needs is checked once
//! here, including bounds on sizes, so that no request can make the service do unbounded work.

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;

use super::error::RequestError;
use crate::clock::Unit;
use crate::limiter::{Check, DescriptorCheck, LimitOverride};

/// Bounds on what one request may ask for.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    pub max_descriptors: usize,
    pub max_entries: usize,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
}

/// The largest `hits_addend` accepted for one descriptor: the request-level field is a uint32,
/// and anything larger in the per-descriptor wrapper is a client bug, not a real weight.
pub const MAX_HITS: u64 = u32::MAX as u64;

/// Checks a request against the protocol's rules and `limits`, borrowing its strings.
pub fn validate<'r>(
    request: &'r RateLimitRequest,
    limits: &RequestLimits,
) -> Result<Check<'r>, RequestError> {
    if request.domain.is_empty() {
        return Err(RequestError::EmptyDomain);
    }
    if request.descriptors.is_empty() {
        return Err(RequestError::NoDescriptors);
    }
    if request.descriptors.len() > limits.max_descriptors {
        return Err(RequestError::TooManyDescriptors {
            count: request.descriptors.len(),
            max: limits.max_descriptors,
        });
    }
    // The request-level `hits_addend` 0 means 1 (rls.proto).
    let request_hits = u64::from(request.hits_addend.max(1));
    let mut descriptors = Vec::with_capacity(request.descriptors.len());
    for (index, descriptor) in request.descriptors.iter().enumerate() {
        check_entries(index, descriptor, limits)?;
        let limit_override = match &descriptor.limit {
            None => None,
            Some(limit) => Some(LimitOverride {
                unit: Unit::from_proto_number(limit.unit).ok_or(RequestError::BadOverrideUnit {
                    descriptor: index,
                    unit: limit.unit,
                })?,
                requests_per_unit: limit.requests_per_unit,
            }),
        };
        // A per-descriptor `hits_addend` overrides the request's, and 0 there means "check only".
        let hits = descriptor
            .hits_addend
            .as_ref()
            .map_or(request_hits, |wrapper| wrapper.value);
        if hits > MAX_HITS {
            return Err(RequestError::TooManyHits {
                descriptor: index,
                hits,
                max: MAX_HITS,
            });
        }
        // Bounded by MAX_HITS above, so the conversion is exact.
        let hits = hits as i64;
        descriptors.push(DescriptorCheck {
            entries: &descriptor.entries,
            limit_override,
            hits: if descriptor.is_negative_hits {
                -hits
            } else {
                hits
            },
        });
    }
    Ok(Check {
        domain: &request.domain,
        descriptors,
    })
}

fn check_entries(
    index: usize,
    descriptor: &envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor,
    limits: &RequestLimits,
) -> Result<(), RequestError> {
    if descriptor.entries.is_empty() {
        return Err(RequestError::NoEntries { descriptor: index });
    }
    if descriptor.entries.len() > limits.max_entries {
        return Err(RequestError::TooManyEntries {
            descriptor: index,
            count: descriptor.entries.len(),
            max: limits.max_entries,
        });
    }
    for (entry_index, entry) in descriptor.entries.iter().enumerate() {
        if entry.key.is_empty() {
            return Err(RequestError::EmptyKey {
                descriptor: index,
                entry: entry_index,
            });
        }
        let too_long = |part, len, max| RequestError::TooLong {
            descriptor: index,
            entry: entry_index,
            part,
            len,
            max,
        };
        if entry.key.len() > limits.max_key_bytes {
            return Err(too_long("key", entry.key.len(), limits.max_key_bytes));
        }
        if entry.value.len() > limits.max_value_bytes {
            return Err(too_long("value", entry.value.len(), limits.max_value_bytes));
        }
    }
    Ok(())
}
