//! Reading a caller's trace from Zipkin's B3 headers, which Envoy's Zipkin tracer sends: the
//! single `b3: {trace}-{span}[-{sampled}[-{parent}]]` header, or `x-b3-traceid`,
//! `x-b3-spanid`, `x-b3-sampled` and `x-b3-flags`. A trace id is 16 or 32 hex digits, a span
//! id 16. With no sampling decision the trace counts as sampled: Envoy only propagates traces
//! it records.

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// The caller's span, if the headers name a valid one.
pub fn extract(headers: &dyn Extractor) -> Option<SpanContext> {
    match headers.get("b3") {
        Some(single) => single_header(single),
        None => span_context(
            headers.get("x-b3-traceid")?,
            headers.get("x-b3-spanid")?,
            match headers.get("x-b3-flags") {
                Some("1") => Some("d"),
                _ => headers.get("x-b3-sampled"),
            },
        ),
    }
}

fn single_header(value: &str) -> Option<SpanContext> {
    let mut parts = value.split('-');
    let (trace, span) = (parts.next()?, parts.next()?);
    span_context(trace, span, parts.next())
}

fn span_context(trace: &str, span: &str, sampled: Option<&str>) -> Option<SpanContext> {
    let hex = |text: &str, lengths: &[usize]| {
        lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
    };
    if !hex(trace, &[16, 32]) || !hex(span, &[16]) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = match sampled {
        Some("0" | "false") => TraceFlags::default(),
        _ => TraceFlags::SAMPLED,
    };
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(headers: &[(&str, &str)]) -> Option<SpanContext> {
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        extract(&map)
    }

    #[test]
    fn both_header_forms_are_read() {
        let single =
            from(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]).unwrap();
        assert_eq!(
            single.trace_id().to_string(),
            "80f198ee56343ba864fe8b2a57d3eff7"
        );
        assert_eq!(single.span_id().to_string(), "e457b5a2e4d86bd1");
        assert!(single.is_sampled() && single.is_remote());
        let multi = from(&[
            ("x-b3-traceid", "64fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "0"),
        ])
        .unwrap();
        assert_eq!(
            multi.trace_id().to_string(),
            "000000000000000064fe8b2a57d3eff7"
        );
        assert!(!multi.is_sampled());
    }

    #[test]
    fn malformed_or_zero_ids_are_no_parent() {
        for bad in [
            "0",
            "xyz-e457b5a2e4d86bd1",
            "80f198ee56343ba864fe8b2a57d3eff7-e457",
            "00000000000000000000000000000000-e457b5a2e4d86bd1",
            "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000",
        ] {
            assert_eq!(from(&[("b3", bad)]), None, "{bad}");
        }
    }
}
