//! Calls a running ratelimiter the way Envoy does, and prints the answer.
//!
//! ```sh
//! cargo run --release -- serve &                         # the service, on config/
//! cargo run --example client -- edge user_id=alice path=/api/orders
//! ```
//!
//! Arguments: the domain, then the descriptor's `key=value` entries. `RATELIMITER_GRPC` picks
//! the address (default `http://127.0.0.1:8081`).

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use ratelimiter::clock::Unit;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let domain = args.next().ok_or("usage: client <domain> <key=value>...")?;
    let entries = args
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => Ok(Entry {
                key: key.into(),
                value: value.into(),
            }),
            None => Err(format!("{pair:?} is not key=value")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let address =
        std::env::var("RATELIMITER_GRPC").unwrap_or_else(|_| "http://127.0.0.1:8081".into());

    let mut client = RateLimitServiceClient::connect(address).await?;
    let request = RateLimitRequest {
        domain,
        descriptors: vec![RateLimitDescriptor {
            entries,
            ..Default::default()
        }],
        hits_addend: 1,
    };
    let response = client.should_rate_limit(request).await?.into_inner();

    let overall = Code::try_from(response.overall_code).unwrap_or(Code::Unknown);
    println!("overall: {}", overall.as_str_name());
    for status in &response.statuses {
        let code = Code::try_from(status.code).unwrap_or(Code::Unknown);
        match &status.current_limit {
            Some(limit) => println!(
                "{}: {} remaining of {} per {} (resets in {}s)",
                code.as_str_name(),
                status.limit_remaining,
                limit.requests_per_unit,
                Unit::from_proto_number(limit.unit).map_or("UNKNOWN", Unit::name),
                status.duration_until_reset.map_or(0, |d| d.seconds),
            ),
            None => println!("{}: no limit applies", code.as_str_name()),
        }
    }
    Ok(())
}
