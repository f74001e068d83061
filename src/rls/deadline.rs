//! The caller's deadline: Envoy sends its rate limit timeout as `grpc-timeout`, and a check
//! that cannot be answered by then is of no use to it. The store is given that deadline, less a
//! margin to send the answer back in time.

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

/// The share of the caller's timeout kept to send the answer back ...
const MARGIN_SHARE: u32 = 10;

/// ... and at most this much: with Envoy's default 20 ms timeout the store gets 18 ms, with a
/// second it gets 995 ms.
const MAX_MARGIN: Duration = Duration::from_millis(5);

/// When the store must have answered, from the `grpc-timeout` in `metadata` and the moment the
/// call `arrived`; `None` when the caller sent none (or an unreadable one).
pub fn store_deadline(metadata: &MetadataMap, arrived: Instant) -> Option<Instant> {
    let timeout = parse(metadata.get("grpc-timeout")?.to_str().ok()?)?;
    let margin = (timeout / MARGIN_SHARE).min(MAX_MARGIN);
    Some(arrived + (timeout - margin))
}

/// `grpc-timeout`'s value: at most 8 digits and a unit (gRPC over HTTP/2, "Timeout").
fn parse(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at_checked(text.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3_600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_is_read_and_bad_values_are_ignored() {
        assert_eq!(parse("20m"), Some(Duration::from_millis(20)));
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3_600)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("500u"), Some(Duration::from_micros(500)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "123456789m", "20", "20x", "-1m", "2.5S", "20mm"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_store_gets_the_timeout_less_a_margin() {
        let arrived = Instant::now();
        let mut metadata = MetadataMap::new();
        assert_eq!(store_deadline(&metadata, arrived), None);
        metadata.insert("grpc-timeout", "20m".parse().unwrap());
        assert_eq!(
            store_deadline(&metadata, arrived),
            Some(arrived + Duration::from_millis(18))
        );
        metadata.insert("grpc-timeout", "1S".parse().unwrap());
        assert_eq!(
            store_deadline(&metadata, arrived),
            Some(arrived + Duration::from_millis(995))
        );
    }
}
