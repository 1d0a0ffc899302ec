//! Trace context as it travels between Chorus processes: a W3C Trace Context `traceparent`
//! value (<https://www.w3.org/TR/trace-context/#traceparent-header>), carried by a client frame,
//! a [`SendRequest`](crate::router::SendRequest) (gRPC metadata and the request message) and a
//! [`Delivery`](crate::bus::Delivery) (NATS headers, the in-process bus's envelope).
//!
//! Core only carries and checks it; `chorus-telemetry` turns it into spans.

use std::fmt;

/// Length of a version-00 `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
pub const TRACEPARENT_LEN: usize = 55;

/// A checked `traceparent` value, lowercase, version 00.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceParent(String);

impl TraceParent {
    /// Accepts a version-00 `traceparent` with non-zero ids; anything else is `None` (a
    /// malformed context is ignored, as the W3C recommendation says, never an error).
    pub fn parse(s: &str) -> Option<TraceParent> {
        let b = s.as_bytes();
        if b.len() != TRACEPARENT_LEN || &b[..3] != b"00-" || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let hex = |r: std::ops::Range<usize>| {
            b[r].iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        };
        let zero = |r: std::ops::Range<usize>| b[r].iter().all(|c| *c == b'0');
        if !hex(3..35) || !hex(36..52) || !hex(53..55) || zero(3..35) || zero(36..52) {
            return None;
        }
        Some(TraceParent(s.to_owned()))
    }

    /// Builds one from its parts (ids as lowercase hex, as the W3C format has them).
    pub fn from_parts(trace_id: &str, span_id: &str, sampled: bool) -> Option<TraceParent> {
        TraceParent::parse(&format!(
            "00-{trace_id}-{span_id}-{}",
            if sampled { "01" } else { "00" }
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 hex digits of the trace id.
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }

    /// The 16 hex digits of the parent span id.
    pub fn span_id(&self) -> &str {
        &self.0[36..52]
    }

    /// The caller recorded its span (the `sampled` flag).
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.0[53..55], 16).is_ok_and(|f| f & 1 == 1)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_w3c_example_and_its_parts() {
        let tp = TraceParent::parse(GOOD).unwrap();
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id(), "00f067aa0ba902b7");
        assert!(tp.sampled());
        assert_eq!(tp.as_str(), GOOD);
        let unsampled = TraceParent::from_parts(tp.trace_id(), tp.span_id(), false).unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }
}
