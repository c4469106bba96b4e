//! Plots drawn as self-contained SVG text: line charts (linear or log x, with error bars or
//! shaded bands), bar charts with error bars, a confusion-matrix heat map and a grid of digits. No plotting dependency: each chart
//! is a few dozen lines and the output embeds in HTML and renders on GitHub.

use std::fmt::Write;

/// Series colours, in order (matplotlib's tab10); reused from the start after ten.
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Escapes `&`, `<`, `>` and `"` for SVG or HTML text and double-quoted attributes.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One named series of a line chart.
pub struct Series {
    /// Its legend text.
    pub label: String,
    /// Data points (x, y), joined in order; non-finite ones, and x ≤ 0 on a log axis, are skipped.
    pub points: Vec<(f64, f64)>,
    /// Half-heights of error bars, one per point (empty: none).
    pub errors: Vec<f64>,
    /// Low and high edge of a shaded band, one per point (empty: none), as the spread of the
    /// values a point is the mean of.
    pub band: Vec<(f64, f64)>,
}

impl Series {
    /// The lowest and highest y that point `i` needs: its value, error bar and band.
    fn span(&self, i: usize) -> (f64, f64) {
        let y = self.points[i].1;
        let e = self.errors.get(i).copied().unwrap_or(0.0);
        let (lo, hi) = self.band.get(i).copied().unwrap_or((y, y));
        ((y - e).min(lo), (y + e).max(hi))
    }
}

/// A line chart of one or more series; `render` gives the SVG.
pub struct LineChart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Label under the x axis (` (log)` is appended on a log axis).
    pub x_label: &'a str,
    /// Label beside the y axis.
    pub y_label: &'a str,
    /// Base-10 logarithmic x axis.
    pub log_x: bool,
    /// The series to draw, coloured from `PALETTE` in order.
    pub series: Vec<Series>,
    /// Draw markers at every point (few points) instead of plain lines.
    pub markers: bool,
    /// Draw the points alone, unjoined (a scatter plot).
    pub scatter: bool,
}

fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi.is_nan() || lo.is_nan() || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = vec![];
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

pub(super) const W: f64 = 640.0;
const H: f64 = 360.0;
const L: f64 = 70.0;
const R: f64 = 170.0;
pub(super) const T: f64 = 36.0;
pub(super) const B: f64 = 50.0;

/// The plotting area's data range and how data maps to pixels.
struct Frame {
    log_x: bool,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn tx(&self, x: f64) -> f64 {
        if self.log_x { x.max(1e-300).log10() } else { x }
    }
    fn px(&self, x: f64) -> f64 {
        L + (self.tx(x) - self.x0) / (self.x1 - self.x0) * (W - L - R)
    }
    fn py(&self, y: f64) -> f64 {
        H - B - (y - self.y0) / (self.y1 - self.y0) * (H - T - B)
    }
    /// Whether a point can be drawn (finite, and positive x on a log axis).
    fn drawable(&self, p: (f64, f64)) -> bool {
        p.0.is_finite() && p.1.is_finite() && (!self.log_x || p.0 > 0.0)
    }
}

