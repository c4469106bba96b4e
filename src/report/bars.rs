//! Horizontal bar charts: a value in [0, 1] per label, as a percentage, with error bars.

use super::svg::{B, T, W, esc, truncate};
use std::fmt::Write;

/// Horizontal bars (one per label) with optional error bars, values in [0, 1] shown as %.
pub fn bar_chart(title: &str, bars: &[(String, f64, f64)], highlight: Option<usize>) -> String {
    let row = 22.0;
    let h = T + B + row * bars.len() as f64;
    let left = 220.0;
    let width = W - left - 60.0;
    let lo = bars
        .iter()
        .map(|b| b.1 - b.2)
        .fold(f64::MAX, f64::min)
        .min(1.0);
    let lo = ((lo * 10.0).floor() / 10.0 - 0.05).clamp(0.0, 1.0);
    let hi = 1.0;
    let px = |v: f64| left + (v.clamp(lo, hi) - lo) / (hi - lo) * width;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    for (i, (label, v, e)) in bars.iter().enumerate() {
        let y = T + i as f64 * row;
        let c = if Some(i) == highlight {
            "#2ca02c"
        } else {
            "#1f77b4"
        };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text><rect x="{left}" y="{:.1}" width="{:.1}" height="{}" fill="{c}"/><text x="{:.1}" y="{:.1}">{:.2}%</text>"#,
            left - 6.0,
            y + 14.0,
            esc(&truncate(label, 32)),
            y + 3.0,
            (px(*v) - left).max(0.0),
            row - 6.0,
            px(*v)
                + 4.0
                + if *e > 0.0 {
                    (px(v + e) - px(*v)).max(0.0)
                } else {
                    0.0
                },
            y + 14.0,
            v * 100.0
        );
        if *e > 0.0 {
            let _ = write!(
                svg,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#333" stroke-width="1.5"/>"##,
                px(v - e),
                px(v + e),
                y + row / 2.0,
                y + row / 2.0
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{left}" y="{:.1}" >{:.0}%</text><text x="{:.1}" y="{:.1}" text-anchor="end">100%</text></svg>"#,
        h - 16.0,
        lo * 100.0,
        left + width,
        h - 16.0
    );
    svg
}
