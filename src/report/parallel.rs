//! A parallel-coordinates plot as SVG: one vertical axis per varied parameter and one for the
//! metric, one polyline per trial coloured from worst (pale yellow) to best (dark green), the
//! best drawn last and thicker. Numeric axes are linear, or logarithmic when every value is
//! positive and they span a factor of 20 or more; other axes place their values evenly.

use super::svg::esc;
use serde_json::Value;
use std::fmt::Write;

/// One axis: its name and each trial's value on it.
pub struct Column {
    /// Its title above the axis.
    pub name: String,
    /// One value per trial (`None`: the trial does not set it).
    pub values: Vec<Option<Value>>,
}

const TOP: f64 = 50.0;
const HEIGHT: f64 = 260.0;
const MARGIN: f64 = 70.0;
const STEP: f64 = 130.0;

/// Where each trial sits on one axis (0 = bottom, 1 = top), and the labels to write beside it.
type Placed = (Vec<Option<f64>>, Vec<(f64, String)>);

fn place(c: &Column) -> Placed {
    let nums: Option<Vec<f64>> = c.values.iter().flatten().map(Value::as_f64).collect();
    match nums.filter(|n| !n.is_empty()) {
        Some(n) => {
            let (lo, hi) = n
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
            let log = lo > 0.0 && hi / lo >= 20.0;
            let f = |v: f64| if log { v.ln() } else { v };
            let span = (f(hi) - f(lo)).max(f64::MIN_POSITIVE);
            let at = |v: f64| if hi > lo { (f(v) - f(lo)) / span } else { 0.5 };
            let text = |v: f64| crate::format::metric_text("", Some(v));
            let labels = vec![(at(lo), text(lo)), (at(hi), text(hi))];
            let placed = c
                .values
                .iter()
                .map(|v| v.as_ref().and_then(Value::as_f64).map(at))
                .collect();
            (placed, labels)
        }
        None => {
            let text = |v: &Value| crate::trial::value_text(v);
            let mut levels: Vec<String> = c.values.iter().flatten().map(text).collect();
            levels.sort();
            levels.dedup();
            let n = levels.len().max(2) - 1;
            let at = |s: &str| {
                levels
                    .iter()
                    .position(|l| l == s)
                    .map(|i| i as f64 / n as f64)
            };
            let placed = c
                .values
                .iter()
                .map(|v| v.as_ref().and_then(|v| at(&text(v))))
                .collect();
            let labels = levels
                .iter()
                .map(|l| (at(l).unwrap_or(0.0), l.clone()))
                .collect();
            (placed, labels)
        }
    }
}

/// The plot of `columns` (parameters, then the metric last); `maximize` says which end of the
/// metric is best.
pub fn render(title: &str, columns: &[Column], maximize: bool) -> String {
    let w = 2.0 * MARGIN + STEP * (columns.len().max(2) - 1) as f64;
    let h = TOP + HEIGHT + 40.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="{}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    let placed: Vec<Placed> = columns.iter().map(place).collect();
    let x = |i: usize| MARGIN + STEP * i as f64;
    let y = |t: f64| TOP + HEIGHT * (1.0 - t);
    // The metric's position, 0 worst to 1 best, colours each line.
    let Some((metric, _)) = placed.last() else {
        return svg + "</svg>";
    };
    let goodness = |k: usize| metric[k].map(|t| if maximize { t } else { 1.0 - t });
    let mut order: Vec<usize> = (0..metric.len()).collect();
    order.sort_by(|a, b| {
        goodness(*a)
            .unwrap_or(0.0)
            .total_cmp(&goodness(*b).unwrap_or(0.0))
    });
    for (rank, k) in order.iter().enumerate() {
        let points: Vec<String> = placed
            .iter()
            .enumerate()
            .filter_map(|(i, (p, _))| p[*k].map(|t| format!("{:.1},{:.1}", x(i), y(t))))
            .collect();
        let g = goodness(*k).unwrap_or(0.0);
        let mix = |a: f64, b: f64| (a + (b - a) * g).round();
        let best = rank + 1 == order.len();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="rgb({},{},{})" stroke-width="{}" stroke-opacity="0.8"/>"#,
            points.join(" "),
            mix(240.0, 0.0),
            mix(228.0, 104.0),
            mix(120.0, 55.0),
            if best { 3.0 } else { 1.2 }
        );
    }
    for (i, (c, (_, labels))) in columns.iter().zip(&placed).enumerate() {
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1:.1}" stroke="#333"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle" font-weight="bold">{3}</text>"##,
            x(i),
            y(0.0),
            TOP - 12.0,
            esc(&c.name)
        );
        for (t, label) in labels {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                x(i) + 4.0,
                y(*t) + 4.0,
                esc(label)
            );
        }
    }
    svg + "</svg>"
}
