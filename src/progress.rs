//! Progress bars on standard error, drawn only when it is a terminal.
//!
//! Rates are whole numbers ("93717 pages/s", indicatif's "12.3 MiB/s" for bytes), and the
//! time left is shown only once it means something: after [`ETA_AFTER`] and
//! [`ETA_FROM_PERCENT`] percent of the work, when the rate has settled (the first estimates,
//! from a few batches, swing by orders of magnitude).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// No time left is shown before this much has elapsed.
pub const ETA_AFTER: Duration = Duration::from_secs(2);
/// ... nor before this share of the work is done.
pub const ETA_FROM_PERCENT: u64 = 2;

/// A rate as a whole number of `unit` per second: `93717 pages/s`.
pub fn format_rate(per_sec: f64, unit: &str) -> String {
    if per_sec.is_finite() && per_sec >= 0.0 { format!("{per_sec:.0} {unit}/s") } else { format!("- {unit}/s") }
}

/// The time left for display, or `None` while an estimate would be noise (see the module
/// documentation).
pub fn format_eta(elapsed: Duration, pos: u64, len: Option<u64>, eta: Duration) -> Option<String> {
    let len = len.filter(|&l| l > 0)?;
    if elapsed < ETA_AFTER || pos.saturating_mul(100) < len.saturating_mul(ETA_FROM_PERCENT) {
        return None;
    }
    let s = eta.as_secs();
    Some(match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    })
}

fn eta_key(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let text = format_eta(state.elapsed(), state.pos(), state.len(), state.eta());
    let _ = w.write_str(&format!("eta {}", text.as_deref().unwrap_or("-")));
}

fn pages_rate_key(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = w.write_str(&format_rate(state.per_sec(), "pages"));
}

/// A byte-count bar of `len` bytes (0: unknown length, a spinner) with a message.
pub fn bytes_bar(len: u64, message: &str) -> ProgressBar {
    let bar = if len > 0 { ProgressBar::new(len) } else { ProgressBar::new_spinner() };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    let template = if len > 0 {
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta_settled}"
    } else {
        "{msg} {spinner} {bytes} {bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.with_key("eta_settled", eta_key).progress_chars("=> "));
    }
    bar.set_message(message.to_string());
    bar
}

/// A page-count bar (its length set per pass) on standard error.
pub fn pages_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} pages {pages_rate} {eta_settled}") {
        bar.set_style(
            style.with_key("pages_rate", pages_rate_key).with_key("eta_settled", eta_key).progress_chars("=> "),
        );
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_whole_numbers() {
        assert_eq!(format_rate(93_717.183_5, "pages"), "93717 pages/s");
        assert_eq!(format_rate(0.4, "pages"), "0 pages/s");
        assert_eq!(format_rate(f64::INFINITY, "pages"), "- pages/s");
    }

    #[test]
    fn the_time_left_waits_for_the_rate_to_settle() {
        let s = Duration::from_secs;
        assert_eq!(format_eta(Duration::from_millis(300), 500, Some(1000), s(99_999)), None, "too early");
        assert_eq!(format_eta(s(5), 1, Some(1000), s(99_999)), None, "too little done");
        assert_eq!(format_eta(s(5), 100, None, s(9)), None, "no length");
        assert_eq!(format_eta(s(5), 100, Some(1000), s(9)).as_deref(), Some("9s"));
        assert_eq!(format_eta(s(5), 100, Some(1000), s(125)).as_deref(), Some("2m05s"));
        assert_eq!(format_eta(s(5), 100, Some(1000), s(7300)).as_deref(), Some("2h01m"));
    }
}
