//! Which bytes a download covers and how they are cut into parts.

use std::ops::Range;

use checkpoint::{PartLayout, RangeSpec};

/// Why a requested range cannot be served for an object of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeProblem(pub String);

/// Resolves `spec` against an object of `size` bytes, with HTTP's rules: an end past the
/// object is clamped, a suffix longer than the object means the whole object, a start at or
/// past the end (or an empty suffix) is unsatisfiable.
pub fn resolve_range(spec: RangeSpec, size: u64) -> Result<Range<u64>, RangeProblem> {
    match spec {
        RangeSpec::Full => Ok(0..size),
        RangeSpec::Inclusive { first, last } => {
            if first > last {
                return Err(RangeProblem(format!(
                    "the range starts at byte {first}, after its last byte {last}"
                )));
            }
            check_start(first, size)?;
            Ok(first..last.min(size - 1) + 1)
        }
        RangeSpec::From { first } => {
            check_start(first, size)?;
            Ok(first..size)
        }
        RangeSpec::Suffix { len } => {
            if len == 0 {
                return Err(RangeProblem(
                    "a suffix range of 0 bytes selects nothing".into(),
                ));
            }
            if size == 0 {
                return Err(RangeProblem("the object is empty".into()));
            }
            Ok(size - len.min(size)..size)
        }
    }
}

fn check_start(first: u64, size: u64) -> Result<(), RangeProblem> {
    if first >= size {
        return Err(RangeProblem(format!(
            "the range starts at byte {first}, but the object has {size} bytes (last byte {})",
            size.checked_sub(1)
                .map_or_else(|| "none".to_string(), |l| l.to_string())
        )));
    }
    Ok(())
}

/// Parses the range syntax users type: `A-B` (inclusive), `A-` and `-N` (the last N bytes).
pub fn parse_range(text: &str) -> Result<RangeSpec, RangeProblem> {
    let t = text.trim();
    let t = t.strip_prefix("bytes=").unwrap_or(t);
    let bad = || {
        RangeProblem(format!(
            "cannot parse range {text:?}: expected A-B (inclusive), A- or -N with decimal byte \
             offsets"
        ))
    };
    let (a, b) = t.split_once('-').ok_or_else(bad)?;
    let num = |s: &str| -> Result<u64, RangeProblem> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Err(bad()),
        (true, false) => Ok(RangeSpec::Suffix { len: num(b)? }),
        (false, true) => Ok(RangeSpec::From { first: num(a)? }),
        (false, false) => {
            let (first, last) = (num(a)?, num(b)?);
            if first > last {
                return Err(RangeProblem(format!(
                    "range {text:?} starts after it ends ({first} > {last})"
                )));
            }
            Ok(RangeSpec::Inclusive { first, last })
        }
    }
}

/// Formats a spec the way [`parse_range`] reads it.
pub fn format_range(spec: RangeSpec) -> String {
    match spec {
        RangeSpec::Full => "all".into(),
        RangeSpec::Inclusive { first, last } => format!("{first}-{last}"),
        RangeSpec::From { first } => format!("{first}-"),
        RangeSpec::Suffix { len } => format!("-{len}"),
    }
}

/// Cuts `range` into parts of `part_size` bytes. `None` when `part_size` is zero.
pub fn plan(range: Range<u64>, part_size: u64) -> Option<PartLayout> {
    PartLayout::new(range.start, range.end - range.start, part_size)
}

/// The part size for `len` bytes: `part_size`, raised just enough that there are at most
/// `max_parts` parts (a `max_parts` of 0 is taken as 1). What a download keeps per part (its
/// digest and CRCs in memory, 64 bytes of checkpoint journal) is then bounded, whatever the
/// object's size and the part size asked for.
pub fn bounded_part_size(len: u64, part_size: u64, max_parts: u64) -> u64 {
    part_size.max(len.div_ceil(max_parts.max(1)))
}

/// The smallest part `--part-size auto` chooses: at the slowest rate worth tuning for (1 MB/s
/// per connection) a part still takes 2 s, dozens of round trips of a WAN.
pub const AUTO_PART_MIN: u64 = 2 << 20;
/// The largest part `--part-size auto` chooses: what one connection re-fetches at most after
/// a crash without progress below the part, and what the last connection alone fetches at
/// the end of a download.
pub const AUTO_PART_MAX: u64 = 64 << 20;
/// Parts per connection `--part-size auto` aims for at the most connections the download may
/// use, so that the end of the download (the last parts) is shared by several connections.
pub const AUTO_PARTS_PER_CONNECTION: u64 = 4;