impl LineChart<'_> {
    /// The chart as a standalone SVG document.
    pub fn render(&self) -> String {
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
            (L + W - R) / 2.0,
            esc(self.title)
        );
        let Some(f) = self.frame() else {
            svg += r#"<text x="50%" y="50%" text-anchor="middle">no data</text></svg>"#;
            return svg;
        };
        self.axes(&mut svg, &f);
        // Every band before any line, so that no band hides another series' line.
        for (i, s) in self.series.iter().enumerate() {
            Self::band(&mut svg, &f, s, PALETTE[i % PALETTE.len()]);
        }
        let (header, labels) = legend_labels(self.series.iter().map(|s| s.label.as_str()));
        if let Some(h) = &header {
            let _ = write!(
                svg,
                r##"<text x="{}" y="{:.1}" fill="#555">{}</text>"##,
                W - R + 10.0,
                T + 14.0,
                esc(&truncate(h, 26))
            );
        }
        // Legend rows beside the plot; when the entries do not fit, the last row says how many
        // more lines there are instead of the legend stopping without a word.
        let rows = LEGEND_ROWS - usize::from(header.is_some());
        let listed = if labels.len() > rows {
            rows - 1
        } else {
            labels.len()
        };
        for (i, (s, label)) in self.series.iter().zip(&labels).enumerate() {
            Self::line(
                &mut svg,
                &f,
                s,
                PALETTE[i % PALETTE.len()],
                (self.markers, self.scatter),
            );
            let row = i + usize::from(header.is_some());
            if i < listed {
                Self::legend(&mut svg, (i, row), label, !s.band.is_empty());
            }
        }
        if listed < labels.len() {
            let _ = write!(
                svg,
                r##"<text x="{}" y="{:.1}" fill="#555">+{} more lines</text>"##,
                W - R + 10.0,
                T + 14.0 + (LEGEND_ROWS - 1) as f64 * 16.0,
                labels.len() - listed
            );
        }
        svg += "</svg>";
        svg
    }

    /// The range of every drawable point with its error bar and band, padded; None when nothing
    /// is drawable.
    fn frame(&self) -> Option<Frame> {
        let mut f = Frame {
            log_x: self.log_x,
            x0: f64::MAX,
            x1: f64::MIN,
            y0: f64::MAX,
            y1: f64::MIN,
        };
        let mut any = false;
        for s in &self.series {
            for (i, p) in s.points.iter().enumerate() {
                let (lo, hi) = s.span(i);
                for y in [lo, hi] {
                    if f.drawable((p.0, y)) {
                        any = true;
                        let x = f.tx(p.0);
                        (f.x0, f.x1) = (f.x0.min(x), f.x1.max(x));
                        (f.y0, f.y1) = (f.y0.min(y), f.y1.max(y));
                    }
                }
            }
        }
        if !any {
            return None;
        }
        if f.x1 - f.x0 < 1e-12 {
            f.x0 -= 0.5;
            f.x1 += 0.5;
        }
        if f.y1 - f.y0 < 1e-12 {
            f.y0 -= 0.01;
            f.y1 += 0.01;
        }
        let pad = (f.y1 - f.y0) * 0.05;
        f.y0 -= pad;
        f.y1 += pad;
        Some(f)
    }

    /// Axis lines, ticks with grid lines, and the axis labels.
    fn axes(&self, svg: &mut String, f: &Frame) {
        let _ = write!(
            svg,
            r##"<line x1="{L}" y1="{}" x2="{}" y2="{}" stroke="#333"/><line x1="{L}" y1="{T}" x2="{L}" y2="{}" stroke="#333"/>"##,
            H - B,
            W - R,
            H - B,
            H - B
        );
        for t in nice_ticks(f.y0, f.y1, 5) {
            let y = f.py(t);
            let _ = write!(
                svg,
                r##"<line x1="{L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - R,
                L - 6.0,
                y + 4.0,
                fmt_tick(t)
            );
        }
        let xticks: Vec<f64> = if self.log_x {
            (f.x0.floor() as i32..=f.x1.ceil() as i32)
                .map(|e| 10f64.powi(e))
                .filter(|v| f.tx(*v) >= f.x0 - 1e-9 && f.tx(*v) <= f.x1 + 1e-9)
                .collect()
        } else {
            nice_ticks(f.x0, f.x1, 6)
        };
        for t in xticks {
            let x = f.px(t);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#333"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                H - B,
                H - B + 5.0,
                H - B + 18.0,
                fmt_tick(t)
            );
        }
        let log = if self.log_x { " (log)" } else { "" };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
            (L + W - R) / 2.0,
            H - 12.0,
            esc(&format!("{}{log}", self.x_label)),
            (T + H - B) / 2.0,
            (T + H - B) / 2.0,
            esc(self.y_label)
        );
    }

    /// One series: its polyline, and markers with error bars when asked (or when it is a
    /// single point).
    fn line(svg: &mut String, f: &Frame, s: &Series, c: &str, (markers, scatter): (bool, bool)) {
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|p| f.drawable(**p))
            .map(|p| format!("{:.1},{:.1}", f.px(p.0), f.py(p.1)))
            .collect();
        if path.len() > 1 && !scatter {
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{c}" stroke-width="1.6" points="{}"/>"#,
                path.join(" ")
            );
        }
        if !(markers || scatter || path.len() == 1) {
            return;
        }
        for (j, p) in s.points.iter().enumerate() {
            if !f.drawable(*p) {
                continue;
            }
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"/>"#,
                f.px(p.0),
                f.py(p.1)
            );
            if let Some(e) = s.errors.get(j).filter(|e| **e > 0.0) {
                let _ = write!(
                    svg,
                    r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{c}"/>"#,
                    f.py(p.1 - e),
                    f.py(p.1 + e),
                    x = f.px(p.0)
                );
            }
        }
    }

    /// A series' band as one translucent polygon in its colour: along the high edge, back along
    /// the low one; nothing when fewer than two of its points can be drawn.
    fn band(svg: &mut String, f: &Frame, s: &Series, c: &str) {
        let edges: Vec<(f64, f64, f64)> = s
            .points
            .iter()
            .zip(&s.band)
            .filter(|(p, b)| f.drawable((p.0, b.0)) && f.drawable((p.0, b.1)))
            .map(|(p, b)| (f.px(p.0), f.py(b.1), f.py(b.0)))
            .collect();
        if edges.len() < 2 {
            return;
        }
        let high = edges.iter().map(|e| format!("{:.1},{:.1}", e.0, e.1));
        let low = edges.iter().rev().map(|e| format!("{:.1},{:.1}", e.0, e.2));
        let _ = write!(
            svg,
            r#"<polygon class="band" fill="{c}" fill-opacity="0.18" stroke="none" points="{}"/>"#,
            high.chain(low).collect::<Vec<_>>().join(" ")
        );
    }

    /// The legend entry of series `i` on legend row `row` (below `LEGEND_ROWS`); a banded
    /// series' swatch sits on a patch of its band.
    fn legend(svg: &mut String, (i, row): (usize, usize), label: &str, banded: bool) {
        let c = PALETTE[i % PALETTE.len()];
        let ly = T + 14.0 + row as f64 * 16.0;
        if banded {
            let _ = write!(
                svg,
                r#"<rect x="{}" y="{:.1}" width="12" height="11" fill="{c}" fill-opacity="0.18"/>"#,
                W - R + 10.0,
                ly - 8.0
            );
        }
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{:.1}" width="12" height="3" fill="{c}"/><text x="{}" y="{:.1}">{}</text>"#,
            W - R + 10.0,
            ly - 4.0,
            W - R + 26.0,
            ly,
            esc(&truncate(label, LEGEND_CHARS))
        );
    }
}

