//! Sizes on the command line: `4096`, `512M`, `64G`, `1T` (binary units).

/// Parses a size with an optional K/M/G/T suffix (powers of 1024, an optional trailing
/// `iB` or `B` accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (digits, shift) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| format!("{s:?} is not a size (e.g. 4096, 512M, 64G)"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is too large"))
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

/// Parses a length: an address-style number (`0x100`) or a size (`4096`, `4K`).
pub fn parse_len(s: &str) -> Result<u64, String> {
    parse_addr(s).or_else(|_| parse_size(s))
}

#[cfg(test)]
mod tests {
    use super::{parse_addr, parse_len, parse_size};

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
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("64G"), Ok(64 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
