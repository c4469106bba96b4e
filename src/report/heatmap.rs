//! A heat map of a metric over two axes as SVG: one cell per pair of values, the value written
//! in it, worst to best from pale yellow to dark green, the best cell outlined.

use super::svg::esc;
use std::fmt::Write;

/// The two axes' value labels and the cells, `cells[row][column]` (`None`: no trial there).
pub struct HeatMap<'a> {
    /// Title above the map.
    pub title: &'a str,
    /// The axis along the columns, and its values left to right.
    pub x: (&'a str, &'a [String]),
    /// The axis along the rows, and its values top to bottom.
    pub y: (&'a str, &'a [String]),
    /// The metric in each cell.
    pub cells: &'a [Vec<Option<f64>>],
    /// True when larger is better (colours and the best cell follow it).
    pub maximize: bool,
    /// How a value is written in its cell.
    pub text: &'a dyn Fn(f64) -> String,
}

const CELL_W: f64 = 72.0;
const CELL_H: f64 = 28.0;
const TOP: f64 = 44.0;

impl HeatMap<'_> {
    /// The SVG.
    pub fn render(&self) -> String {
        let widest = self
            .y
            .1
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(1);
        let left = 40.0 + 7.0 * widest as f64;
        let (cols, rows) = (self.x.1.len() as f64, self.y.1.len() as f64);
        // Wide enough for the title at about 7.5 px a character.
        let title_w = 7.5 * self.title.chars().count() as f64 + 20.0;
        let (w, h) = (
            (left + CELL_W * cols + 20.0).max(title_w),
            TOP + CELL_H * rows + 50.0,
        );
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="{}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
            w / 2.0,
            esc(self.title)
        );
        let values = self.cells.iter().flatten().flatten().copied();
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let best = self.best();
        for (i, row) in self.cells.iter().enumerate() {
            let y = TOP + CELL_H * i as f64;
            let _ = write!(
                svg,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                left - 6.0,
                y + CELL_H / 2.0 + 4.0,
                esc(&self.y.1[i])
            );
            for (j, v) in row.iter().enumerate() {
                let x = left + CELL_W * j as f64;
                svg += &self.cell(x, y, *v, (lo, hi), best == Some((i, j)));
            }
        }
        for (j, label) in self.x.1.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                left + CELL_W * (j as f64 + 0.5),
                TOP + CELL_H * rows + 14.0,
                esc(label)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text><text x="4" y="{}" font-weight="bold">{}</text></svg>"#,
            left + CELL_W * cols / 2.0,
            TOP + CELL_H * rows + 34.0,
            esc(self.x.0),
            TOP - 8.0,
            esc(self.y.0)
        );
        svg
    }

    /// The (row, column) of the best value.
    fn best(&self) -> Option<(usize, usize)> {
        let sign = if self.maximize { 1.0 } else { -1.0 };
        let mut all = self.cells.iter().enumerate().flat_map(|(i, r)| {
            r.iter()
                .enumerate()
                .filter_map(move |(j, v)| v.map(|v| ((i, j), v)))
        });
        let first = all.next()?;
        let best = all.fold(first, |b, c| if sign * c.1 > sign * b.1 { c } else { b });
        Some(best.0)
    }

    fn cell(&self, x: f64, y: f64, v: Option<f64>, (lo, hi): (f64, f64), best: bool) -> String {
        let Some(v) = v else {
            return format!(
                r##"<rect x="{x:.1}" y="{y:.1}" width="{CELL_W}" height="{CELL_H}" fill="#eee" stroke="#fff"/>"##
            );
        };
        // 0 = worst, 1 = best.
        let mut t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
        if !self.maximize {
            t = 1.0 - t;
        }
        let mix = |a: f64, b: f64| (a + (b - a) * t).round();
        let (r, g, b) = (mix(255.0, 0.0), mix(247.0, 104.0), mix(188.0, 55.0));
        let ink = if t > 0.55 { "#fff" } else { "#000" };
        let outline = if best {
            r##" stroke="#d62728" stroke-width="3""##
        } else {
            r##" stroke="#fff""##
        };
        format!(
            r#"<rect x="{x:.1}" y="{y:.1}" width="{CELL_W}" height="{CELL_H}" fill="rgb({r},{g},{b})"{outline}/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{ink}">{}</text>"#,
            x + CELL_W / 2.0,
            y + CELL_H / 2.0 + 4.0,
            esc(&(self.text)(v))
        )
    }
}
