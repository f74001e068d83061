//! `envoy.service.ratelimit.v3.RateLimitResponse` as Envoy 1.40 reads it. envoy-types 0.7.7
//! lacks `RateLimit.unit_multiplier` (field 4), which Envoy multiplies into the `w=` of its
//! `x-ratelimit-limit` header, so the response is encoded from these messages: the fields the
//! service fills, with the proto's numbers (the rest are never set).

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::google::protobuf::{Duration, Struct, UInt32Value};

#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitResponse {
    #[prost(enumeration = "Code", tag = "1")]
    pub overall_code: i32,
    #[prost(message, repeated, tag = "2")]
    pub statuses: Vec<DescriptorStatus>,
    #[prost(message, repeated, tag = "3")]
    pub response_headers_to_add: Vec<HeaderValue>,
    #[prost(message, optional, tag = "6")]
    pub dynamic_metadata: Option<Struct>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DescriptorStatus {
    #[prost(enumeration = "Code", tag = "1")]
    pub code: i32,
    #[prost(message, optional, tag = "2")]
    pub current_limit: Option<RateLimit>,
    #[prost(uint32, tag = "3")]
    pub limit_remaining: u32,
    #[prost(message, optional, tag = "4")]
    pub duration_until_reset: Option<Duration>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimit {
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// `RateLimitResponse.RateLimit.Unit`.
    #[prost(int32, tag = "2")]
    pub unit: i32,
    /// The window is this many units; absent means 1.
    #[prost(message, optional, tag = "4")]
    pub unit_multiplier: Option<UInt32Value>,
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse as EnvoyTypes;
    use prost::Message;

    use super::*;

    #[test]
    fn envoy_types_reads_every_field_but_the_multiplier() {
        let response = RateLimitResponse {
            overall_code: Code::OverLimit as i32,
            statuses: vec![DescriptorStatus {
                code: Code::OverLimit as i32,
                current_limit: Some(RateLimit {
                    name: "five_minutes".into(),
                    requests_per_unit: 100,
                    unit: 2,
                    unit_multiplier: Some(UInt32Value { value: 5 }),
                }),
                limit_remaining: 7,
                duration_until_reset: Some(Duration {
                    seconds: 58,
                    nanos: 0,
                }),
            }],
            response_headers_to_add: vec![HeaderValue {
                key: "k".into(),
                value: "v".into(),
                ..Default::default()
            }],
            dynamic_metadata: Some(Struct::default()),
        };
        let bytes = response.encode_to_vec();
        let read = EnvoyTypes::decode(bytes.as_slice()).unwrap();
        assert_eq!(read.overall_code, Code::OverLimit as i32);
        let status = &read.statuses[0];
        let limit = status.current_limit.as_ref().unwrap();
        assert_eq!(
            (limit.name.as_str(), limit.requests_per_unit, limit.unit),
            ("five_minutes", 100, 2)
        );
        assert_eq!(status.limit_remaining, 7);
        assert_eq!(status.duration_until_reset.as_ref().unwrap().seconds, 58);
        assert_eq!(read.response_headers_to_add[0].value, "v");
        assert!(read.dynamic_metadata.is_some());
        assert_eq!(
            RateLimitResponse::decode(bytes.as_slice()).unwrap(),
            response
        );
    }
}
