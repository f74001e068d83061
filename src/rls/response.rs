//! Turning a [`Decision`] into a `RateLimitResponse` the way envoyproxy/ratelimit fills one:
//! statuses in request order, the overall code, and optionally the `RateLimit-*` headers of the
//! tightest descriptor and the dynamic metadata Envoy can route on. A window of several units
//! also says `unit_multiplier`, so that Envoy's `x-ratelimit-limit` has the right `w=`.

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::google::protobuf::{Duration, UInt32Value};

use super::metadata;
use super::wire::{DescriptorStatus, RateLimit, RateLimitResponse};
use crate::clock::whole_seconds_up;
use crate::limiter::{Counted, Decision, Outcome};

/// What goes into a response beyond the statuses.
#[derive(Clone, Debug, Default)]
pub struct ResponseOptions {
    /// Names of the limit, remaining and reset headers; `None` adds no headers.
    pub headers: Option<HeaderNames>,
    /// Return the matched rules' `metadata` (the Go service's `RESPONSE_DYNAMIC_METADATA`).
    pub dynamic_metadata: bool,
}

#[derive(Clone, Debug)]
pub struct HeaderNames {
    pub limit: String,
    pub remaining: String,
    pub reset: String,
}

impl Default for HeaderNames {
    fn default() -> HeaderNames {
        HeaderNames {
            limit: "RateLimit-Limit".into(),
            remaining: "RateLimit-Remaining".into(),
            reset: "RateLimit-Reset".into(),
        }
    }
}

/// The response for `request`, decided as `decision`.
pub fn build(
    request: &RateLimitRequest,
    decision: &Decision,
    options: &ResponseOptions,
) -> RateLimitResponse {
    let overall = if decision.over_limit {
        Code::OverLimit
    } else {
        Code::Ok
    };
    let response_headers_to_add = match (&options.headers, tightest(&decision.outcomes)) {
        (Some(names), Some(counted)) => vec![
            header(&names.limit, counted.requests_per_unit.to_string()),
            header(&names.remaining, counted.remaining.to_string()),
            header(
                &names.reset,
                whole_seconds_up(counted.resets_in).to_string(),
            ),
        ],
        _ => Vec::new(),
    };
    RateLimitResponse {
        overall_code: overall as i32,
        statuses: decision.outcomes.iter().map(status).collect(),
        response_headers_to_add,
        dynamic_metadata: options
            .dynamic_metadata
            .then(|| metadata::build(request, decision)),
    }
}

fn status(outcome: &Outcome) -> DescriptorStatus {
    match outcome {
        Outcome::NoLimit { .. } => DescriptorStatus {
            code: Code::Ok as i32,
            ..Default::default()
        },
        Outcome::Unlimited => DescriptorStatus {
            code: Code::Ok as i32,
            limit_remaining: u32::MAX,
            ..Default::default()
        },
        Outcome::Counted(counted) => DescriptorStatus {
            code: if counted.over_limit {
                Code::OverLimit
            } else {
                Code::Ok
            } as i32,
            current_limit: Some(RateLimit {
                name: counted.name.clone().unwrap_or_default(),
                requests_per_unit: counted.requests_per_unit,
                unit: counted.unit.proto_number(),
                unit_multiplier: (counted.unit_multiplier != 1).then_some(UInt32Value {
                    value: counted.unit_multiplier,
                }),
            }),
            limit_remaining: counted.remaining,
            duration_until_reset: Some(Duration {
                seconds: whole_seconds_up(counted.resets_in) as i64,
                nanos: 0,
            }),
        },
    }
}

/// The descriptor the headers describe: the first with the least remaining, except that a
/// regular descriptor over its limit always wins (the last such one), as in the Go service.
fn tightest(outcomes: &[Outcome]) -> Option<&Counted> {
    let mut chosen: Option<&Counted> = None;
    let mut forced = false;
    for outcome in outcomes {
        let Outcome::Counted(counted) = outcome else {
            continue;
        };
        if counted.over_limit && !counted.quota {
            chosen = Some(counted);
            forced = true;
        } else if !forced && chosen.is_none_or(|best| counted.remaining < best.remaining) {
            chosen = Some(counted);
        }
    }
    chosen
}

fn header(key: &str, value: String) -> HeaderValue {
    HeaderValue {
        key: key.to_string(),
        value,
        ..Default::default()
    }
}
