//! HTTP header syntax every HTTP-speaking backend parses the same way, strictly: what a
//! response declares is compared with what was asked for, so a lenient parse would let a
//! malformed answer through as data.

use std::ops::Range;

/// A non-empty run of ASCII digits as a `u64` (no sign, no spaces, no overflow).
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `Content-Range: bytes FIRST-LAST/TOTAL` strictly (TOTAL may be `*`): the declared
/// object bytes `FIRST..LAST+1` and the total size. `None` for anything else.
pub fn parse_content_range(value: &str) -> Option<(Range<u64>, Option<u64>)> {
    let rest = value.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let first = parse_decimal(first)?;
    let last = parse_decimal(last)?;
    let total = match total {
        "*" => None,
        t => Some(parse_decimal(t)?),
    };
    if first > last || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some((first..last.checked_add(1)?, total))
}