/// The part size of `--part-size auto` for `len` bytes fetched by up to `max_jobs`
/// connections: `len` cut into [`AUTO_PARTS_PER_CONNECTION`] parts per connection, in whole
/// MiB, within [`AUTO_PART_MIN`]..=[`AUTO_PART_MAX`].
///
/// Large enough that a part's transfer dwarfs the round trip that starts it (the part request
/// is the only per-part wait: connections are kept open between parts), small enough that the
/// tail of the download is shared across connections and a crash loses little. The result
/// goes through [`bounded_part_size`] like any other, and a download resuming saved progress
/// keeps the saved layout whatever this says.
pub fn auto_part_size(len: u64, max_jobs: usize) -> u64 {
    let parts = AUTO_PARTS_PER_CONNECTION.saturating_mul(max_jobs.max(1) as u64);
    let mib = 1u64 << 20;
    len.div_ceil(parts)
        .div_ceil(mib)
        .saturating_mul(mib)
        .clamp(AUTO_PART_MIN, AUTO_PART_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn suffix_range_selects_the_last_n_bytes_not_n_plus_one() {
        // Regression: an SDK downloaded the first N+1 bytes for `bytes=-N`.
        assert_eq!(
            resolve_range(RangeSpec::Suffix { len: 10 }, 100),
            Ok(90..100)
        );
        assert_eq!(
            resolve_range(RangeSpec::Suffix { len: 500 }, 100),
            Ok(0..100)
        );
    }

    #[test]
    fn range_end_past_the_object_is_clamped_and_start_past_it_rejected() {
        let r = RangeSpec::Inclusive {
            first: 10,
            last: 1_000,
        };
        assert_eq!(resolve_range(r, 100), Ok(10..100));
        let past = RangeSpec::Inclusive {
            first: 100,
            last: 200,
        };
        assert!(resolve_range(past, 100).is_err());
        assert!(resolve_range(RangeSpec::From { first: 100 }, 100).is_err());
        assert!(resolve_range(RangeSpec::Suffix { len: 0 }, 100).is_err());
        assert!(resolve_range(RangeSpec::Suffix { len: 1 }, 0).is_err());
    }

    #[test]
    fn zero_byte_object_plans_zero_parts() {
        let r = resolve_range(RangeSpec::Full, 0).unwrap();
        let l = plan(r, 1).unwrap();
        assert_eq!((l.len, l.part_count), (0, 0));
    }

    #[test]
    fn eight_byte_parts_of_190_mib_are_raised_to_at_most_the_bound() {
        // The case: `--part-size 8` meant as 8 MiB made 25 million parts.
        let len = 190 << 20;
        let size = bounded_part_size(len, 8, 100_000);
        assert_eq!(size, 1993);
        assert_eq!(plan(0..len, size).unwrap().part_count, 99_965);
        // Sizes that already keep within the bound are left alone.
        assert_eq!(bounded_part_size(len, 8 << 20, 100_000), 8 << 20);
        assert_eq!(bounded_part_size(0, 8, 100_000), 8);
        assert_eq!(bounded_part_size(10, 1, 0), 10);
    }

    #[test]
    fn auto_part_size_shares_the_tail_within_its_bounds() {
        const MIB: u64 = 1 << 20;
        // 256 MiB over up to 32 connections: 128 parts of 2 MiB (4 per connection).
        assert_eq!(auto_part_size(256 * MIB, 32), 2 * MIB);
        // 1 GiB: 8 MiB parts, today's fixed default.
        assert_eq!(auto_part_size(1024 * MIB, 32), 8 * MIB);
        // Small objects: never below the minimum; huge ones: never above the maximum.
        assert_eq!(auto_part_size(10 * MIB, 32), AUTO_PART_MIN);
        assert_eq!(auto_part_size(0, 32), AUTO_PART_MIN);
        assert_eq!(auto_part_size(1 << 40, 32), AUTO_PART_MAX);
        // Fewer connections, larger parts; whole MiB.
        assert_eq!(auto_part_size(100 * MIB, 1), 25 * MIB);
        assert_eq!(auto_part_size(100 * MIB + 1, 1) % MIB, 0);
        assert_eq!(auto_part_size(u64::MAX, 0), AUTO_PART_MAX);
    }

    #[test]
    fn part_size_zero_is_refused() {
        assert!(plan(0..10, 0).is_none());
    }

    #[test]
    fn parse_accepts_the_three_forms_and_rejects_the_rest() {
        assert_eq!(
            parse_range("0-99"),
            Ok(RangeSpec::Inclusive { first: 0, last: 99 })
        );
        assert_eq!(parse_range("bytes=5-"), Ok(RangeSpec::From { first: 5 }));
        assert_eq!(parse_range("-7"), Ok(RangeSpec::Suffix { len: 7 }));
        for bad in [
            "",
            "-",
            "a-b",
            "5-3",
            "1-2-3",
            "+1-2",
            " - ",
            "0x10-",
            "99999999999999999999-",
        ] {
            assert!(parse_range(bad).is_err(), "{bad:?} should be rejected");
        }
        for spec in [
            RangeSpec::Inclusive { first: 3, last: 9 },
            RangeSpec::From { first: 0 },
            RangeSpec::Suffix { len: 12 },
        ] {
            assert_eq!(parse_range(&format_range(spec)), Ok(spec));
        }
    }

    fn arb_spec() -> impl Strategy<Value = RangeSpec> {
        prop_oneof![
            Just(RangeSpec::Full),
            (0u64..5000, 0u64..5000).prop_map(|(a, b)| RangeSpec::Inclusive {
                first: a.min(b),
                last: a.max(b)
            }),
            (0u64..5000).prop_map(|first| RangeSpec::From { first }),
            (0u64..5000).prop_map(|len| RangeSpec::Suffix { len }),
        ]
    }

    proptest! {
        /// Parts cover the resolved range exactly once, without overlap, in order.
        #[test]
        fn parts_tile_the_range_exactly(
            size in 0u64..5000,
            spec in arb_spec(),
            part_size in 1u64..6000,
        ) {
            let Ok(range) = resolve_range(spec, size) else { return Ok(()); };
            prop_assert!(range.end <= size && range.start <= range.end);
            let layout = plan(range.clone(), part_size).unwrap();
            let mut next = range.start;
            for i in 0..layout.part_count {
                let r = layout.part_range(i);
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start, "empty part {}", i);
                prop_assert!(r.end - r.start <= part_size);
                prop_assert_eq!(layout.part_offset(i), r.start - range.start);
                next = r.end;
            }
            prop_assert_eq!(next, range.end);
            prop_assert_eq!(layout.part_len(layout.part_count), 0);
        }

        /// Resolution agrees with a direct model of HTTP range semantics.
        #[test]
        fn resolution_matches_http_semantics(size in 0u64..5000, spec in arb_spec()) {
            let expected: Option<Range<u64>> = match spec {
                RangeSpec::Full => Some(0..size),
                RangeSpec::Inclusive { first, last } =>
                    (first < size).then(|| first..(last + 1).min(size)),
                RangeSpec::From { first } => (first < size).then_some(first..size),
                RangeSpec::Suffix { len } =>
                    (len > 0 && size > 0).then(|| size.saturating_sub(len)..size),
            };
            prop_assert_eq!(resolve_range(spec, size).ok(), expected);
        }

        /// The bound holds, and the part size is raised only when it must be, and then to the
        /// smallest size that keeps within it.
        #[test]
        fn bounded_part_size_is_the_smallest_within_the_bound(
            len in 0u64..u64::MAX / 2,
            part_size in 1u64..u64::MAX / 2,
            max_parts in 1u64..10_000_000,
        ) {
            let size = bounded_part_size(len, part_size, max_parts);
            prop_assert!(size >= part_size);
            let parts = plan(0..len, size).unwrap().part_count;
            prop_assert!(parts <= max_parts, "{} parts", parts);
            if size > part_size {
                prop_assert!(len.div_ceil(size - 1) > max_parts);
            }
        }

        /// Auto sizes keep within their bounds, in whole MiB, and never cut more parts than
        /// aimed for.
        #[test]
        fn auto_part_size_bounds(len in 0u64..u64::MAX / 2, jobs in 0usize..1000) {
            let size = auto_part_size(len, jobs);
            prop_assert!((AUTO_PART_MIN..=AUTO_PART_MAX).contains(&size));
            prop_assert_eq!(size % (1 << 20), 0);
            let parts = plan(0..len, size).unwrap().part_count;
            if size < AUTO_PART_MAX {
                // Not raised to the maximum: at most the parts aimed for (never more).
                prop_assert!(
                    parts <= (AUTO_PARTS_PER_CONNECTION * jobs.max(1) as u64).max(1),
                    "{} parts of {}", parts, size
                );
            }
        }

        #[test]
        fn huge_part_sizes_do_not_overflow(start in 0u64..u64::MAX / 2, len in 0u64..u64::MAX / 2) {
            let layout = plan(start..start + len, u64::MAX).unwrap();
            prop_assert_eq!(layout.part_count, u64::from(len > 0));
            prop_assert_eq!(layout.part_len(0), len);
        }
    }
}
