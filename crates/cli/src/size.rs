//! Human byte sizes and rates: `8MiB`, `8M`, `1.5GiB`, `50MB`, `100k`, `4096`.
//!
//! Single letters (`K`, `M`, `G`, `T`, any case) and `KiB`-style suffixes are binary, as in
//! curl and aria2; `KB`-style suffixes are decimal (SI). A trailing `/s` is accepted for rates.
//! `--help` says the same (args.rs); keep them in step.

/// Parses a size; `what` names the option in the error.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    if t.starts_with('-') {
        return Err(format!(
            "size {text:?} is negative; give a size like 8MiB, 500KB or 4096"
        ));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let bad = || {
        format!(
            "cannot parse size {text:?}: expected a number with an optional unit, like 8MiB, \
             8M, 500KB or 4096"
        )
    };
    if num.is_empty() || num.matches('.').count() > 1 {
        return Err(bad());
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    let value = if let Some((int, frac)) = num.split_once('.') {
        let int: u64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        if frac.is_empty() || frac.len() > 9 {
            return Err(bad());
        }
        let frac_val: u64 = frac.parse().map_err(|_| bad())?;
        let scale = 10u64.pow(frac.len() as u32);
        let whole = int.checked_mul(multiplier);
        let part = (u128::from(frac_val) * u128::from(multiplier) / u128::from(scale)) as u64;
        whole.and_then(|w| w.checked_add(part))
    } else {
        num.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
    };
    value.ok_or_else(|| format!("size {text:?} is too large"))
}

/// Formats bytes with a binary unit, e.g. `256.0 MiB`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_decimal_and_plain_sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("8m"), Ok(8 << 20));
        assert_eq!(parse_size("100k"), Ok(100 << 10));
        assert_eq!(parse_size("50MB"), Ok(50_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("50MiB/s"), Ok(50 << 20));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn rejects_garbage_and_overflow_with_a_message() {
        assert!(parse_size("-5M").unwrap_err().contains("is negative"));
        assert!(parse_size("-1").unwrap_err().contains("is negative"));
        for bad in ["", "MiB", "8 XB", "1.2.3M", "8MiBs", "1.M", "0x10"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("cannot parse size"), "{bad:?}: {e}");
        }
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn formats_with_binary_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(256 << 20), "256.0 MiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
    }
}
