//! Words in messages.

/// `n` and the noun, in the plural unless `n` is 1: `count(1, "page")` is "1 page",
/// `count(2, "page")` "2 pages".
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// As [`count`], for a `usize`.
pub fn count_usize(n: usize, noun: &str) -> String {
    count(n as u64, noun)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(count(0u64, "run"), "0 runs");
        assert_eq!(count(1u64, "run"), "1 run");
        assert_eq!(count_usize(3, "vcpu"), "3 vcpus");
    }
}
