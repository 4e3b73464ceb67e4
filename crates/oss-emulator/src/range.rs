//! OSS `Range` semantics (see `shared/OSS-FACTS.md`).
//!
//! - `bytes=a-b`, `bytes=a-`, `bytes=-n`; only the first range of a list is used (OSS does
//!   not do multi-range and answers with the first one).
//! - Legacy behaviour (no `x-oss-range-behavior: standard`): a range that is malformed or
//!   does not lie inside the object is ignored: 200 and the whole object.
//! - Standard behaviour: an end past the object is clamped (206), a start at or past the end
//!   is 416 `InvalidRange`; a suffix longer than the object is the whole object (206); a
//!   malformed header is still ignored (200).

/// What to send for a GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// 200, the whole object.
    Whole,
    /// 206, bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416 `InvalidRange`.
    NotSatisfiable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    FromTo(u64, u64),
    From(u64),
    Suffix(u64),
}

fn parse(header: &str) -> Option<Spec> {
    let rest = header.trim().strip_prefix("bytes=")?;
    let first = rest.split(',').next()?.trim();
    let (a, b) = first.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => None,
        (true, false) => Some(Spec::Suffix(num(b)?)),
        (false, true) => Some(Spec::From(num(a)?)),
        (false, false) => {
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some(Spec::FromTo(a, b))
        }
    }
}

/// Resolves a `Range` header against an object of `size` bytes.
pub fn resolve(header: Option<&str>, size: u64, standard: bool) -> RangeOutcome {
    let Some(spec) = header.and_then(parse) else {
        return RangeOutcome::Whole;
    };
    let last = size.checked_sub(1);
    match (spec, standard) {
        (Spec::FromTo(a, b), false) => match last {
            Some(last) if b <= last => RangeOutcome::Partial { start: a, end: b },
            _ => RangeOutcome::Whole,
        },
        (Spec::FromTo(a, b), true) => match last {
            Some(last) if a <= last => RangeOutcome::Partial {
                start: a,
                end: b.min(last),
            },
            _ => RangeOutcome::NotSatisfiable,
        },
        (Spec::From(a), standard) => match last {
            Some(last) if a <= last => RangeOutcome::Partial {
                start: a,
                end: last,
            },
            _ if standard => RangeOutcome::NotSatisfiable,
            _ => RangeOutcome::Whole,
        },
        (Spec::Suffix(n), false) => match last {
            Some(last) if n >= 1 && n <= size => RangeOutcome::Partial {
                start: size - n,
                end: last,
            },
            _ => RangeOutcome::Whole,
        },
        (Spec::Suffix(n), true) => match last {
            Some(last) if n >= 1 => RangeOutcome::Partial {
                start: size - n.min(size),
                end: last,
            },
            _ => RangeOutcome::NotSatisfiable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::*;
    use super::*;

    #[test]
    fn legacy_ignores_anything_outside_the_object() {
        let r = |h| resolve(Some(h), 1000, false);
        assert_eq!(r("bytes=0-499"), Partial { start: 0, end: 499 });
        assert_eq!(
            r("bytes=500-"),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            r("bytes=-500"),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(r("bytes=0-"), Partial { start: 0, end: 999 });
        assert_eq!(r("bytes=0-499,500-999"), Partial { start: 0, end: 499 });
        for bad in [
            "byte=0-499",
            "bytes=0-1000",
            "bytes=1000-2000",
            "bytes=1000-",
            "bytes=-2000",
            "bytes=-0",
            "bytes=10-1",
            "bytes=-",
            "bytes=a-b",
            "",
        ] {
            assert_eq!(r(bad), Whole, "{bad}");
        }
        assert_eq!(resolve(None, 1000, false), Whole);
        assert_eq!(resolve(Some("bytes=0-0"), 0, false), Whole);
    }

    #[test]
    fn standard_clamps_the_end_and_refuses_a_start_past_the_end() {
        let r = |h| resolve(Some(h), 1000, true);
        assert_eq!(
            r("bytes=500-2000"),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(r("bytes=1000-2000"), NotSatisfiable);
        assert_eq!(r("bytes=1000-"), NotSatisfiable);
        assert_eq!(r("bytes=-2000"), Partial { start: 0, end: 999 });
        assert_eq!(r("bytes=-0"), NotSatisfiable);
        assert_eq!(r("bytes=10-1"), Whole);
        assert_eq!(r("byte=0-1"), Whole);
        assert_eq!(resolve(Some("bytes=0-"), 0, true), NotSatisfiable);
        assert_eq!(resolve(Some("bytes=-5"), 0, true), NotSatisfiable);
    }
}