/// Legend rows that fit beside the plot (16 px each, from `T` + 14 to 10 px above the bottom).
const LEGEND_ROWS: usize = 19;

/// Characters of a legend entry that fit beside the plot.
const LEGEND_CHARS: usize = 24;

/// The legend's entries, and a header line when they are `key=value,…` settings too long to
/// fit: then the keys go once in the header and each entry gives its values (cut, the values
/// that tell series apart would be lost). A part without `=` is a named trial's name (header
/// `trial`); an empty value is shown as `–`.
fn legend_labels<'a>(labels: impl Iterator<Item = &'a str>) -> (Option<String>, Vec<String>) {
    let labels: Vec<&str> = labels.collect();
    let part = |kv: &str| {
        let (k, v) = kv.split_once('=').unwrap_or(("trial", kv));
        let v = if v.trim().is_empty() { "–" } else { v.trim() };
        (k.trim().to_string(), v.to_string())
    };
    let split: Vec<Vec<(String, String)>> = labels
        .iter()
        .map(|l| l.split(',').map(part).collect())
        .collect();
    let keys = |p: &Vec<(String, String)>| p.iter().map(|kv| kv.0.clone()).collect::<Vec<_>>();
    let fits = labels.iter().all(|l| l.chars().count() <= LEGEND_CHARS);
    let settings = split
        .first()
        .is_some_and(|p| p.iter().any(|kv| kv.0 != "trial"))
        && split.windows(2).all(|w| keys(&w[0]) == keys(&w[1]));
    if fits || !settings {
        return (None, labels.iter().map(|l| (*l).to_string()).collect());
    }
    let values = split
        .iter()
        .map(|p| {
            p.iter()
                .map(|kv| kv.1.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    (Some(keys(&split[0]).join(", ")), values)
}

pub(super) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legend_too_long_to_fit_says_how_many_lines_it_leaves_out() {
        let series = |n: usize| -> Vec<Series> {
            (0..n)
                .map(|i| Series {
                    label: format!("s{i}"),
                    points: vec![(0.0, i as f64), (1.0, i as f64)],
                    errors: vec![],
                    band: vec![],
                })
                .collect()
        };
        let chart = |n| LineChart {
            title: "t",
            x_label: "x",
            y_label: "y",
            log_x: false,
            markers: false,
            scatter: false,
            series: series(n),
        };
        let svg = chart(40).render();
        assert!(svg.contains(">s17<") && !svg.contains(">s18<"), "{svg}");
        assert!(svg.contains("+22 more lines"), "{svg}");
        let svg = chart(LEGEND_ROWS).render();
        assert!(
            svg.contains(">s18<") && !svg.contains("more lines"),
            "{svg}"
        );
    }

    #[test]
    fn long_settings_put_their_keys_in_a_legend_header() {
        let long = [
            "learning_rate=0.1,dropout=0.3",
            "learning_rate=0.01,dropout=0",
        ];
        let (header, values) = legend_labels(long.into_iter());
        assert_eq!(header.as_deref(), Some("learning_rate, dropout"));
        assert_eq!(values, ["0.1, 0.3", "0.01, 0"]);
        // Short labels, or labels that are not settings of the same keys, stay as they are.
        assert_eq!(legend_labels(["lr=0.1", "lr=1"].into_iter()).0, None);
        let mixed = [
            "learning_rate=0.1,dropout=0.3",
            "a very long trial name without values",
        ];
        let (header, values) = legend_labels(mixed.into_iter());
        assert_eq!((header, values[1].as_str()), (None, mixed[1]));
        // Named trials with grid values; settings that do not apply are blank.
        let named = ["linear,learning_rate=0.01", "mlp,learning_rate=0.1"];
        let (header, values) = legend_labels(named.into_iter());
        assert_eq!(header.as_deref(), Some("trial, learning_rate"));
        assert_eq!(values, ["linear, 0.01", "mlp, 0.1"]);
        let blank = [
            "kind=linear,hidden=,activation=",
            "kind=mlp,hidden=[64],activation=relu",
        ];
        let blank = legend_labels(blank.into_iter()).1;
        assert_eq!(blank[0], "linear, –, –");
    }
}
