//! Numbers on the command line, one syntax for every option: sizes and lengths (`4096`,
//! `0x1000`, `512M`, `64G`, `1T`: binary units), addresses, durations and thread counts.

use std::time::Duration;

/// Parses a size: decimal with an optional K/M/G/T suffix (powers of 1024, an optional
/// trailing `iB` or `B` accepted), or hexadecimal with `0x` (`0x1000`; no suffix). Used by
/// every size and length option (`--len`, `--max-memory`, `--max-span`, `--memory`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).map_err(|_| format!("{s:?} is not a size (e.g. 4096, 0x1000, 512M, 64G)"));
    }
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(&t);
    let (digits, shift) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| format!("{s:?} is not a size (e.g. 4096, 0x1000, 512M, 64G)"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses a bound on guest memory (`--max-memory`, `--max-span`): a size of at least one
/// 4 KiB page.
pub fn parse_bound(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if n < 4096 {
        return Err(format!("{s:?} is less than one page (4K): nothing could be restored"));
    }
    Ok(n)
}

/// Parses an address: hexadecimal with `0x`, else decimal (`0x7f001000`, `4096`).
pub fn parse_addr(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not an address (e.g. 0x1000 or 4096)"))
}

/// Parses a length (`--len`): a size (`64`, `0x100`, `4K`).
pub fn parse_len(s: &str) -> Result<u64, String> {
    parse_size(s)
}

/// Parses a duration: seconds (`60`, `0.5`) or a number with a unit (`500ms`, `30s`, `5m`,
/// `2h`); more than zero.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("{s:?} is not a duration (e.g. 60, 0.5, 500ms, 30s, 5m, 1h)"))?;
    if value <= 0.0 {
        return Err(format!("{s:?}: the duration must be more than zero"));
    }
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("{s:?} is too long a duration"))
}

/// The most worker threads a save may start: more cannot help (each prepares batches of
/// pages on a core) and each holds a window of batches in memory.
pub const MAX_WORKERS: usize = 256;

/// Parses a worker-thread count (`--workers`): 0 (one per core) to [`MAX_WORKERS`].
pub fn parse_workers(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("{s:?} is not a number of threads"))?;
    if n > MAX_WORKERS {
        return Err(format!("{n} is more than the limit of {MAX_WORKERS} worker threads (0: one per core)"));
    }
    Ok(n)
}

/// `bytes` rounded up to a whole number of the largest binary unit that keeps it within
/// 1/64 of the value (so `xsr` can suggest an option value): `65G`, `1536M`, `4096`.
pub fn format_size_up(bytes: u64) -> String {
    for (shift, unit) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
        let n = bytes.div_ceil(1 << shift);
        if n >= 64 || (n << shift) == bytes {
            return format!("{n}{unit}");
        }
    }
    bytes.to_string()
}

/// `bytes` exactly, in the largest binary unit that divides it, in the syntax the options
/// take (`100K`, `256M`, `64G`; `4097` as it is): how xsr echoes a size it was given.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_lengths() {
        assert_eq!(parse_addr("0x7f00_1000"), Ok(0x7f00_1000));
        assert_eq!(parse_addr("4096"), Ok(4096));
        assert_eq!(parse_addr("0xFFFF888000000000"), Ok(0xFFFF_8880_0000_0000));
        assert!(parse_addr("0x").is_err() && parse_addr("12k").is_err());
        assert_eq!(parse_len("4K"), Ok(4096));
        assert_eq!(parse_len("0x20"), Ok(32));
    }

    #[test]
    fn sizes_rounded_up() {
        assert_eq!(format_size_up(64 << 30), "64G");
        assert_eq!(format_size_up((64 << 30) + 4096), "65G");
        assert_eq!(format_size_up(128 << 30), "128G");
        assert_eq!(format_size_up(100 << 30), "100G");
        assert_eq!(format_size_up(65536), "64K");
        assert_eq!(format_size_up(61440), "60K");
        assert_eq!(format_size_up(4096), "4K");
        assert_eq!(format_size_up(100), "100");
        for b in [1u64, 4095, 65537, (64 << 30) + 4096, 3 << 40] {
            assert!(parse_size(&format_size_up(b)).unwrap() >= b);
        }
    }

    #[test]
    fn sizes_echoed_exactly() {
        assert_eq!(format_size(102400), "100K");
        assert_eq!(format_size(256 << 20), "256M");
        assert_eq!(format_size(17 << 20), "17M");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(1 << 40), "1T");
        assert_eq!(format_size(1_000_000), "1000000");
        assert_eq!(format_size(0), "0");
        for b in [0u64, 1, 4095, 102400, 1_000_000, (64 << 30) + 4096, 3 << 40, u64::MAX] {
            assert_eq!(parse_size(&format_size(b)), Ok(b));
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("64G"), Ok(64 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("0x1B"), Ok(27), "hex digits, not a suffix");
    }

    #[test]
    fn bounds_durations_and_workers() {
        assert!(parse_bound("1K").unwrap_err().contains("less than one page"));
        assert_eq!(parse_bound("0x1000"), Ok(4096));
        assert_eq!(parse_timeout("4294967296"), Ok(Duration::from_secs(4_294_967_296)));
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_timeout("0").unwrap_err().contains("more than zero"));
        assert!(parse_timeout("-1").unwrap_err().contains("more than zero"));
        assert!(parse_timeout("x").unwrap_err().contains("not a duration"));
        assert!(parse_timeout("1e30").unwrap_err().contains("too long"));
        assert_eq!(parse_workers("256"), Ok(256));
        assert!(parse_workers("100000").unwrap_err().contains("limit of 256"));
    }
}
