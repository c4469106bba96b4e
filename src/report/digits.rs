//! A trial's classes drawn: the confusion matrix as a heat map, and a grid of digit images.

use super::svg::esc;
use std::fmt::Write;

/// The confusion matrix as a heat map (rows: true class, columns: predicted), rows labelled with
/// the class names, columns with their numbers (names would not fit a cell's width).
pub fn confusion(title: &str, cm: &[Vec<u64>], classes: &[String]) -> String {
    let cell = 32.0;
    let widest = classes.iter().map(|c| c.chars().count()).max().unwrap_or(1);
    let numbered = widest > 2;
    // Room on the left for "9 Ankle boot" at about 6.5 px a character.
    let left = if numbered {
        40.0 + 6.5 * (widest + 2) as f64
    } else {
        60.0
    };
    let top = 60.0;
    let side = cell * cm.len() as f64;
    let (width, height) = (left + side + 20.0, top + side + 30.0);
    let max = cm
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.iter()
                .enumerate()
                .filter(move |(j, _)| *j != i)
                .map(|(_, v)| *v)
        })
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="{}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{}</text><text x="{}" y="34" text-anchor="middle">predicted</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">true</text>"#,
        width / 2.0,
        esc(title),
        left + side / 2.0,
        top + side / 2.0,
        top + side / 2.0
    );
    for (i, row) in cm.iter().enumerate() {
        let name = match classes.get(i) {
            Some(c) if numbered => format!("{i} {c}"),
            Some(c) => c.clone(),
            None => i.to_string(),
        };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text><text x="{:.1}" y="{}" text-anchor="middle">{i}</text>"#,
            left - 6.0,
            top + cell * i as f64 + cell / 2.0 + 4.0,
            esc(&name),
            left + cell * i as f64 + cell / 2.0,
            top - 6.0
        );
        for (j, v) in row.iter().enumerate() {
            // Diagonal in green, errors in red scaled to the largest error.
            let (fill, text) = if i == j {
                ("#c7e9c0".to_string(), "#000")
            } else {
                let a = (*v as f64 / max).sqrt();
                (
                    format!("rgba(214,39,40,{a:.2})"),
                    if a > 0.6 { "#fff" } else { "#000" },
                )
            };
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{:.1}" width="{cell}" height="{cell}" fill="{fill}" stroke="#fff"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{text}">{v}</text>"##,
                left + cell * j as f64,
                top + cell * i as f64,
                left + cell * j as f64 + cell / 2.0,
                top + cell * i as f64 + cell / 2.0 + 4.0
            );
        }
    }
    svg += "</svg>";
    svg
}

/// A grid of 28×28 images (hex-encoded bytes) with a caption under each (`\n` breaks a line).
pub fn digit_grid(title: &str, digits: &[(String, String)]) -> String {
    let per_row = 5usize;
    let scale = 2.0;
    let cw = 28.0 * scale + 44.0;
    let lines = digits
        .iter()
        .map(|d| d.1.lines().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let ch = 28.0 * scale + 8.0 + 14.0 * lines as f64;
    let rows = digits.len().div_ceil(per_row).max(1);
    let (w, h) = (cw * per_row as f64 + 10.0, ch * rows as f64 + 30.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="{}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    for (k, (hex, caption)) in digits.iter().enumerate() {
        let ox = 5.0 + cw * (k % per_row) as f64 + 22.0;
        let oy = 26.0 + ch * (k / per_row) as f64;
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
        let _ = write!(
            svg,
            r#"<rect x="{ox}" y="{oy}" width="{}" height="{}" fill="black"/>"#,
            28.0 * scale,
            28.0 * scale
        );
        // Runs of equal-ish pixels in a row become one rect, which keeps the file small.
        for y in 0..28 {
            let mut x = 0;
            while x < 28 {
                let v = bytes.get(y * 28 + x).copied().unwrap_or(0) / 32 * 32;
                let mut run = 1;
                while x + run < 28
                    && bytes.get(y * 28 + x + run).copied().unwrap_or(0) / 32 * 32 == v
                {
                    run += 1;
                }
                if v > 0 {
                    let _ = write!(
                        svg,
                        r#"<rect x="{:.0}" y="{:.0}" width="{:.0}" height="{scale}" fill="rgb({v},{v},{v})"/>"#,
                        ox + x as f64 * scale,
                        oy + y as f64 * scale,
                        run as f64 * scale
                    );
                }
                x += run;
            }
        }
        for (n, line) in caption.lines().enumerate() {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                ox + 14.0 * scale,
                oy + 28.0 * scale + 14.0 * (n + 1) as f64,
                esc(line)
            );
        }
    }
    svg += "</svg>";
    svg
}
